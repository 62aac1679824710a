"""The timeline's bucket follows the span of the records: a bar a second for a rehearsal of a few
seconds, a bar every two hours for a week; every report names it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hookshift.verify.parity import (
    TIMELINE_BARS_MAX,
    TIMELINE_BUCKETS_S,
    ParityOptions,
    ParityReport,
    bucket_label,
    iso,
    run_parity,
    timeline_bucket_s,
)
from hookshift.verify.report import render, timeline_svg
from tests.verify.conftest import Scenario
from tests.verify.data import T0, body, message, nginx_line, rid, write_lines, write_messages

SECOND, MINUTE, HOUR, DAY = 1000, 60_000, 3_600_000, 86_400_000


@pytest.mark.parametrize(
    ("span_ms", "bucket_s"),
    [
        (0, 1),
        (4 * SECOND, 1),
        (10 * MINUTE, 10),
        (1 * DAY, 900),
        (7 * DAY, 7200),
    ],
)
def test_the_bucket_is_chosen_from_the_span(span_ms: int, bucket_s: int) -> None:
    assert timeline_bucket_s(span_ms) == bucket_s


def _spans() -> list[int]:
    spans, span = [], 1
    while span < 400 * DAY:
        spans += [span, span + 1, span * 3 // 2]
        span *= 2
    return spans + [
        size * 1000 * (TIMELINE_BARS_MAX - 2) + d for size in TIMELINE_BUCKETS_S for d in (-1, 0, 1)
    ]


def test_every_span_gets_a_readable_bucket_and_a_useful_number_of_bars() -> None:
    previous = 0
    for span in sorted(_spans()):
        bucket_s = timeline_bucket_s(span)
        assert bucket_s in TIMELINE_BUCKETS_S or bucket_s % 86_400 == 0, span
        # the most buckets records `span` apart can touch, whatever their first record's time
        assert span // (bucket_s * 1000) + 2 <= TIMELINE_BARS_MAX, span
        if span >= MINUTE:
            assert span // (bucket_s * 1000) + 1 >= 30, span
        assert bucket_s >= previous, span  # a longer span never gets a finer bucket
        previous = bucket_s


@pytest.mark.parametrize(
    ("bucket_s", "label"),
    [
        (1, "1 s"),
        (90, "90 s"),
        (60, "1 min"),
        (900, "15 min"),
        (7200, "2 h"),
        (86_400, "1 day"),
        (2 * 86_400, "2 days"),
    ],
)
def test_bucket_labels_read_as_people_say_them(bucket_s: int, label: str) -> None:
    assert bucket_label(bucket_s) == label


def _callbacks(tmp_path: Path, offsets_ms: list[int], lost: set[int], **kw: object) -> ParityReport:
    """Callback n at T0 + offsets_ms[n], each sent to the queue 40 ms later unless n is lost."""
    app = [nginx_line(rid(n), T0 + t, body(n)) for n, t in enumerate(offsets_ms)]
    queue = [
        message(f"m{n}", body(n), T0 + t + 40, request_id=rid(n))
        for n, t in enumerate(offsets_ms)
        if n not in lost
    ]
    write_lines(tmp_path / "p.log", app)
    write_messages(tmp_path / "q.jsonl", queue)
    options = ParityOptions(**({"grace_s": 1.0} | kw))  # type: ignore[arg-type]
    return run_parity(f"nginx:{tmp_path / 'p.log'}", f"jsonl:{tmp_path / 'q.jsonl'}", options)


def test_a_few_seconds_of_callbacks_get_a_bar_a_second(tmp_path: Path) -> None:
    report = _callbacks(tmp_path, [n * SECOND for n in range(5)], lost={2})
    assert report.timeline["bucket_s"] == 1 and report.timeline["bucket"] == "1 s"
    buckets = report.timeline["buckets"]
    assert [b["start"] for b in buckets] == [iso(T0 + n * SECOND) for n in range(5)]
    assert [b["app"] for b in buckets] == [1, 1, 1, 1, 1]
    assert [b["queue"] for b in buckets] == [1, 1, 0, 1, 1]
    assert [b["missing_in_queue"] for b in buckets] == [0, 0, 1, 0, 0]
    assert timeline_svg(report).count('class="bar app"') == 5


def test_a_quiet_stretch_shows_as_empty_buckets(tmp_path: Path) -> None:
    offsets = [n * SECOND for n in range(10)] + [(50 + n) * SECOND for n in range(10)]
    report = _callbacks(tmp_path, offsets, lost=set())
    buckets = report.timeline["buckets"]
    assert report.timeline["bucket_s"] == 1 and len(buckets) == 60
    assert [b["app"] for b in buckets] == [1] * 10 + [0] * 40 + [1] * 10
    assert [b["queue"] for b in buckets] == [1] * 10 + [0] * 40 + [1] * 10


def test_a_week_of_callbacks_gets_bars_of_two_hours(tmp_path: Path) -> None:
    # a callback every 3 hours for a week, a minute and a few seconds past the hour; one lost
    offsets = [n * 3 * HOUR + MINUTE + n * SECOND for n in range(56)]
    report = _callbacks(tmp_path, offsets, lost={30})
    timeline = report.timeline
    assert timeline["bucket_s"] == 7200 and timeline["bucket"] == "2 h"
    buckets = timeline["buckets"]
    assert len(buckets) <= TIMELINE_BARS_MAX
    starts = [T0 // (2 * HOUR) * (2 * HOUR) + i * 2 * HOUR for i in range(len(buckets))]
    assert [b["start"] for b in buckets] == [iso(s) for s in starts]
    assert sum(b["app"] for b in buckets) == 56 and sum(b["queue"] for b in buckets) == 55
    (lossy,) = [b for b in buckets if b["missing_in_queue"]]
    assert lossy["start"] == iso((T0 + offsets[30]) // (2 * HOUR) * (2 * HOUR))


def test_fine_buckets_count_each_class_as_the_counts_do(scenario: Scenario) -> None:
    # every class of the shared scenario, over 200 s: buckets of 2 s
    report = run_parity(
        f"nginx:{scenario.app_glob}", f"jsonl:{scenario.queue_file}", ParityOptions()
    )
    assert report.timeline["bucket_s"] == 2
    buckets = report.timeline["buckets"]
    total = {name: sum(b[name] for b in buckets) for name in buckets[0] if name != "start"}
    counts = report.counts
    assert total["missing_in_queue"] == counts["missing_in_queue"] == 1
    assert total["in_flight"] == counts["in_flight"] == 1
    assert total["missing_in_app"] == counts["missing_in_app"] == 2
    assert (total["app"], total["queue"]) == (counts["app"], counts["queue"])


def test_every_format_names_the_bucket(tmp_path: Path) -> None:
    report = _callbacks(tmp_path, [n * SECOND for n in range(5)], lost={2})
    first, last = iso(T0), iso(T0 + 4 * SECOND)
    summary = (
        f"per 1 s, 5 bucket(s) from {first} to {last}; missing_in_queue in 1 of them, "
        f"the first at {iso(T0 + 2 * SECOND)}"
    )
    assert f"timeline: {summary}\n" in render(report, "text")
    assert f"- timeline: {summary}\n" in render(report, "md")
    assert "<h2>Timeline (per 1 s)</h2>" in render(report, "html")
    assert json.loads(render(report, "json"))["timeline"]["bucket"] == "1 s"
