"""Reports in every format, phone redaction, and the HTML as headless Chromium draws it."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from hookshift.verify.parity import ParityOptions, ParityReport, run_parity
from hookshift.verify.redact import redact_body
from hookshift.verify.report import (
    APP_COLOUR,
    DEL_COLOUR,
    INS_COLOUR,
    LAG_LABEL,
    LOSS_COLOUR,
    render,
    render_html,
    timeline_svg,
)
from tests.verify import png
from tests.verify.conftest import EXPECTED, Scenario
from tests.verify.data import T0, body, message, nginx_line, rid, write_lines, write_messages


def _rgb(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


RED, BLUE = _rgb(LOSS_COLOUR), _rgb(APP_COLOUR)


def _loss_band_red_pixels(shot: Path) -> int:
    """Red pixels in the band just above the timeline's bars, where losses are marked."""
    _, _, rows = png.decode(shot.read_bytes())
    first_bar_row = next(y for y, row in enumerate(rows) if png.count_colour([row], BLUE))
    return png.count_colour(rows[first_bar_row - 16 : first_bar_row], RED)


def _report(s: Scenario, options: ParityOptions | None = None) -> ParityReport:
    return run_parity(f"nginx:{s.app_glob}", f"jsonl:{s.queue_file}", options or ParityOptions())


def test_json_report_carries_the_documented_keys(scenario: Scenario) -> None:
    data = json.loads(render(_report(scenario), "json"))
    for name in ("verdict", "reason", "key", "window", "counts", "lag_ms", "samples"):
        assert name in data
    for name in (
        "app",
        "queue",
        "matched",
        "missing_in_queue",
        "missing_in_app",
        "duplicates_app",
        "duplicates_queue",
        "mismatched",
        "in_flight",
        "not_mirrored",
        "malformed",
    ):
        assert name in data["counts"]
    assert {k: data["counts"][k] for k in EXPECTED} == EXPECTED
    assert set(data["lag_ms"]) == {"p50", "p99", "max"}


def test_samples_are_capped(scenario: Scenario) -> None:
    report = _report(scenario, ParityOptions(samples=1))
    assert len(report.samples["missing_in_app"]) == 1
    assert len(report.samples["matched"]) == 1


def test_phone_numbers_are_redacted_by_default_and_kept_with_no_redact(scenario: Scenario) -> None:
    phone = json.loads(body(6))["PHONE"]
    redacted = render(_report(scenario), "json")
    assert phone not in redacted and "*******5006" in redacted
    kept = render(_report(scenario, ParityOptions(redact=False)), "json")
    assert phone in kept


def test_redaction_covers_json_form_and_free_text() -> None:
    assert redact_body('{"PHONE":"01012345678","n":{"callback":"0212345678"}}') == (
        '{"PHONE":"*******5678","n":{"callback":"******5678"}}'
    )
    assert redact_body("phone=010-1234-5678&text=hi") == "phone=%2A%2A%2A-%2A%2A%2A%2A-5678&text=hi"
    assert redact_body("call me at 010-9876-5432") == "call me at ***-****-5432"


def test_text_report_is_lines_when_piped_and_a_table_on_a_tty(scenario: Scenario) -> None:
    report = _report(scenario)
    piped = render(report, "text")
    assert piped.startswith("parity: FAIL - ")
    assert "missing_in_queue: 1" in piped
    assert "\x1b[" not in piped
    table = render(report, "text", tty=True)
    assert "\x1b[" in table and "class" in table and "meaning" in table


def test_the_grace_reads_the_same_whether_given_as_an_int_or_a_float(scenario: Scenario) -> None:
    # the rehearsal passes grace_s=0, `verify parity --grace 0` passes 0.0
    by_python = _report(scenario, ParityOptions(grace_s=0))
    by_cli = _report(scenario, ParityOptions(grace_s=0.0))
    for fmt in ("text", "md", "html"):
        assert "(grace 0 s)" in render(by_python, fmt) and "(grace 0 s)" in render(by_cli, fmt)
    for given, shown in ((30.0, "30"), (2.5, "2.5"), (1_209_600.0, "1209600")):
        report = dataclasses.replace(by_cli, window={**by_cli.window, "grace_s": given})
        assert f"(grace {shown} s)" in render(report, "text")


def test_markdown_report_has_a_counts_table(scenario: Scenario) -> None:
    md = render(_report(scenario), "md")
    assert "## Parity: **FAIL**" in md
    assert "| missing_in_queue | 1 |" in md
    assert "### mismatched" in md


def test_every_human_format_says_what_the_lag_measures(scenario: Scenario) -> None:
    report = _report(scenario)
    lag = report.lag_ms
    figures = f"p50 {lag['p50']} ms, p99 {lag['p99']} ms, max {lag['max']} ms"
    for fmt in ("text", "md", "html"):
        assert f"{LAG_LABEL}: {figures}" in render(report, fmt)


def _chromium(args: list[str], tmp: Path) -> subprocess.CompletedProcess[bytes]:
    binary = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(binary).exists():
        pytest.fail("chromium is not installed (Debian package `chromium`)")
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--disable-sync",
        f"--user-data-dir={tmp / 'profile'}",
        "--hide-scrollbars",
    ]
    return subprocess.run([binary, *flags, *args], capture_output=True, timeout=90, check=True)


def _html_with_losses(tmp_path: Path) -> ParityReport:
    # three minutes of callbacks; minute 2 loses two of them
    app, queue = [], []
    for n in range(30):
        t = T0 + n * 6000
        app.append(nginx_line(rid(n), t, body(n)))
        if n not in (12, 13):
            queue.append(message(f"m{n}", body(n), t + 30, request_id=rid(n)))
    write_lines(tmp_path / "p.log", app)
    write_messages(tmp_path / "q.jsonl", queue)
    return run_parity(
        f"nginx:{tmp_path / 'p.log'}", f"jsonl:{tmp_path / 'q.jsonl'}", ParityOptions()
    )


