"""A few messages whose SentTimestamp lies far from every callback (one kept in the queue for
a day, one from a clock ahead) are named in one warning and left out of the window and the
timeline, which stay on the bulk: they would otherwise stretch the timeline's bars to hours and
move the window's end, which decides what is still in flight. `verify watch` does the same."""

from __future__ import annotations

from pathlib import Path

import pytest

from hookshift.verify.parity import ParityOptions, run_parity
from hookshift.verify.watch import Watcher
from tests.verify.data import T0, body, message, nginx_line, rid, write_lines, write_messages

DAY_MS = 86_400_000
OPTIONS = ParityOptions(grace_s=5)


def _write(root: Path, sent: dict[int, int], extra: list[dict[str, object]]) -> tuple[str, str]:
    """Callbacks 0..19 a second apart; the copy of each but 19 (the newest, still on its way)
    sent 50 ms later, or at `sent[n]`; and `extra` messages."""
    log = write_lines(
        root / "parity.log", [nginx_line(rid(n), T0 + n * 1000, body(n)) for n in range(20)]
    )
    messages = [
        message(f"m{n}", body(n), sent.get(n, T0 + n * 1000 + 50), request_id=rid(n))
        for n in range(19)
    ]
    queue = write_messages(root / "archive" / "seg-000001.jsonl", messages + extra)
    return f"nginx:{log}", f"jsonl:{queue}"


@pytest.mark.parametrize(
    ("sent", "says"),
    [
        (T0 - DAY_MS, "up to 1.0 day before the first app record"),
        (T0 + 3000 + DAY_MS, "up to 24.0 h after the last"),
    ],
    ids=["a day old", "a day ahead"],
)
def test_a_copy_sent_far_from_every_callback_is_named_and_left_out_of_window_and_timeline(
    tmp_path: Path, sent: int, says: str
) -> None:
    app, queue = _write(tmp_path, {3: sent}, [])
    report = run_parity(app, queue, OPTIONS)
    # callback 19 came at the end of the traffic: in flight, as without the stray
    assert (report.verdict, report.counts["in_flight"]) == ("pass", 1)
    assert report.counts["matched"] == 19
    assert report.window["first_seen"] == "2026-11-28T07:55:00.000+00:00"
    assert report.window["end"] == "2026-11-28T07:55:19.000+00:00"
    assert report.timeline["bucket"] == "1 s" and len(report.timeline["buckets"]) == 20
    strays = [w for w in report.warnings if "sent far from the app's records" in w]
    assert strays == [
        f"1 queue message(s) were sent far from the app's records ({says}): a SentTimestamp a"
        " mirror's copy does not have (a message kept or sent again long after, or a clock);"
        " the window and the timeline leave them out, and they are still matched by key"
    ]
    with Watcher(app, queue, tmp_path / "state", OPTIONS) as watcher:
        watched = watcher.update()
        assert watcher.report(watched).timeline == report.timeline
    assert (watched.verdict, watched.reason) == (report.verdict, report.reason)
    assert watched.counts == {k: v for k, v in report.counts.items() if k in watched.counts}
    assert watched.window == report.window
    assert strays[0] in watched.warnings


def test_a_queue_that_covers_more_time_than_the_log_is_no_stray(tmp_path: Path) -> None:
    """Yesterday's traffic in the archive and only today's log: those messages are missing in
    the app, and the window and the timeline cover them."""
    yesterday = [
        message(f"y{n}", body(100 + n), T0 - DAY_MS + n * 1000, request_id=rid(100 + n))
        for n in range(20)
    ]
    app, queue = _write(tmp_path, {}, yesterday)
    report = run_parity(app, queue, OPTIONS)
    assert report.counts["missing_in_app"] == 20
    assert report.window["first_seen"] == "2026-11-27T07:55:00.000+00:00"
    assert not [w for w in report.warnings if "sent far from" in w]
