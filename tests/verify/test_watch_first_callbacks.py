"""`verify watch` started before any callback that carries the key has come: a vendor's other
kind of callback (no MSGID) can come first. That window is reported and watched through, as a
service must (a refusal there restarts it in a loop); a key the data contradicts is refused,
and a refused watch leaves nothing behind."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hookshift.errors import InputError
from hookshift.verify.parity import ParityOptions, run_parity
from hookshift.verify.watch import Watcher
from tests.verify.data import T0, body, message, nginx_line, rid, write_lines, write_messages
from tests.verify.test_hostile import refusal

PROFILE = ParityOptions(profile="bizppurio", grace_s=0)


def _other_shape(n: int) -> str:
    """A second kind of callback the same vendor posts: no MSGID, so no value for the key."""
    return json.dumps({"TYPE": "report", "CMSGID": f"c{n}", "RESULT": "7000"})


def _write(root: Path, bodies: dict[int, str]) -> tuple[str, str]:
    """A parity log of `bodies` (one a second) and an archive with the copy of each."""
    write_lines(
        root / "parity.log", [nginx_line(rid(n), T0 + n * 1000, b) for n, b in bodies.items()]
    )
    write_messages(
        root / "archive" / "seg-000001.jsonl",
        [message(f"m{n}", b, T0 + n * 1000 + 50, request_id=rid(n)) for n, b in bodies.items()],
    )
    return f"nginx:{root / 'parity.log'}", f"archive:{root / 'archive'}"


def test_a_watch_whose_first_callbacks_lack_the_key_reports_it_and_keeps_watching(
    tmp_path: Path,
) -> None:
    bodies = {n: _other_shape(n) for n in range(3)}
    app, queue = _write(tmp_path, bodies)
    with Watcher(app, queue, tmp_path / "state", PROFILE) as watcher:
        first = watcher.update()
        assert first.passed and first.counts["by_request_id_app"] == 3
        (waiting,) = [w for w in first.warnings if w.startswith("no callback so far")]
        assert waiting.startswith(
            "no callback so far has a value for the key json:MSGID+json:RESULT: the 3 so far"
            " were matched by nginx's request id"
        )
        # keyed callbacks come: the watch goes on with the same state, as parity sees it all
        bodies |= {n: body(n) for n in range(3, 8)}
        _write(tmp_path, bodies)
        later = watcher.update()
    report = run_parity(app, queue, PROFILE)
    assert (later.verdict, later.reason) == (report.verdict, report.reason)
    assert later.counts == {k: v for k, v in report.counts.items() if k in later.counts}
    assert later.counts["compared"] == 8
    assert not [w for w in later.warnings if w.startswith("no callback so far")]


def test_a_service_started_in_that_window_runs_instead_of_refusing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from hookshift.cli import main

    app, queue = _write(tmp_path, {n: _other_shape(n) for n in range(3)})
    args = ["verify", "watch", "--app", app, "--queue", queue, "--state", str(tmp_path / "st")]
    with pytest.raises(SystemExit) as exited:
        main([*args, "--profile", "bizppurio", "--once"])
    assert exited.value.code == 0
    out, err = capsys.readouterr()
    assert out.startswith("parity pass: all 3 compared callback(s) reached the queue intact")
    assert "warning: no callback so far has a value for the key json:MSGID+json:RESULT" in err


@pytest.mark.parametrize(
    "key",
    [
        "json:msgid",  # the bodies have MSGID: another case
        "json:NOPE",  # the bodies are Bizppurio's: its profile fits
        "form:MSGID",  # the bodies are JSON, not a form
    ],
)
@pytest.mark.parametrize("html", [False, True], ids=["state only", "page in the state"])
def test_a_key_the_bodies_contradict_is_refused_and_nothing_is_written(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, key: str, html: bool
) -> None:
    app, queue = _write(tmp_path, {n: body(n) for n in range(3)})
    state = tmp_path / "var" / "watch"
    args = ["verify", "watch", "--app", app, "--queue", queue, "--state", str(state)]
    args += ["--key", key, "--once"] + (["--html", str(state / "parity.html")] if html else [])
    err = refusal(capsys, *args)
    assert "the key matches no record" in err
    assert "pass --profile bizppurio (some bodies are bizppurio's)" in err
    assert not (tmp_path / "var").exists()


def test_a_refusal_in_an_existing_directory_leaves_it_as_it_was(tmp_path: Path) -> None:
    app, queue = _write(tmp_path, {n: body(n) for n in range(3)})
    state = tmp_path / "state"
    state.mkdir()
    (state / "notes.txt").write_text("the operator's\n", encoding="utf-8")
    wrong = Watcher(app, queue, state, ParityOptions(key="json:NOPE"))
    with pytest.raises(InputError, match="the key matches no record"), wrong as watcher:
        watcher.update()
    assert sorted(p.name for p in state.iterdir()) == ["notes.txt"]


def test_a_key_that_cannot_be_read_is_refused_before_the_state_is_made(tmp_path: Path) -> None:
    app, queue = _write(tmp_path, {n: body(n) for n in range(3)})
    for options in (ParityOptions(key="xml:MSGID"), ParityOptions(key="sha256", profile="x")):
        with pytest.raises(InputError):
            Watcher(app, queue, tmp_path / "var" / "watch", options).__enter__()
    assert not (tmp_path / "var").exists()


def test_records_with_neither_the_key_nor_a_request_id_are_still_refused(tmp_path: Path) -> None:
    export = write_lines(
        tmp_path / "export.jsonl",
        [json.dumps({"time": T0 / 1000 + n, "body": _other_shape(n)}) for n in range(3)],
    )
    queue = write_messages(
        tmp_path / "q.jsonl", [message(f"m{n}", _other_shape(n), T0 + n * 1000) for n in range(3)]
    )
    watch = Watcher(f"jsonl:{export}", f"jsonl:{queue}", tmp_path / "state", PROFILE)
    with pytest.raises(InputError, match="the key matches no record"), watch as watcher:
        watcher.update()
    assert not (tmp_path / "state").exists()
