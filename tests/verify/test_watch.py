"""`verify watch` equals a one-shot `verify parity` over the same files at every step, while
the files grow, rotate, get compressed, and carry a line still being written."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import pytest

from hookshift.errors import InputError
from hookshift.verify.parity import COUNT_KEYS, ParityOptions, run_parity
from hookshift.verify.watch import Watcher, file_identity, read_state
from tests.verify.conftest import t
from tests.verify.data import T0, body, message, nginx_line, rid

COMPARED = COUNT_KEYS  # every count, missing_in_queue_rejected too


def _line(n: int) -> bytes:
    upstream = {7: "", 8: "502", 14: "502, 200"}.get(n, "200")
    return (nginx_line(rid(n), t(n), body(n), upstream_status=upstream) + "\n").encode()


def _msg(mid: str, n: int, payload: str | None = None, **kw: str) -> bytes:
    m = message(mid, payload or body(n), t(n) + 40, **({"request_id": rid(n)} | kw))
    return (json.dumps(m, ensure_ascii=False) + "\n").encode()


def _append(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("ab") as fh:
        fh.write(data)


def _one_shot(root: Path, options: ParityOptions) -> dict[str, int]:
    report = run_parity(f"nginx:{root / 'parity.log*'}", f"archive:{root / 'archive'}", options)
    return {k: report.counts[k] for k in COMPARED} | {"verdict": int(report.passed)}


def _watched(w: Watcher) -> dict[str, int]:
    state = w.update()
    return {k: state.counts[k] for k in COMPARED} | {"verdict": int(state.passed)}


WINDOWED = ParityOptions(since_ms=t(3), until_ms=t(12), grace_s=2)


@pytest.mark.parametrize("options", [ParityOptions(), WINDOWED], ids=["all", "window"])
def test_watch_equals_one_shot_parity_at_every_step(
    tmp_path: Path, options: ParityOptions, monkeypatch: pytest.MonkeyPatch
) -> None:
    # new bodies hashed over several pages; an update reads in several rounds
    monkeypatch.setattr("hookshift.verify.watch.CANON_CHUNK", 2)
    monkeypatch.setattr("hookshift.verify.watch.READ_BUDGET", 300)
    log, seg1 = tmp_path / "parity.log", tmp_path / "archive" / "seg-1.jsonl"
    seg2 = tmp_path / "archive" / "seg-2.jsonl"
    reordered = json.dumps(dict(reversed(json.loads(body(10)).items())), ensure_ascii=False)
    steps = []

    def step1() -> None:
        _append(log, _line(1) + _line(2) + _line(3))
        _append(seg1, _msg("m1", 1) + _msg("m2", 2))

    def step2() -> None:  # logrotate renames the live log; nginx still writes to it a moment
        log.rename(tmp_path / "parity.log.1")
        _append(tmp_path / "parity.log.1", _line(4))
        _append(log, _line(5) + _line(6))
        _append(seg1, _msg("m3", 3) + _msg("m4a", 4) + _msg("m4b", 4) + _msg("m5", 5))

    def step3() -> None:  # .1 is compressed to .2.gz, the live log rotates again
        old = tmp_path / "parity.log.1"
        (tmp_path / "parity.log.2.gz").write_bytes(gzip.compress(old.read_bytes()))
        old.unlink()
        log.rename(old)
        _append(old, _line(7) + b'{"not json\n')
        _append(log, _line(8) + _line(9))
        _append(seg2, _msg("m5", 5) + _msg("m8", 8) + _msg("m9", 9, body(9).replace("+", " ")))

    def step4() -> None:
        _append(log, _line(10) + _line(12) + _line(13) + _line(14))
        _append(seg2, _msg("m10", 10, reordered.replace(",", ", ")) + _msg("m11", 11))
        replay = message("m12", body(12), t(12) + 5000, replay=rid(12))
        _append(seg2, (json.dumps(replay) + "\n").encode() + _msg("m14", 14))

    steps = [step1, step2, step3, step4]
    with Watcher(
        f"nginx:{tmp_path / 'parity.log*'}",
        f"archive:{tmp_path / 'archive'}",
        tmp_path / "st",
        options,
    ) as w:
        for number, step in enumerate(steps, 1):
            step()
            assert _watched(w) == _one_shot(tmp_path, options), f"after step {number}"
            assert _watched(w) == _one_shot(tmp_path, options), f"step {number}, nothing new"
    final = read_state(tmp_path / "st")
    if options is WINDOWED:
        assert final is not None and final.counts["app"] < 11
        return
    assert final is not None and final.verdict == "fail"
    assert final.counts["mismatched"] == 1 and final.counts["missing_in_queue"] == 1
    assert final.counts["matched"] == 8 and final.counts["malformed"] == 1
    # a new watcher over the same state reads nothing again and gives the same result
    with Watcher(
        f"nginx:{tmp_path / 'parity.log*'}", f"archive:{tmp_path / 'archive'}", tmp_path / "st"
    ) as w:
        again = w.update()
        assert again.new_bytes == {"app": 0, "queue": 0}
        assert again.counts == final.counts


def _at(n: int, seconds: float, upstream: str) -> bytes:
    return (
        nginx_line(rid(n), T0 + int(seconds * 1000), body(n), upstream_status=upstream) + "\n"
    ).encode()


def _sent(mid: str, n: int, sent_ms: int, **kw: str) -> bytes:
    m = message(mid, body(n), sent_ms, **({"request_id": rid(n)} | kw))
    return (json.dumps(m, ensure_ascii=False) + "\n").encode()


@pytest.mark.parametrize(
    "options",
    [
        ParityOptions(),
        ParityOptions(grace_s=0),
        ParityOptions(since_ms=T0 + 2000, until_ms=T0 + 61_500, grace_s=2),
    ],
    ids=["grace 30", "grace 0", "window"],
)
def test_watch_classes_keys_the_app_only_rejected_as_parity_does(
    tmp_path: Path, options: ParityOptions
) -> None:
    """Keys the app only rejected (the app deploying): without a copy missing_in_queue, or in
    flight within the grace; a copy that comes in a later update makes one missing_in_app; a
    heal replay makes another replayed. At every step the watch says what parity says."""
    log, seg = tmp_path / "parity.log", tmp_path / "archive" / "seg-1.jsonl"
    day = 86_400_000

    def step1() -> None:  # 2 and 3 rejected, copies not in yet: in flight with a grace
        _append(log, _at(1, 1, "200") + _at(2, 2, "502") + _at(3, 3, "502") + _at(4, 4, ""))
        _append(seg, _sent("m1", 1, T0 + 1040))

    def step2() -> None:  # 3's copy comes late; 6 rejected at the edge
        _append(log, _at(5, 60, "200") + _at(6, 61, "504") + _at(8, 5, "502, 502"))
        _append(seg, _sent("m3", 3, T0 + 3900) + _sent("m5", 5, T0 + 60_040))

    def step3() -> None:  # heal replays 2 a day later; 7 rejected and its copy in one update
        _append(log, _at(7, 62, "502"))
        _append(seg, _sent("r2", 2, T0 + day, replay=rid(2)) + _sent("m7", 7, T0 + 62_040))

    with Watcher(f"nginx:{log}", f"archive:{seg.parent}", tmp_path / "st", options) as w:
        for number, step in enumerate((step1, step2, step3), 1):
            step()
            state = w.update()
            report = run_parity(f"nginx:{log}", f"archive:{seg.parent}", options)
            watched = {k: state.counts[k] for k in COMPARED}
            assert watched == {k: report.counts[k] for k in COMPARED}, f"after step {number}"
            assert (state.verdict, state.reason) == (report.verdict, report.reason), number
            assert w.report(state).timeline == report.timeline, f"after step {number}"
            if number == 1 and options.grace_s == 30:
                assert state.counts["in_flight"] == 2 and state.counts["missing_in_queue"] == 0
    if options.since_ms is not None:
        return
    c = state.counts
    # 6 and 8 are missing (8 after nginx's own retry), 2 replayed, 3 and 7 in the app's loss
    assert (c["missing_in_queue"], c["missing_in_queue_rejected"], c["in_flight"]) == (2, 2, 0)
    assert (c["missing_in_app"], c["replayed"], c["app_rejected"], c["matched"]) == (3, 1, 5, 2)
    assert state.reason.startswith(
        "2 callback(s) nginx passed to the app are missing in the queue (2 of them the app"
    )


def test_a_state_directory_from_before_rejected_keys_were_counted_is_refused(
    tmp_path: Path,
) -> None:
    """Its sums left out the keys the app only rejected: an update would take them out of
    sums they are not in. A directory that read nothing yet is brought up to date instead."""
    import sqlite3

    log, seg = tmp_path / "parity.log", tmp_path / "archive" / "seg-1.jsonl"
    _append(log, _line(1))
    _append(seg, _msg("m1", 1))
    app, queue = f"nginx:{log}", f"archive:{seg.parent}"
    with Watcher(app, queue, tmp_path / "st") as w:
        w.update()
    db = sqlite3.connect(tmp_path / "st" / "watch.sqlite")
    db.execute("DELETE FROM meta WHERE name = 'rules'")
    db.commit()
    db.close()
    with (
        pytest.raises(InputError, match="made by an older hookshift") as refused,
        Watcher(app, queue, tmp_path / "st"),
    ):
        pass
    assert refused.value.fix is not None and "new --state directory" in refused.value.fix
    # an older directory that read nothing: its old pending table is replaced
    empty = tmp_path / "empty"
    empty.mkdir()
    db = sqlite3.connect(empty / "watch.sqlite")
    db.execute("CREATE TABLE pending (hk INTEGER PRIMARY KEY, ta INTEGER NOT NULL)")
    db.commit()
    db.close()
    with Watcher(app, queue, empty) as w:
        assert w.update().counts["matched"] == 1


def test_watch_leaves_heal_replays_out_of_the_lag_as_parity_does(tmp_path: Path) -> None:
    """A replay arrives when heal ran (here an hour after the callback): the watched lag, like
    the one-shot report's, is the mirror's alone, also once a replay comes in a later update."""
    log, seg = tmp_path / "parity.log", tmp_path / "archive" / "seg-1.jsonl"
    _append(log, b"".join(_line(n) for n in range(1, 6)))
    _append(seg, _msg("m1", 1) + _msg("m2", 2) + _msg("m3", 3))
    hour = 3_600_000
    replays = [message(f"r{n}", body(n), t(n) + hour, replay=rid(n)) for n in (4, 5)]
    with Watcher(f"nginx:{log}", f"archive:{seg.parent}", tmp_path / "st") as w:
        assert w.update().lag_ms == {"p50": 40, "p99": 40, "max": 40}
        _append(seg, "".join(json.dumps(r) + "\n" for r in replays).encode())
        watched = w.update()
    report = run_parity(f"nginx:{log}", f"archive:{seg.parent}", ParityOptions())
    assert watched.counts["replayed"] == report.counts["replayed"] == 2
    assert watched.lag_ms == report.lag_ms == {"p50": 40, "p99": 40, "max": 40}


def test_a_line_still_being_written_waits_for_its_newline(tmp_path: Path) -> None:
    log, seg = tmp_path / "parity.log", tmp_path / "archive" / "seg-1.jsonl"
    _append(log, _line(1))
    _append(seg, _msg("m1", 1))
    whole = _line(2)
    _append(log, whole[:40])
    with Watcher(f"nginx:{log}", f"archive:{seg.parent}", tmp_path / "st") as w:
        first = w.update()
        assert first.counts["app"] == 1 and first.counts["malformed"] == 0
        _append(log, whole[40:])
        _append(seg, _msg("m2", 2))
        assert _watched(w) == _one_shot_single(log, seg.parent)


def _one_shot_single(log: Path, archive: Path) -> dict[str, int]:
    report = run_parity(f"nginx:{log}", f"archive:{archive}", ParityOptions())
    return {k: report.counts[k] for k in COMPARED} | {"verdict": int(report.passed)}


def test_a_state_directory_is_for_one_pair_of_sources_and_one_key(tmp_path: Path) -> None:
    log, seg = tmp_path / "parity.log", tmp_path / "archive" / "seg-1.jsonl"
    _append(log, _line(1))
    _append(seg, _msg("m1", 1))
    with Watcher(f"nginx:{log}", f"archive:{seg.parent}", tmp_path / "st") as w:
        assert w.update().key == "request_id"
    with (
        pytest.raises(InputError, match="built with key request_id, not sha256"),
        Watcher(
            f"nginx:{log}", f"archive:{seg.parent}", tmp_path / "st", ParityOptions(key="sha256")
        ) as w,
    ):
        w.update()
    with (
        pytest.raises(InputError, match="another --since/--until/--grace"),
        Watcher(
            f"nginx:{log}", f"archive:{seg.parent}", tmp_path / "st", ParityOptions(since_ms=t(1))
        ),
    ):
        pass  # its sums were made over another window
    with pytest.raises(InputError, match="watches app"):
        Watcher(
            f"nginx:{tmp_path / 'other.log'}", f"archive:{seg.parent}", tmp_path / "st"
        ).__enter__()
    with pytest.raises(InputError, match="archive that `hookshift verify pull --follow` fills"):
        Watcher(f"nginx:{log}", "sqs:https://sqs.x/1/q", tmp_path / "st2")


def test_a_gate_uses_a_watched_result_only_while_it_is_fresh(tmp_path: Path) -> None:
    from hookshift.verify.watch import gate_reading

    log, seg = tmp_path / "parity.log", tmp_path / "archive" / "seg-1.jsonl"
    _append(log, _line(1))
    _append(seg, _msg("m1", 1))
    with Watcher(f"nginx:{log}", f"archive:{seg.parent}", tmp_path / "st") as w:
        state = w.update()
    fresh, text = gate_reading(state, state.updated_at + 10, 300)
    assert fresh and text.startswith("watched parity pass over the first record .. 2026-11-28")
    stale, text = gate_reading(state, state.updated_at + 900, 300)
    assert not stale and "900 s old" in text


def test_a_state_file_that_is_not_the_watch_s_is_refused_in_one_line(tmp_path: Path) -> None:
    log, seg = tmp_path / "parity.log", tmp_path / "archive" / "seg-1.jsonl"
    _append(log, _line(1))
    _append(seg, _msg("m1", 1))
    state = tmp_path / "st"
    state.mkdir(mode=0o700)
    (state / "watch.sqlite").write_text("junk\n")
    with (
        pytest.raises(InputError, match="is not the watch's state") as refused,
        Watcher(f"nginx:{log}", f"archive:{seg.parent}", state),
    ):
        pass
    assert refused.value.where == str(state / "watch.sqlite")
    assert (state / "watch.sqlite").read_text() == "junk\n"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to become another user")
def test_a_log_the_watch_may_not_read_is_named_in_one_line(tmp_path: Path) -> None:
    """As a user outside group adm would run it: nginx's logs are root's, 0640."""
    log = tmp_path / "parity.log"
    _append(log, _line(1))
    log.chmod(0o600)
    tmp_path.chmod(0o755)
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # the child drops to nobody, tries, and reports the line it got
        os.close(read)
        try:
            os.setgid(65534)
            os.setuid(65534)
            file_identity(log)
            os.write(write, b"read")
        except InputError as exc:
            os.write(write, str(exc).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        said = pipe.read().decode()
    os.waitpid(child, 0)
    assert said == (
        f"{log}: cannot read it (permission denied) (fix: run the watch as a user who may read "
        "nginx's logs (root, or one in group adm))"
    )
