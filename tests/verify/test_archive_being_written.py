"""A parity check that reads the archive while `verify pull --follow` appends a batch to its
newest segment sees that segment's last line cut short: it is left out with a notice, not
counted malformed (`--strict` would refuse the run), as `verify watch` leaves it for its next
update."""

from __future__ import annotations

import json
from pathlib import Path

from hookshift.verify.parity import ParityOptions, run_parity
from hookshift.verify.watch import Watcher
from tests.verify.data import T0, body, message, nginx_line, rid, write_lines, write_messages


def _sources(root: Path, torn_alone: bool) -> tuple[str, str, Path]:
    log = write_lines(
        root / "parity.log", [nginx_line(rid(n), T0 + n * 1000, body(n)) for n in range(6)]
    )
    archive = root / "archive"
    copies = [message(f"m{n}", body(n), T0 + n * 1000 + 50, request_id=rid(n)) for n in range(6)]
    write_messages(archive / "seg-000001.jsonl", copies[:5])
    newest = archive / "seg-000002.jsonl"
    line = json.dumps(copies[5]).encode()
    # the batch being written: the newest segment holds part of its line so far (alone, when
    # pull has just opened it)
    newest.write_bytes((b"" if torn_alone else line + b"\n") + line[:70])
    return f"nginx:{log}", f"archive:{archive}", newest


def test_a_segment_line_pull_is_still_writing_is_left_out_not_malformed(tmp_path: Path) -> None:
    for torn_alone in (False, True):
        root = tmp_path / str(torn_alone)
        app, queue, newest = _sources(root, torn_alone)
        notices: list[str] = []
        options = ParityOptions(grace_s=0, strict=True)
        report = run_parity(app, queue, options, notice=notices.append)
        line = 1 if torn_alone else 2
        said = (
            f"{newest}:{line}: the last line has no end yet (`hookshift verify pull` is still"
            " writing it): left out; the next run reads it"
        )
        assert notices == [said] and said in report.warnings
        assert report.counts["malformed"] == 0 and report.malformed_examples == []
        assert report.counts["queue"] == (5 if torn_alone else 6)
        with Watcher(app, queue, root / "state", ParityOptions(grace_s=0)) as watcher:
            watched = watcher.update()
        assert (watched.verdict, watched.reason) == (report.verdict, report.reason)
        assert watched.counts == {k: v for k, v in report.counts.items() if k in watched.counts}
