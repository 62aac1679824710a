"""`verify watch --html`: each update rewrites an owner-only parity page that reloads itself at
the watch's interval; a path the watch could not rewrite is refused before anything is done."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from hookshift.cli import main
from tests.verify.data import T0, body, message, nginx_line, rid, write_lines, write_messages


def _files(root: Path) -> None:
    write_lines(root / "p.log", [nginx_line(rid(i), T0 + i * 1000, body(i)) for i in range(10)])
    messages = [message(f"m{i}", body(i), T0 + i * 1000 + 30, request_id=rid(i)) for i in range(8)]
    write_messages(root / "a" / "seg-1.jsonl", messages)


def _watch(root: Path, *extra: str) -> int:
    argv = [
        "verify", "watch", "--app", f"nginx:{root / 'p.log'}", "--queue", f"archive:{root / 'a'}",
        "--state", str(root / "st"), "--grace", "0", "--once", *extra,
    ]  # fmt: skip
    with pytest.raises(SystemExit) as exited:
        main(argv)
    return int(exited.value.code or 0)


def test_each_update_writes_a_page_that_refreshes_at_the_interval(tmp_path: Path) -> None:
    _files(tmp_path)
    page = tmp_path / "parity.html"
    page.write_text("an older, more open report")
    page.chmod(0o644)
    assert _watch(tmp_path, "--html", str(page), "--interval", "7s") == 1
    text = page.read_text(encoding="utf-8")
    assert '<meta http-equiv="refresh" content="7">' in text
    assert stat.S_IMODE(page.stat().st_mode) == 0o600
    assert '<tr class="bad" data-class="missing_in_queue"><td>missing_in_queue</td>' in text
    assert "<td class=num>2</td>" in text and 'class="bar app"' in text


def test_a_page_in_the_state_directory_the_watch_makes_is_written(tmp_path: Path) -> None:
    """--help's own example: `--state ./w --html ./w/parity.html` on a first run."""
    _files(tmp_path)
    assert _watch(tmp_path, "--html", str(tmp_path / "st" / "parity.html")) == 1
    assert (tmp_path / "st" / "parity.html").read_text(encoding="utf-8").startswith("<!")


def test_a_page_path_the_watch_cannot_rewrite_is_refused_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _files(tmp_path)
    (tmp_path / "dir.html").mkdir()
    for bad in (tmp_path / "dir.html", tmp_path / "nowhere" / "p.html"):
        assert _watch(tmp_path, "--html", str(bad)) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and f"--html {bad}" in err, err
        assert not (tmp_path / "st").exists()


def test_the_pages_timeline_follows_the_span_as_paritys_does(tmp_path: Path) -> None:
    from hookshift.verify.parity import ParityOptions, run_parity
    from hookshift.verify.watch import Watcher

    log, segment = tmp_path / "p.log", tmp_path / "a" / "seg-1.jsonl"
    app, queue = f"nginx:{log}", f"archive:{segment.parent}"
    seen: list[str] = []
    with Watcher(app, queue, tmp_path / "st", ParityOptions(grace_s=0)) as watcher:
        # seconds apart, then half an hour, then three hours: a bucket of a second, of a
        # minute or more, and one past the span that keeps counts per second
        for step, offsets in enumerate(([0, 1, 3], [1800], [3 * 3600, 3 * 3600 + 7])):
            for n, offset_s in enumerate(offsets, start=10 * step):
                when = T0 + offset_s * 1000
                with log.open("a", encoding="utf-8") as fh:
                    fh.write(nginx_line(rid(n), when, body(n)) + "\n")
                if n % 2 == 0:  # every other one reaches the queue
                    segment.parent.mkdir(exist_ok=True)
                    msg = message(f"m{n}", body(n), when + 500, request_id=rid(n))
                    with segment.open("a", encoding="utf-8") as fh:
                        fh.write(json.dumps(msg) + "\n")
            state = watcher.update()
            watched = watcher.report(state).timeline
            assert watched == run_parity(app, queue, ParityOptions(grace_s=0)).timeline
            seen.append(watched["bucket"])
    assert seen[0] == "1 s" and seen[1] != seen[2]
    # past the span a bucket under a minute could serve, the per-second counts are let go of
    import sqlite3

    with sqlite3.connect(tmp_path / "st" / "watch.sqlite") as db:
        assert db.execute("SELECT count(*) FROM timeline WHERE grain = 1000").fetchone() == (0,)
        assert db.execute("SELECT count(*) FROM timeline WHERE grain = 60000").fetchone()[0] > 0