@pytest.mark.e2e
def test_html_report_renders_in_chromium_with_verdict_counts_and_marked_losses(
    tmp_path: Path,
) -> None:
    report = _html_with_losses(tmp_path)
    page = tmp_path / "report.html"
    page.write_text(render(report, "html"), encoding="utf-8")
    text = page.read_text()
    for reference in ("src=", "href=", "url(", "@import", "<script"):
        assert reference not in text  # one self-contained file: nothing to fetch
    dom = _chromium(["--dump-dom", page.as_uri()], tmp_path).stdout.decode()
    assert '<div id="verdict">FAIL</div>' in dom
    assert 'data-class="missing_in_queue"><td>missing_in_queue</td><td class="num">2</td>' in dom
    buckets = report.timeline["buckets"]
    assert len(buckets) > 3  # three minutes of callbacks: finer than a bar a minute
    assert dom.count('class="bar app"') == len(buckets) == dom.count('class="bar queue"')
    lossy = [b for b in buckets if b["missing_in_queue"]]
    assert dom.count('class="loss"') == len(lossy) == 2  # callbacks 12 and 13, 6 s apart
    shot = tmp_path / "shot.png"
    _chromium([f"--screenshot={shot}", "--window-size=1000,1400", page.as_uri()], tmp_path)
    assert _loss_band_red_pixels(shot) > 10  # the buckets with losses are marked red


def _clean_report(tmp_path: Path, n: int) -> ParityReport:
    write_lines(tmp_path / "p.log", [nginx_line(rid(i), T0 + i * 1000, body(i)) for i in range(n)])
    write_messages(
        tmp_path / "q.jsonl",
        [message(f"m{i}", body(i), T0 + i * 1000, request_id=rid(i)) for i in range(n)],
    )
    return run_parity(
        f"nginx:{tmp_path / 'p.log'}", f"jsonl:{tmp_path / 'q.jsonl'}", ParityOptions()
    )


def test_timeline_names_its_first_and_last_bucket_once_each(tmp_path: Path) -> None:
    several = _html_with_losses(tmp_path)
    starts = [b["start"] for b in several.timeline["buckets"]]
    assert len(starts) > 1
    svg = timeline_svg(several)
    assert svg.count(f">{starts[0]}</text>") == 1 and svg.count(f">{starts[-1]}</text>") == 1
    (tmp_path / "one").mkdir()
    single = _clean_report(tmp_path / "one", 1)
    (start,) = [b["start"] for b in single.timeline["buckets"]]
    assert timeline_svg(single).count(f">{start}</text>") == 1


HANGUL = re.compile("[\uac00-\ud7a3]")


@pytest.mark.e2e
def test_html_report_draws_korean_samples_with_glyphs_not_boxes(tmp_path: Path) -> None:
    # The report twice, its Hangul all one syllable, then all another: where no font has Hangul
    # both are drawn as the same missing-glyph boxes, so the two pages look the same.
    text = render(_html_with_losses(tmp_path), "html")
    assert HANGUL.search(text)
    shots = {}
    for name, syllable, runs in (("bae", "배", 2), ("song", "송", 1)):
        page = tmp_path / f"{name}.html"
        page.write_text(HANGUL.sub(syllable, text), encoding="utf-8")
        for run in range(runs):
            shot = tmp_path / f"{name}-{run}.png"
            _chromium([f"--screenshot={shot}", "--window-size=1000,3000", page.as_uri()], tmp_path)
            shots[f"{name}-{run}"] = shot.read_bytes()
    deterministic = shots["bae-0"] == shots["bae-1"]
    boxes = shots["bae-0"] == shots["song-0"]
    assert deterministic  # so a difference between the two pages counts
    assert not boxes, "Hangul drawn as boxes: no Korean font (Debian package fonts-nanum)"


@pytest.mark.e2e
def test_html_report_of_a_clean_run_draws_no_loss_marker(tmp_path: Path) -> None:
    report = _clean_report(tmp_path, 5)
    page = tmp_path / "report.html"
    page.write_text(render(report, "html"), encoding="utf-8")
    shot = tmp_path / "shot.png"
    _chromium([f"--screenshot={shot}", "--window-size=1000,1400", page.as_uri()], tmp_path)
    assert _loss_band_red_pixels(shot) == 0
    _, _, rows = png.decode(shot.read_bytes())
    assert png.count_colour(rows[:60], (0x2C, 0xA0, 0x2C)) > 50  # PASS, drawn green


@pytest.mark.e2e
def test_html_report_draws_the_differing_bytes_highlighted_and_keeps_its_refresh(
    scenario: Scenario, tmp_path: Path
) -> None:
    # callback 9 reached the queue with its "+" decoded to a space: one character each side
    page = tmp_path / "report.html"
    page.write_text(render_html(_report(scenario), refresh_s=3600), encoding="utf-8")
    dom = _chromium(["--dump-dom", page.as_uri()], tmp_path).stdout.decode()
    assert '<meta http-equiv="refresh" content="3600">' in dom
    assert "<del>+</del>" in dom and "<ins> </ins>" in dom
    shot = tmp_path / "shot.png"
    _chromium([f"--screenshot={shot}", "--window-size=1000,4000", page.as_uri()], tmp_path)
    _, _, rows = png.decode(shot.read_bytes())
    assert png.count_colour(rows, _rgb(DEL_COLOUR), tolerance=4) > 20
    assert png.count_colour(rows, _rgb(INS_COLOUR), tolerance=4) > 20
