"""The HTML report: a page that reloads itself when asked to, mismatched samples with the bytes
that differ marked, and nothing in a callback able to become markup."""

from __future__ import annotations

import re
from typing import Any

from hookshift.verify.parity import ParityOptions, ParityReport, run_parity
from hookshift.verify.report import render, render_html
from tests.verify.conftest import Scenario
from tests.verify.data import body

GENERATED = "2026-11-28T08:00:00+00:00"
INJECTION = '&amp;</script><script>alert(1)</script><img src=x onerror="alert(2)">'


def _report(samples: dict[str, list[dict[str, Any]]] | None = None) -> ParityReport:
    counts = dict.fromkeys(
        ("app", "queue", "compared", "matched", "missing_in_queue", "missing_in_app"), 0
    )
    counts |= dict.fromkeys(
        ("duplicates_app", "duplicates_queue", "mismatched", "body_not_logged", "in_flight"), 0
    )
    counts |= dict.fromkeys(("not_mirrored", "app_rejected", "replayed", "malformed"), 0)
    counts |= {"unkeyed_app": 0, "unkeyed_queue": 0}
    return ParityReport(
        verdict="fail",
        reason="1 callback(s) reached the queue with another body",
        key="request_id",
        window={"since": None, "until": None, "grace_s": 30.0, "first_seen": GENERATED},
        counts=counts,
        lag_ms={"p50": 40, "p99": 40, "max": 40},
        samples=samples or {},
        timeline={"bucket_s": 1, "bucket": "1 s", "buckets": []},
        malformed_examples=[],
        sources={"app": "nginx:parity.log", "queue": "archive:q"},
        missing_in_queue_keys=[],
        redacted=True,
        generated_at=GENERATED,
        duration_s=0.1,
    )


def _sample(key: str, app_body: str | None, queue_body: str | None) -> dict[str, Any]:
    return {
        "key": key,
        "app_time": GENERATED,
        "queue_time": GENERATED,
        "app_status": "accepted",
        "app_body": app_body,
        "queue_body": queue_body,
    }


REFRESH = re.compile(r'<meta http-equiv="refresh" content="(\d+)">')


def test_the_page_reloads_itself_only_when_asked_and_says_so() -> None:
    report = _report()
    for plain in (render_html(report), render(report, "html")):
        assert "http-equiv" not in plain and 'id="refresh"' not in plain
    page = render_html(report, refresh_s=30)
    head, _, page_body = page.partition("</head>")
    assert REFRESH.findall(head) == ["30"] and not REFRESH.search(page_body)
    note = re.search(r'<p id="refresh">(.*?)</p>', page_body, re.S)
    assert note is not None
    assert GENERATED in note.group(1) and "reloads itself every 30 s" in note.group(1)
    for reference in ("src=", "href=", "url(", "@import", "<script"):
        assert reference not in page  # still one file: nothing to fetch, nothing to run


def test_a_refresh_of_zero_still_pauses_between_reloads() -> None:
    assert REFRESH.findall(render_html(_report(), refresh_s=0)) == ["1"]


def test_a_mismatched_sample_marks_what_differs_in_each_body() -> None:
    app = '{"USERDATA":"배송 안내: 50%+off","q":"%ED%95%9C"}'
    queue = '{"USERDATA":"배송 완료: 50% off","q":"%ED%95%9D"}'
    page = render_html(_report({"mismatched": [_sample("r1", app, queue)]}))
    assert "<del>안내</del>" in page and "<ins>완료</ins>" in page
    assert "50%<del>+</del>off" in page and "50%<ins> </ins>off" in page
    assert "<del>%ED%95%9C</del>" in page and "<ins>%ED%95%9D</ins>" in page
    first_byte = len(app[: app.index("안")].encode())
    assert f"first difference at byte {first_byte} (character {app.index('안')})" in page


def test_no_body_can_become_markup() -> None:
    samples = {
        "mismatched": [_sample(INJECTION, INJECTION, INJECTION.replace("(1)", "(9)"))],
        "missing_in_queue": [_sample(INJECTION, INJECTION, None)],
    }
    report = _report(samples)
    for page in (render_html(report), render_html(report, refresh_s=5)):
        assert "<script" not in page and "<img" not in page and "</script>" not in page
        # two keys, three bodies
        assert page.count("&lt;/script&gt;&lt;script&gt;alert(") == 5
        assert page.count("&amp;amp;") == 5  # escaped once more, so it shows as written
        assert "alert(<del>1</del>)" in page and "alert(<ins>9</ins>)" in page


def test_a_change_of_invisible_characters_is_shown_as_escapes() -> None:
    page = render_html(_report({"mismatched": [_sample("r1", "a\nbcdef\u200b", "a\r\nbcdef")]}))
    assert '<ins><span class="ctl">\\r</span></ins>' in page
    assert '<del><span class="ctl">\\u200b</span></del>' in page


def test_bodies_the_same_in_the_part_shown_say_so() -> None:
    page = render_html(_report({"mismatched": [_sample("r1", "a" * 600 + "…", "a" * 600 + "…")]}))
    assert "the text shown is the same on both sides" in page


def test_text_and_html_reports_point_at_the_first_difference(scenario: Scenario) -> None:
    # callback 9 reached the queue with its "+" decoded to a space
    report = run_parity(
        f"nginx:{scenario.app_glob}", f"jsonl:{scenario.queue_file}", ParityOptions()
    )
    where = body(9).index("+")
    assert f"    first difference at byte {where} (character {where})\n" in render(report, "text")
    page = render(report, "html")
    assert "<del>+</del>" in page and "<ins> </ins>" in page
