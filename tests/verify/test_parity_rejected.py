"""Callbacks the app rejected are still mirrored: a key the app only rejected (an upstream
status, non-2xx or unreachable) with no copy in the queue is a copy the mirror lost, so
missing_in_queue (or in_flight within the grace); with a copy it stays missing_in_app. Keys that
mix accepted and rejected records (a vendor's retry with a body key) are judged by their
accepted records, as before; and heal finds a rejected record's body to re-send."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from hookshift.verify.heal import find_bodies, heal
from hookshift.verify.parity import ParityOptions, class_counts, class_sql, run_parity, verdict_for
from hookshift.verify.report import render
from hookshift.verify.tally import Bulk
from tests.verify.data import T0, body, message, nginx_line, rid, write_lines, write_messages

S = 1000
DAY = 86_400 * S
END, GRACE = T0 + 100 * S, 30 * S  # in flight: an app time after T0 + 70 s

# key -> (an, anm, arej, ta, tr, qn, qrep, tq): the per-key detail (verify/tally.py's key_detail)
DETAIL: dict[str, tuple[int, int, int, int | None, int | None, int, int, int | None]] = {
    "accepted, copy": (1, 0, 0, T0, None, 1, 0, T0),
    "accepted, no copy": (1, 0, 0, T0, None, 0, 0, None),
    "accepted, no copy, recent": (1, 0, 0, T0 + 90 * S, None, 0, 0, None),
    "rejected, no copy": (0, 0, 1, None, T0, 0, 0, None),
    "rejected, no copy, recent": (0, 0, 1, None, T0 + 90 * S, 0, 0, None),
    "rejected, no copy, no time": (0, 0, 1, None, None, 0, 0, None),
    "rejected twice, no copy": (0, 0, 2, None, T0, 0, 0, None),
    "rejected and not mirrored, no copy": (0, 1, 1, None, T0, 0, 0, None),
    "rejected, copy": (0, 0, 1, None, T0, 1, 0, T0 + 40),
    "rejected, copies": (0, 0, 1, None, T0, 2, 0, T0 + 40),
    "rejected, heal replay only": (0, 0, 1, None, T0, 1, 1, T0 + DAY),
    "rejected, copy and replay": (0, 0, 1, None, T0, 2, 1, T0 + 40),
    "not mirrored, no copy": (0, 1, 0, None, None, 0, 0, None),
    "queue only": (0, 0, 0, None, None, 1, 0, T0),
    # a vendor's retry with a body key: the key is judged by its accepted records
    "rejected then accepted, copy": (1, 0, 1, T0 + 5 * S, T0, 1, 0, T0 + 5 * S),
    "rejected then accepted, no copy": (1, 0, 1, T0 + 5 * S, T0, 0, 0, None),
    "accepted, rejected retry recent, no copy": (1, 0, 1, T0, T0 + 90 * S, 0, 0, None),
    "rejected, accepted retry recent, no copy": (1, 0, 1, T0 + 90 * S, T0, 0, 0, None),
}
CLASS = {
    "accepted, copy": "both",
    "accepted, no copy": "miq",
    "accepted, no copy, recent": "fly",
    "rejected, no copy": "miq",
    "rejected, no copy, recent": "fly",
    "rejected, no copy, no time": "miq",
    "rejected twice, no copy": "miq",
    "rejected and not mirrored, no copy": "miq",
    "rejected, copy": "mia",
    "rejected, copies": "mia",
    "rejected, heal replay only": "mia",
    "rejected, copy and replay": "mia",
    "not mirrored, no copy": "none",
    "queue only": "mia",
    "rejected then accepted, copy": "both",
    "rejected then accepted, no copy": "miq",
    "accepted, rejected retry recent, no copy": "miq",
    "rejected, accepted retry recent, no copy": "fly",
}


@pytest.fixture
def detail() -> Iterator[Any]:
    con = duckdb.connect()
    con.execute("""
        CREATE TEMP TABLE key_detail (hk UBIGINT, name VARCHAR, an INTEGER, anm INTEGER,
            arej INTEGER, ah UBIGINT, ta BIGINT, tr BIGINT, qn INTEGER, qrep INTEGER,
            qh UBIGINT, tq BIGINT, tm BIGINT, qd INTEGER, same BOOLEAN)
    """)
    for hk, (name, (an, anm, arej, ta, tr, qn, qrep, tq)) in enumerate(DETAIL.items(), 1):
        tm = tq if qn > qrep else None  # the mirror's first copy
        same = an > 0 and qn > 0
        con.execute(
            "INSERT INTO key_detail VALUES (?, ?, ?, ?, ?, 7, ?, ?, ?, ?, 7, ?, ?, ?, ?)",
            [hk, name, an, anm, arej, ta, tr, qn, qrep, tq, tm, qn, same],
        )
    yield con
    con.close()


def _classify(
    con: Any, end: int | None = END, grace: int = GRACE, window: tuple[int, int] | None = None
) -> dict[str, str]:
    since, until = window or (None, None)
    con.execute(
        "CREATE OR REPLACE TEMP VIEW classified AS SELECT *,"
        f" {class_sql(end, grace, since, until)} AS cls FROM key_detail"
    )
    return {str(n): str(c) for n, c in con.execute("SELECT name, cls FROM classified").fetchall()}


NO_NULLS = dict.fromkeys(
    (
        "unkeyed_app",
        "unkeyed_app_unlogged",
        "unkeyed_queue",
        "unkeyed_accepted",
        "by_request_id_app",
        "by_request_id_queue",
        "malformed_app",
        "malformed_queue",
    ),
    0,
)


def test_each_kind_of_key_gets_its_class(detail: Any) -> None:
    assert _classify(detail) == CLASS


def test_a_key_the_app_only_rejected_counts_as_missing_and_as_rejected(detail: Any) -> None:
    _classify(detail)
    counts, _ = class_counts(detail, Bulk(), NO_NULLS)
    miq = [n for n, c in CLASS.items() if c == "miq"]
    assert counts["missing_in_queue"] == len(miq) == 7
    assert counts["missing_in_queue_rejected"] == sum(DETAIL[n][0] == 0 for n in miq) == 4
    assert counts["in_flight"] == 3
    assert counts["missing_in_app"] == 5
    # app_rejected counts the records of keys with no accepted one, whatever their class
    assert counts["app_rejected"] == sum(d[2] for d in DETAIL.values() if d[0] == 0) == 10
    # a key in the queue only through a heal replay: the matched ones, and one the app rejected
    assert counts["replayed"] == 1


def test_without_a_time_of_the_queue_read_a_rejected_key_is_missing_not_in_flight(
    detail: Any,
) -> None:
    """A watch classifies with no end (in flight is decided later from the key's time)."""
    classes = _classify(detail, end=None)
    assert classes["rejected, no copy, recent"] == "miq"
    assert classes["accepted, no copy, recent"] == "miq"


def test_a_window_judges_a_rejected_key_by_its_copy_as_it_judges_a_queue_only_one(
    detail: Any,
) -> None:
    """A copy sent after --until is not the window's (none), yet it is a copy: the key is not
    missing. In flight is judged against --until."""
    until = T0 + 20 * S
    classes = _classify(detail, end=until, grace=5 * S, window=(T0 - 10 * S, until))
    assert classes["rejected, copy"] == "mia"
    assert classes["queue only"] == "mia"
    assert classes["rejected, heal replay only"] == "none"  # sent a day later
    assert classes["rejected, no copy"] == "miq"
    assert _classify(detail, end=until, grace=30 * S)["rejected, no copy"] == "fly"


def test_the_verdict_says_how_many_missing_ones_the_app_rejected() -> None:
    base = {"missing_in_queue": 0, "mismatched": 0, "compared": 3, "in_flight": 0}
    verdict, reason = verdict_for(base | {"missing_in_queue": 3, "missing_in_queue_rejected": 2}, 1)
    assert verdict == "fail"
    assert reason == (
        "3 callback(s) nginx passed to the app are missing in the queue"
        " (2 of them the app rejected)"
    )
    _, reason = verdict_for(base | {"missing_in_queue": 3, "missing_in_queue_rejected": 0}, 1)
    assert reason == "3 callback(s) the app accepted are missing in the queue"
    _, reason = verdict_for(base | {"missing_in_queue": 3}, 1)  # a count from before it existed
    assert reason == "3 callback(s) the app accepted are missing in the queue"


# --------------------------------------------------------------------------- whole runs

# callback n at T0 + n s; upstream status, and whether the mirror's copy is in the queue
RUN: dict[int, tuple[str, bool]] = {
    1: ("200", True),  # matched
    2: ("502", False),  # rejected (the app deploying): its copy lost -> missing_in_queue
    3: ("502", True),  # rejected, copy in the queue -> missing_in_app
    4: ("", False),  # nginx answered itself: never mirrored
    5: ("200", False),  # accepted, copy lost -> missing_in_queue
    6: ("504", False),  # rejected, copy lost
    7: ("502, 502", False),  # rejected after nginx's own retry, copy lost
    50: ("502", False),  # rejected 20 s before the newest record: in flight with --grace 30
    70: ("200", True),  # the newest record
}


def _run_files(tmp_path: Path) -> tuple[str, str]:
    log = write_lines(
        tmp_path / "parity.log",
        [
            nginx_line(rid(n), T0 + n * S, body(n), upstream_status=status)
            for n, (status, _) in RUN.items()
        ],
    )
    queue = write_messages(
        tmp_path / "queue.jsonl",
        [
            message(f"m{n}", body(n), T0 + n * S + 40, request_id=rid(n))
            for n, (_, copied) in RUN.items()
            if copied
        ],
    )
    return f"nginx:{log}", f"jsonl:{queue}"


def test_a_rejected_callback_whose_copy_is_lost_fails_parity_and_is_listed_for_heal(
    tmp_path: Path,
) -> None:
    app, queue = _run_files(tmp_path)
    report = run_parity(app, queue, ParityOptions(grace_s=30, redact=False))
    c = report.counts
    assert (c["missing_in_queue"], c["missing_in_queue_rejected"], c["in_flight"]) == (4, 3, 1)
    assert (c["missing_in_app"], c["app_rejected"], c["not_mirrored"]) == (1, 5, 1)
    assert (c["app"], c["queue"], c["matched"]) == (3, 3, 2)
    assert report.verdict == "fail"
    assert report.reason == (
        "4 callback(s) nginx passed to the app are missing in the queue"
        " (3 of them the app rejected)"
    )
    assert report.missing_in_queue_keys == [rid(n) for n in (2, 5, 6, 7)]  # by app time
    missing = {s["key"]: s for s in report.samples["missing_in_queue"]}
    assert missing[rid(2)]["app_status"] == "rejected"
    assert missing[rid(2)]["app_body"] == body(2) and missing[rid(2)]["queue_body"] is None
    assert missing[rid(5)]["app_status"] == "accepted"
    assert [s["key"] for s in report.samples["in_flight"]] == [rid(50)]
    assert [s["key"] for s in report.samples["missing_in_app"]] == [rid(3)]
    # the timeline puts each loss at its app time, the rejected ones too
    lost = {b["start"][:19]: b["missing_in_queue"] for b in report.timeline["buckets"]}
    assert sum(lost.values()) == 4 and lost["2026-11-28T07:55:02"] == 1
    flying = {b["start"][:19]: b["in_flight"] for b in report.timeline["buckets"]}
    assert flying["2026-11-28T07:55:50"] == 1
    # with no grace the one in flight is missing too
    again = run_parity(app, queue, ParityOptions(grace_s=0))
    assert again.counts["missing_in_queue"] == 5
    assert again.counts["missing_in_queue_rejected"] == 4


def test_rejected_records_after_the_last_accepted_one_are_not_in_flight_for_ever(
    tmp_path: Path,
) -> None:
    """The app went down for good at the end (nothing after it was accepted) and the relay
    dropped those copies. With no time of the queue read, the window ends at the newest record:
    a rejected one counts, or such losses would stay in flight however long ago they were."""
    app = [nginx_line(rid(n), T0 + n * S, body(n)) for n in range(1, 4)]
    app += [nginx_line(rid(n), T0 + n * S, body(n), upstream_status="502") for n in (4, 5)]
    write_lines(tmp_path / "p.log", app)
    write_messages(
        tmp_path / "q.jsonl",
        [message(f"m{n}", body(n), T0 + n * S + 40, request_id=rid(n)) for n in range(1, 4)],
    )
    runs = {
        grace: run_parity(
            f"nginx:{tmp_path / 'p.log'}",
            f"jsonl:{tmp_path / 'q.jsonl'}",
            ParityOptions(grace_s=grace),
        )
        for grace in (0, 0.5)
    }
    assert runs[0].window["end"] == "2026-11-28T07:55:05.000+00:00"  # callback 5's time
    assert (runs[0].counts["missing_in_queue"], runs[0].counts["in_flight"]) == (2, 0)
    # within 0.5 s of the end: 5 may still be on its way, 4 is not
    assert (runs[0.5].counts["missing_in_queue"], runs[0.5].counts["in_flight"]) == (1, 1)
    assert runs[0.5].missing_in_queue_keys == [rid(4)]


def test_every_format_says_how_many_missing_ones_the_app_rejected(tmp_path: Path) -> None:
    report = run_parity(*_run_files(tmp_path), ParityOptions(grace_s=30))
    data = json.loads(render(report, "json"))
    assert data["counts"]["missing_in_queue"] == 4
    assert data["counts"]["missing_in_queue_rejected"] == 3
    assert data["reason"] == report.reason
    meaning = "the mirror path lost it (3 of them the app rejected)"
    for fmt in ("md", "html"):
        text = render(report, fmt)
        assert report.reason in text and meaning in text, fmt
    text = render(report, "text")
    assert text.startswith(f"parity: FAIL - {report.reason}\n")
    assert "missing_in_queue: 4\n" in text
    assert (
        f"{rid(2)}  app 2026-11-28T07:55:02.000+00:00  queue - (the app answered non-2xx)" in text
    )


def test_keys_that_mix_accepted_and_rejected_records_are_judged_by_the_accepted_ones(
    tmp_path: Path,
) -> None:
    """The vendor retried after a 502 (the same body: the same bizppurio key). One copy in the
    queue is the callback in the queue; none is a loss of the accepted one. A retry that failed
    too leaves a key the app only rejected: missing when its copies are lost."""

    def cb(n: int) -> str:
        return body(n, result="7000")

    app = [
        nginx_line(rid(1), T0 + 1 * S, cb(1), upstream_status="502"),  # retried, copy kept
        nginx_line(rid(2), T0 + 2 * S, cb(1)),
        nginx_line(rid(3), T0 + 3 * S, cb(2), upstream_status="502"),  # retried, copies lost
        nginx_line(rid(4), T0 + 4 * S, cb(2)),
        nginx_line(rid(5), T0 + 5 * S, cb(3), upstream_status="502"),  # the retry failed too
        nginx_line(rid(6), T0 + 6 * S, cb(3), upstream_status="502"),
        nginx_line(rid(7), T0 + 7 * S, cb(4), upstream_status="502"),  # both failed, one copy
        nginx_line(rid(8), T0 + 8 * S, cb(4), upstream_status="502"),
        nginx_line(rid(9), T0 + 9 * S, cb(5)),
    ]
    queue = [
        message("a", cb(1), T0 + 1 * S + 40, request_id=rid(1)),
        message("b", cb(4), T0 + 7 * S + 40, request_id=rid(7)),
        message("c", cb(5), T0 + 9 * S + 40, request_id=rid(9)),
    ]
    write_lines(tmp_path / "p.log", app)
    write_messages(tmp_path / "q.jsonl", queue)
    report = run_parity(
        f"nginx:{tmp_path / 'p.log'}",
        f"jsonl:{tmp_path / 'q.jsonl'}",
        ParityOptions(profile="bizppurio", grace_s=0, redact=False),
    )
    c = report.counts
    assert (c["matched"], c["missing_in_queue"], c["missing_in_queue_rejected"]) == (2, 2, 1)
    assert (c["missing_in_app"], c["app_rejected"], c["duplicates_app"]) == (1, 4, 0)
    assert report.missing_in_queue_keys == [f"{json.loads(cb(n))['MSGID']}\x1f7000" for n in (2, 3)]


# --------------------------------------------------------------------------- heal


def test_heal_finds_a_rejected_records_body_and_prefers_an_accepted_one(tmp_path: Path) -> None:
    write_lines(
        tmp_path / "parity.log",
        [
            nginx_line(rid(1), T0, body(1), upstream_status="502"),
            nginx_line(rid(2), T0 + S, body(2, result="4100"), upstream_status="502"),
            nginx_line(rid(3), T0 + 2 * S, body(2)),  # accepted retry, after the rejected one
            nginx_line(rid(4), T0 + 3 * S, body(4), upstream_status=""),  # never mirrored
        ],
    )
    report = {"sources": {"app": f"nginx:{tmp_path / 'parity.log'}"}, "key": "request_id"}
    found = find_bodies(report, [rid(1), rid(4)])
    assert {k: (v.body, v.replay_id) for k, v in found.items()} == {rid(1): (body(1), rid(1))}
    # a body key with a rejected record and an accepted retry: the accepted one is re-sent
    report["key"] = "json:MSGID"
    msgid = json.loads(body(2))["MSGID"]
    assert find_bodies(report, [msgid])[msgid].replay_id == rid(3)


def test_heal_re_sends_a_rejected_one_and_the_next_report_counts_it_replayed(
    tmp_path: Path,
) -> None:
    app, queue = _run_files(tmp_path)
    report = run_parity(app, queue, ParityOptions(grace_s=0, redact=False))
    path = tmp_path / "report.json"
    path.write_text(render(report, "json"), encoding="utf-8")
    stage = "https://stage.example/prod/callback"
    dry = heal(path, stage, other_target=True)  # a dry run: nothing is sent
    assert [(i.key, i.replay_id, i.body) for i in dry.to_send] == [
        (rid(n), rid(n), body(n)) for n in (2, 5, 6, 7, 50)
    ]
    assert dry.not_found == ()
    # the queue gets the replays as the stage's mapping template writes them
    replays = [message(f"r{n}", body(n), T0 + DAY, replay=rid(n)) for n in (2, 5, 6, 7, 50)]
    with Path(queue.removeprefix("jsonl:")).open("a", encoding="utf-8") as fh:
        fh.writelines(json.dumps(m) + "\n" for m in replays)
    after = run_parity(app, queue, ParityOptions(grace_s=0))
    c = after.counts
    assert (c["missing_in_queue"], c["missing_in_queue_rejected"], c["replayed"]) == (0, 0, 5)
    # the app lost the rejected ones; the queue has them now (through heal)
    assert c["missing_in_app"] == 1 + 4 and c["matched"] == 3
    assert after.verdict == "pass"
    assert {s["replay_of"] for s in after.samples["replayed"]} == {rid(n) for n in (2, 5, 6, 7, 50)}
