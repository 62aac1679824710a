"""A verdict says only what the inputs show: callbacks without the key, clocks that disagree,
bodies that are not UTF-8 and logs cut short are counted and named, never passed over; and
`verify watch` reaches the verdict `verify parity` reaches on the same files."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from hookshift.verify.parity import ParityOptions, ParityReport, run_parity
from hookshift.verify.report import render_text
from hookshift.verify.watch import Watcher, WatchState
from tests.verify.data import T0, body, message, nginx_line, rid, write_lines, write_messages
from tests.verify.test_hostile import refusal

PROFILE = ParityOptions(profile="bizppurio", grace_s=0)


def _other_shape(n: int) -> str:
    """A second kind of callback the same vendor posts: no MSGID, so no value for the key."""
    return json.dumps({"TYPE": "report", "CMSGID": f"c{n}", "RESULT": "7000"})


def _write(
    tmp_path: Path,
    bodies: dict[int, str],
    lost: set[int] = frozenset(),  # type: ignore[assignment]
    *,
    skew_ms: int = 0,
    t0: int = T0,
) -> tuple[str, str]:
    """A parity log of `bodies` (one a second from `t0`) and a queue holding the copy of each
    but the `lost` ones, sent 50 ms after nginx logged it; nginx's clock `skew_ms` ahead of
    the queue's."""
    log = write_lines(
        tmp_path / "parity.log",
        [nginx_line(rid(n), t0 + n * 1000 + skew_ms, b) for n, b in bodies.items()],
    )
    queue = write_messages(
        tmp_path / "queue.jsonl",
        [
            message(f"m{n}", b, t0 + n * 1000 + 50, request_id=rid(n))
            for n, b in bodies.items()
            if n not in lost
        ],
    )
    return f"nginx:{log}", f"jsonl:{queue}"


def _watched(app: str, queue: str, state: Path, options: ParityOptions = PROFILE) -> WatchState:
    with Watcher(app, queue, state, options) as watcher:
        return watcher.update()


def _agree(report: ParityReport, watched: WatchState) -> None:
    assert (watched.verdict, watched.reason) == (report.verdict, report.reason)
    assert watched.counts == {k: v for k, v in report.counts.items() if k in watched.counts}


# ------------------------------------------------------------------ records without the key


def test_callbacks_without_the_key_are_matched_by_request_id_and_their_lost_copies_fail(
    tmp_path: Path,
) -> None:
    bodies = {n: _other_shape(n) if n % 10 == 0 else body(n) for n in range(100)}
    app, queue = _write(tmp_path, bodies, lost={0, 10, 20})
    report = run_parity(app, queue, PROFILE)
    assert report.verdict == "fail"
    assert report.reason == "3 callback(s) the app accepted are missing in the queue"
    c = report.counts
    assert (c["compared"], c["missing_in_queue"], c["by_request_id_app"]) == (97, 3, 10)
    assert c["by_request_id_queue"] == 7 and c["unkeyed_app"] == 0
    assert report.missing_in_queue_keys[0] == "\x1e" + rid(0)  # what heal finds it by
    assert report.samples["missing_in_queue"][0]["key"] == f"request_id={rid(0)}"
    assert (
        "10 app record(s) and 7 queue message(s) have no value for the key"
        " json:MSGID+json:RESULT; 17 of them matched by nginx's request id instead"
    ) in report.warnings
    _agree(report, _watched(app, queue, tmp_path / "state"))


def test_callbacks_without_the_key_whose_copies_arrived_pass_saying_how_they_were_matched(
    tmp_path: Path,
) -> None:
    app, queue = _write(tmp_path, {n: _other_shape(n) if n < 4 else body(n) for n in range(20)})
    report = run_parity(app, queue, PROFILE)
    assert report.passed
    assert report.reason == (
        "all 20 compared callback(s) reached the queue intact"
        " (4 app record(s) without the key matched by request id)"
    )
    _agree(report, _watched(app, queue, tmp_path / "state"))


def test_accepted_records_with_neither_the_key_nor_a_request_id_fail_the_verdict(
    tmp_path: Path,
) -> None:
    export = tmp_path / "export.jsonl"
    rows = [{"time": (T0 + n * 1000) / 1000, "body": body(n)} for n in range(5)]
    rows.append({"time": (T0 + 5000) / 1000, "body": _other_shape(5)})  # lost, nothing says so
    write_lines(export, [json.dumps(r) for r in rows])
    queue = write_messages(
        tmp_path / "q.jsonl", [message(f"m{n}", body(n), T0 + n * 1000 + 50) for n in range(5)]
    )
    report = run_parity(f"jsonl:{export}", f"jsonl:{queue}", PROFILE)
    assert report.verdict == "fail"
    assert report.reason == (
        "1 record(s) the app accepted have neither the key nor a request id: they could not be"
        " compared"
    )
    assert report.counts["unkeyed_accepted"] == 1
    assert any("1 carry no request id either and were not compared" in w for w in report.warnings)


def test_a_key_no_record_has_is_bad_input_naming_the_profile_that_fits(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    app, queue = _write(tmp_path, {n: body(n) for n in range(5)})
    err = refusal(capsys, "verify", "parity", "--app", app, "--queue", queue, "--key", "form:MSGID")
    assert err.startswith(
        "hookshift: error: --key form:MSGID: the key matches no record: none of the 5 app"
        " record(s) and 5 message(s) of "
    )
    assert "(fix: pass --profile bizppurio (some bodies are bizppurio's), or leave --key" in err


def test_a_key_no_record_has_is_refused_by_watch_too_and_the_state_keeps_no_key(
    tmp_path: Path,
) -> None:
    app, queue = _write(tmp_path, {n: body(n) for n in range(5)})
    wrong = ParityOptions(key="json:NOPE", grace_s=0)
    with pytest.raises(Exception, match="the key matches no record"):
        _watched(app, queue, tmp_path / "state", wrong)
    assert _watched(app, queue, tmp_path / "state").passed  # the right key, same directory


def test_a_report_with_no_timed_records_says_so_instead_of_a_placeholder(tmp_path: Path) -> None:
    export = write_lines(tmp_path / "export.jsonl", [json.dumps({"body": body(1)})])
    queue = write_messages(tmp_path / "q.jsonl", [message("m1", body(1), None)])
    report = run_parity(f"jsonl:{export}", f"jsonl:{queue}", PROFILE)
    text = render_text(report)
    assert "start .. end" not in text
    assert "window: no record has a time (grace 0 s)" in text


# --------------------------------------------------------------------------- clocks


def _drained_archive(
    root: Path, bodies: dict[int, str], lost: set[int], read_ms: int, t0: int = T0
) -> str:
    archive = root / "archive"
    write_messages(
        archive / "seg-000001.jsonl",
        [
            message(f"m{n}", b, t0 + n * 1000 + 50, request_id=rid(n))
            for n, b in bodies.items()
            if n not in lost
        ],
    )
    (archive / "hookshift-archive.json").write_text(
        json.dumps({"queue_url": "https://sqs.example/1/cb", "drained_at_ms": read_ms})
    )
    return f"archive:{archive}"


@pytest.mark.parametrize(("skew_ms", "looks"), [(7_200_000, "ahead of"), (-7_200_000, "behind")])
def test_a_callback_logged_after_the_queue_was_read_is_missing_not_in_flight_and_skew_is_named(
    tmp_path: Path, skew_ms: int, looks: str
) -> None:
    """Run as the check runs, minutes after the callbacks: a clock two hours off puts them
    either long before the queue was read or after now."""
    t0 = int(time.time() * 1000) - 60_000
    bodies = {n: body(n) for n in range(20)}
    app, _ = _write(tmp_path, bodies, skew_ms=skew_ms, t0=t0)
    queue = _drained_archive(tmp_path, bodies, lost={17, 18, 19}, read_ms=t0 + 20_000, t0=t0)
    options = ParityOptions(profile="bizppurio", grace_s=30)
    report = run_parity(app, queue, options)
    assert report.verdict == "fail"
    assert (report.counts["missing_in_queue"], report.counts["in_flight"]) == (3, 0)
    skew = [w for w in report.warnings if "clock" in w]
    assert len(skew) == 1 and f"the nginx host's clock looks {looks} the queue's" in skew[0]
    assert "sync the clocks of the nginx host and the pull host" in skew[0]
    watched = _watched(app, queue, tmp_path / "state", options)
    _agree(report, watched)
    assert skew[0] in watched.warnings


def test_a_callback_logged_after_the_last_drain_but_before_now_is_still_in_flight(
    tmp_path: Path,
) -> None:
    """A live mirror period: the queue was last found empty a minute ago and callbacks kept
    coming; copies of the newest may not be pulled yet (no clock is off)."""
    t0 = int(time.time() * 1000) - 30_000
    bodies = {n: body(n) for n in range(20)}
    app, _ = _write(tmp_path, bodies, t0=t0)
    queue = _drained_archive(tmp_path, bodies, lost={17, 18, 19}, read_ms=t0 - 30_000, t0=t0)
    options = ParityOptions(profile="bizppurio", grace_s=30)
    report = run_parity(app, queue, options)
    assert (report.counts["missing_in_queue"], report.counts["in_flight"]) == (0, 3)
    assert report.verdict == "pass" and not [w for w in report.warnings if "clock" in w]
    _agree(report, _watched(app, queue, tmp_path / "state", options))


# --------------------------------------------------------------------------- bodies not UTF-8


def _euc_kr_lines(numbers: range) -> tuple[list[bytes], list[str]]:
    """Parity-log lines of bodies in EUC-KR, as nginx's escape=json writes them (the bytes as
    they came), and the bodies as API Gateway put them in the queue (U+FFFD for each)."""
    lines, delivered = [], []
    for n in numbers:
        raw = (
            body(n, userdata="배송 완료")
            .encode("utf-8")
            .replace("배송 완료".encode(), "배송 완료".encode("euc-kr"))
        )
        template = nginx_line(rid(n), T0 + n * 1000, "BODY").encode()
        escaped = raw.replace(b"\\", b"\\\\").replace(b'"', b'\\"')
        lines.append(template.replace(b'"BODY"', b'"' + escaped + b'"'))
        delivered.append(raw.decode("utf-8", "replace"))
    return lines, delivered


@pytest.mark.parametrize("utf8_too", [True, False], ids=["some lines", "every line"])
def test_bodies_that_are_not_utf8_are_compared_as_api_gateway_delivered_them(
    tmp_path: Path, utf8_too: bool
) -> None:
    euc, delivered = _euc_kr_lines(range(0, 6))
    plain = [nginx_line(rid(n), T0 + n * 1000, body(n)).encode() for n in range(6, 10)]
    log = tmp_path / "parity.log"
    log.write_bytes(b"".join(line + b"\n" for line in euc + (plain if utf8_too else [])))
    messages = [message(f"m{n}", b, T0 + n * 1000 + 50, request_id=rid(n))
                for n, b in enumerate(delivered) if n != 5]  # fmt: skip
    if utf8_too:
        messages += [
            message(f"m{n}", body(n), T0 + n * 1000 + 50, request_id=rid(n)) for n in range(6, 10)
        ]
    queue = write_messages(tmp_path / "q.jsonl", messages)
    report = run_parity(f"nginx:{log}", f"jsonl:{queue}", PROFILE)
    c = report.counts
    assert (c["malformed"], c["missing_in_app"], c["mismatched"]) == (0, 0, 0)
    assert c["matched"] == (9 if utf8_too else 5) and c["missing_in_queue"] == 1
    assert report.samples["missing_in_queue"][0]["where"] == str(log)
    _agree(report, _watched(f"nginx:{log}", f"jsonl:{queue}", tmp_path / "state"))


# --------------------------------------------------------------------------- logs cut short


def test_a_rotated_log_cut_short_counts_its_last_line_malformed_with_its_place(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    lines = [nginx_line(rid(n), T0 + n * 1000, body(n)) for n in range(6)]
    rotated = tmp_path / "parity.log.1"
    rotated.write_text("\n".join(lines[:3]) + "\n" + lines[3][:80], encoding="utf-8")
    old = time.time() - 3600
    os.utime(rotated, (old, old))
    write_lines(tmp_path / "parity.log", lines[4:])
    queue = write_messages(
        tmp_path / "q.jsonl",
        [message(f"m{n}", body(n), T0 + n * 1000 + 50, request_id=rid(n)) for n in range(6)],
    )
    app = f"nginx:{tmp_path}/parity.log*"
    report = run_parity(app, f"jsonl:{queue}", PROFILE, notice=print)
    assert (report.counts["malformed_app"], report.counts["missing_in_app"]) == (1, 1)
    assert report.malformed_examples == [f"{rotated}:4: not JSON (unreadable at character 80)"]
    assert not [w for w in report.warnings if "still writing" in w]
    assert capsys.readouterr().out == ""
    watched = _watched(app, f"jsonl:{queue}", tmp_path / "state")
    assert watched.counts["malformed_app"] == 1
    _agree(report, watched)


def test_a_source_that_is_not_a_regular_file_says_so(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    queue = write_messages(tmp_path / "q.jsonl", [message("m1", body(1), T0)])
    err = refusal(
        capsys, "verify", "parity", "--app", "nginx:/dev/null", "--queue", f"jsonl:{queue}"
    )
    assert err == (
        "hookshift: error: nginx:/dev/null: /dev/null is not a regular file (fix: name the log"
        " or export file itself (globs like *.log* work))\n"
    )


def test_an_until_after_the_last_drain_leaves_the_newer_callbacks_in_flight(
    tmp_path: Path,
) -> None:
    """The queue was read before they were logged: their copies may not be pulled yet,
    whatever window end the user asks for."""
    t0 = int(time.time() * 1000) - 30_000
    bodies = {n: body(n) for n in range(20)}
    app, _ = _write(tmp_path, bodies, t0=t0)
    queue = _drained_archive(tmp_path, bodies, lost={17, 18, 19}, read_ms=t0 - 30_000, t0=t0)
    options = ParityOptions(profile="bizppurio", grace_s=30, until_ms=t0 + 3_600_000)
    report = run_parity(app, queue, options)
    assert (report.counts["missing_in_queue"], report.counts["in_flight"]) == (0, 3)
    _agree(report, _watched(app, queue, tmp_path / "state", options))


def test_callbacks_left_in_flight_by_a_drain_long_ago_are_said_to_be_unjudged(
    tmp_path: Path,
) -> None:
    t0 = int(time.time() * 1000) - 60_000
    bodies = {n: body(n) for n in range(20)}
    app, _ = _write(tmp_path, bodies, t0=t0)
    queue = _drained_archive(tmp_path, bodies, lost={17, 18, 19}, read_ms=t0 - 3_600_000, t0=t0)
    options = ParityOptions(profile="bizppurio", grace_s=30)
    report = run_parity(app, queue, options)
    assert report.counts["in_flight"] == 3
    (stale,) = [w for w in report.warnings if "last found empty" in w]
    assert stale.startswith("the queue was last found empty 61 min ago: 3 callback(s)")
    assert stale in _watched(app, queue, tmp_path / "state", options).warnings
