"""Parity classes, keys, windows and verdicts on data with known answers."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hookshift.errors import InputError
from hookshift.verify.parity import PHASES, ParityOptions, quantile_disc, run_parity, verdict_for
from hookshift.verify.report import render
from tests.verify.conftest import EXPECTED, Scenario, t
from tests.verify.data import T0, body, message, nginx_line, rid, write_lines, write_messages


def test_every_class_is_counted_in_the_scenario(scenario: Scenario) -> None:
    report = run_parity(
        f"nginx:{scenario.app_glob}", f"jsonl:{scenario.queue_file}", ParityOptions()
    )
    assert report.key == "request_id"
    assert {k: report.counts[k] for k in EXPECTED} == EXPECTED
    assert report.verdict == "fail"
    assert "1 callback(s) the app accepted are missing in the queue" in report.reason
    assert "1 callback(s) reached the queue with another body" in report.reason


def test_a_run_names_each_phase_as_it_starts_in_order(scenario: Scenario) -> None:
    seen: list[str] = []
    run_parity(
        f"nginx:{scenario.app_glob}",
        f"jsonl:{scenario.queue_file}",
        ParityOptions(),
        seen.append,
    )
    assert seen == list(PHASES)


def test_samples_name_the_callbacks_of_each_class(scenario: Scenario) -> None:
    report = run_parity(
        f"nginx:{scenario.app_glob}", f"jsonl:{scenario.queue_file}", ParityOptions(redact=False)
    )
    keys = {name: [s["key"] for s in samples] for name, samples in report.samples.items()}
    assert keys["missing_in_queue"] == [rid(6)]
    assert keys["in_flight"] == [rid(13)]
    assert keys["mismatched"] == [rid(9)]
    assert sorted(keys["missing_in_app"]) == [rid(8), rid(11)]
    assert keys["not_mirrored"] == [rid(7)]
    assert keys["replayed"] == [rid(12)]
    assert keys["duplicates_queue"] == [rid(4)]
    assert report.missing_in_queue_keys == [rid(6)]
    mism = report.samples["mismatched"][0]
    assert mism["app_body"] == body(9) and "+" not in mism["queue_body"].split("USERDATA")[1]
    missing = report.samples["missing_in_queue"][0]
    assert missing["app_body"] == body(6) and missing["queue_body"] is None
    assert report.samples["matched"][0]["app_body"].startswith('{"DEVICE"')


def test_lag_is_the_mirrors_sent_timestamp_minus_nginx_time_without_the_heal_replay(
    scenario: Scenario,
) -> None:
    """Callback 12 reached the queue only as a replay, 5 s after nginx logged it: when heal
    ran, not how late the mirror was."""
    report = run_parity(
        f"nginx:{scenario.app_glob}", f"jsonl:{scenario.queue_file}", ParityOptions()
    )
    assert report.counts["replayed"] == 1
    assert report.lag_ms == {"p50": 40, "p99": 40, "max": 40}


def test_a_callback_both_mirrored_and_replayed_is_measured_by_the_mirrors_copy(
    tmp_path: Path,
) -> None:
    """Callback 3 has the mirror's copy, 900 ms after nginx, and a replay a day later; 4 has
    only a replay: the lag is measured on the mirror's copies alone."""
    day = 86_400_000
    log = write_lines(
        tmp_path / "parity.log", [nginx_line(rid(n), T0 + n * 1000, body(n)) for n in range(5)]
    )
    messages = [message(f"m{n}", body(n), T0 + n * 1000 + 20, request_id=rid(n)) for n in (0, 1, 2)]
    messages += [
        message("m3", body(3), T0 + 3000 + 900, request_id=rid(3)),
        message("r3", body(3), T0 + 3000 + day, replay=rid(3)),
        message("r4", body(4), T0 + 4000 + 2 * day, replay=rid(4)),
    ]
    queue = write_messages(tmp_path / "messages.jsonl", messages)
    report = run_parity(f"nginx:{log}", f"jsonl:{queue}", ParityOptions(grace_s=0))
    assert report.counts["replayed"] == 1 and report.counts["duplicates_queue"] == 1
    assert report.counts["missing_in_queue"] == 0
    assert report.lag_ms == {"p50": 20, "p99": 900, "max": 900}
    assert "lag (SentTimestamp - nginx time): p50 20 ms, p99 900 ms, max 900 ms" in render(
        report, "text"
    )


def test_grace_zero_turns_in_flight_into_missing(scenario: Scenario) -> None:
    report = run_parity(
        f"nginx:{scenario.app_glob}", f"jsonl:{scenario.queue_file}", ParityOptions(grace_s=0)
    )
    assert report.counts["in_flight"] == 0
    assert report.counts["missing_in_queue"] == 2


def test_since_until_window_limits_both_sides(scenario: Scenario) -> None:
    options = ParityOptions(since_ms=t(1), until_ms=t(6))  # callbacks 1..5
    report = run_parity(f"nginx:{scenario.app_glob}", f"jsonl:{scenario.queue_file}", options)
    assert report.counts["app"] == 5
    assert report.counts["matched"] == 5
    assert report.counts["missing_in_queue"] == 0
    assert report.counts["missing_in_app"] == 0
    assert report.verdict == "pass"
    assert report.window["since"].startswith("2026-11-28T07:55:01")


def test_min_events_fails_a_run_that_compared_too_little(scenario: Scenario) -> None:
    options = ParityOptions(since_ms=t(1), until_ms=t(6), min_events=6)
    report = run_parity(f"nginx:{scenario.app_glob}", f"jsonl:{scenario.queue_file}", options)
    assert report.verdict == "fail"
    assert "only 5 callback(s) compared, fewer than --min-events 6" in report.reason


def test_verdict_passes_only_without_losses_and_mismatches() -> None:
    base = {"missing_in_queue": 0, "mismatched": 0, "compared": 3, "in_flight": 1}
    assert verdict_for(base, 1)[0] == "pass"
    assert verdict_for(base | {"missing_in_queue": 1}, 1)[0] == "fail"
    assert verdict_for(base | {"mismatched": 2}, 1)[0] == "fail"
    assert verdict_for(base, 4)[0] == "fail"


def test_bizppurio_profile_counts_vendor_retries_as_duplicates(tmp_path: Path) -> None:
    # the vendor retried callback 1 (two requests, two request ids, two messages); callback 2
    # had two different results (a later report for the same message): two callbacks
    app = [
        nginx_line(rid(1), T0, body(1)),
        nginx_line(rid(2), T0 + 1000, body(1)),
        nginx_line(rid(3), T0 + 2000, body(2, result="3018")),
        nginx_line(rid(4), T0 + 3000, body(2, result="4100")),
    ]
    queue = [
        message("a", body(1), T0 + 10, request_id=rid(1)),
        message("b", body(1), T0 + 1010, request_id=rid(2)),
        message("c", body(2, result="3018"), T0 + 2010, request_id=rid(3)),
        message("d", body(2, result="4100"), T0 + 3010, request_id=rid(4)),
    ]
    write_lines(tmp_path / "p.log", app)
    write_messages(tmp_path / "q.jsonl", queue)
    report = run_parity(
        f"nginx:{tmp_path / 'p.log'}",
        f"jsonl:{tmp_path / 'q.jsonl'}",
        ParityOptions(profile="bizppurio"),
    )
    assert report.key == "json:MSGID+json:RESULT"
    c = report.counts
    assert (c["compared"], c["matched"], c["duplicates_app"], c["duplicates_queue"]) == (3, 3, 1, 1)
    assert c["mismatched"] == 0 and report.verdict == "pass"


def test_json_subfield_and_form_keys(tmp_path: Path) -> None:
    import urllib.parse

    nested = [f'{{"data":{{"id":"n{i}","text":"가나 & 50%+"}},"seq":{i}}}' for i in range(3)]
    forms = [
        urllib.parse.urlencode({"msgid": f"f{i}", "text": "배송 a=b&c+d 100%"}) for i in range(3)
    ]
    write_lines(tmp_path / "n.log", [nginx_line(rid(i), T0 + i, b) for i, b in enumerate(nested)])
    write_messages(
        tmp_path / "n.jsonl", [message(f"m{i}", b, T0 + i) for i, b in enumerate(nested[:2])]
    )
    report = run_parity(
        f"nginx:{tmp_path / 'n.log'}",
        f"jsonl:{tmp_path / 'n.jsonl'}",
        ParityOptions(key="json:data.id", redact=False, grace_s=0),
    )
    assert report.counts["matched"] == 2 and report.missing_in_queue_keys == ["n2"]

    form_ct = "application/x-www-form-urlencoded"
    write_lines(
        tmp_path / "f.log",
        [nginx_line(rid(i), T0 + i, b, content_type=form_ct) for i, b in enumerate(forms)],
    )
    # the queue holds the same fields, encoded differently (%20 instead of +): still the same
    requeued = [f.replace("+", "%20") for f in forms]
    write_messages(
        tmp_path / "f.jsonl", [message(f"m{i}", b, T0 + i) for i, b in enumerate(requeued)]
    )
    report = run_parity(
        f"nginx:{tmp_path / 'f.log'}",
        f"jsonl:{tmp_path / 'f.jsonl'}",
        ParityOptions(key="form:msgid"),
    )
    assert report.counts["compared"] == 3
    assert report.counts["matched"] == 3 and report.counts["mismatched"] == 0


def test_sha256_is_the_default_when_the_queue_has_no_request_ids(tmp_path: Path) -> None:
    write_lines(tmp_path / "p.log", [nginx_line(rid(i), T0 + i, body(i)) for i in range(4)])
    # the same JSON re-serialised with spaces still hashes the same (minified first)
    spaced = body(2).replace(",", ", ")
    write_messages(
        tmp_path / "q.jsonl",
        [message("a", body(0), T0), message("b", body(1), T0), message("c", spaced, T0)],
    )
    report = run_parity(
        f"nginx:{tmp_path / 'p.log'}", f"jsonl:{tmp_path / 'q.jsonl'}", ParityOptions(grace_s=0)
    )
    assert report.key == "sha256"
    assert report.counts["matched"] == 3
    assert report.counts["missing_in_queue"] == 1
    assert report.warnings and "sha256" in report.warnings[0]


def test_bad_key_and_missing_files_are_input_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="unknown key part"):
        run_parity("nginx:x", "jsonl:y", ParityOptions(key="json:A+nope"))
    with pytest.raises(InputError, match="no file matches"):
        run_parity(f"nginx:{tmp_path}/none*.log", "jsonl:y", ParityOptions())
    with pytest.raises(InputError, match="bad app source"):
        run_parity("syslog:/var/log/x", "jsonl:y", ParityOptions())


def test_anomalies_spread_through_thousands_of_records_are_all_found(tmp_path: Path) -> None:
    # big enough that the samples are fetched from blocks of the files, not from whole reads
    n_total = 4000
    missing, mismatched, doubled, extra = {17, 1999, 3998}, {5, 2501}, {40, 3001}, {7, 3333}
    assert all("+" in body(n) for n in mismatched)  # the encoding bug below loses a '+'
    write_lines(
        tmp_path / "p.log", [nginx_line(rid(n), T0 + n * 10, body(n)) for n in range(n_total)]
    )
    messages = []
    for n in range(n_total):
        if n in missing:
            continue
        payload = body(n).replace("+", " ") if n in mismatched else body(n)
        messages.append(message(f"m{n}", payload, T0 + n * 10 + 30, request_id=rid(n)))
    messages += [message(f"d{n}", body(n), T0 + n * 10 + 90, request_id=rid(n)) for n in doubled]
    messages += [message(f"x{n}", body(n), T0 + n * 10, request_id=f"x{n}") for n in extra]
    write_messages(tmp_path / "q.jsonl", messages)
    report = run_parity(
        f"nginx:{tmp_path / 'p.log'}",
        f"jsonl:{tmp_path / 'q.jsonl'}",
        ParityOptions(grace_s=0, redact=False),
    )
    c = report.counts
    assert (c["app"], c["queue"]) == (n_total, n_total - 3 + 2 + 2)
    assert (c["missing_in_queue"], c["mismatched"], c["duplicates_queue"]) == (3, 2, 2)
    assert (c["missing_in_app"], c["matched"]) == (2, n_total - 3 - 2)
    assert report.missing_in_queue_keys == [rid(n) for n in sorted(missing)]
    assert {s["key"]: s["app_body"] for s in report.samples["missing_in_queue"]} == {
        rid(n): body(n) for n in missing
    }
    assert sorted(s["key"] for s in report.samples["mismatched"]) == sorted(
        rid(n) for n in mismatched
    )
    dup = {
        s["key"]: (s["app_records"], s["queue_records"]) for s in report.samples["duplicates_queue"]
    }
    assert dup == {rid(n): (1, 2) for n in doubled}
    assert sorted(s["key"] for s in report.samples["missing_in_app"]) == sorted(
        f"x{n}" for n in extra
    )
    assert report.lag_ms == {"p50": 30, "p99": 30, "max": 30}


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(-5000, 5000), min_size=1, max_size=40), st.sampled_from([0.5, 0.99]))
def test_lag_quantiles_from_a_histogram_are_duckdbs_quantile_disc(
    values: list[int], q: float
) -> None:
    import duckdb

    con = duckdb.connect()
    row = con.execute(f"SELECT quantile_disc(x, {q}) FROM unnest({values}) t(x)").fetchone()
    con.close()
    assert row is not None and quantile_disc(Counter(values), q) == row[0]


def test_inputs_far_larger_than_the_memory_limit_give_the_planted_answer(tmp_path: Path) -> None:
    import duckdb

    from bench.parity_data import expected, generate

    n = 200_000  # about 220 MB of JSON lines against a 128 MB limit (the reader needs 64 MB)
    con = duckdb.connect()
    app, queue = generate(con, n, tmp_path / "data")
    planted = expected(con, n)
    con.close()
    report = run_parity(
        f"nginx:{app}", f"jsonl:{queue}", ParityOptions(grace_s=0, memory_limit="128MB")
    )
    assert {k: report.counts[k] for k in planted} == planted
    assert len(report.samples["mismatched"]) == planted["mismatched"]


def test_a_report_names_file_sources_absolutely_so_heal_finds_them_from_anywhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hookshift.verify.heal import find_bodies

    write_lines(tmp_path / "parity.log", [nginx_line(rid(n), T0 + n, body(n)) for n in range(3)])
    write_messages(tmp_path / "queue.jsonl", [message("m0", body(0), T0, request_id=rid(0))])
    monkeypatch.chdir(tmp_path)
    report = run_parity("nginx:parity.log", "jsonl:./queue.jsonl", ParityOptions(grace_s=0))
    assert report.sources == {
        "app": f"nginx:{tmp_path / 'parity.log'}",
        "queue": f"jsonl:{tmp_path / 'queue.jsonl'}",
    }
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    found = find_bodies(report.to_dict(), [rid(1), rid(2)])
    assert {k: v.body for k, v in found.items()} == {rid(1): body(1), rid(2): body(2)}


def test_a_log_line_nginx_is_still_writing_is_left_out_not_malformed(tmp_path: Path) -> None:
    lines = [nginx_line(rid(n), T0 + n, body(n)) for n in range(4)]
    log = tmp_path / "parity.log"
    log.write_text("".join(line + "\n" for line in lines[:3]) + lines[3][: len(lines[3]) // 2])
    queue = [message(f"m{n}", body(n), T0 + n, request_id=rid(n)) for n in range(3)]
    write_messages(tmp_path / "queue.jsonl", queue)
    options = ParityOptions(grace_s=0, strict=True)
    report = run_parity(f"nginx:{log}", f"jsonl:{tmp_path / 'queue.jsonl'}", options)
    assert report.counts["malformed"] == 0 and report.counts["app"] == 3
    assert report.verdict == "pass" and report.malformed_examples == []
    assert any(w.startswith(f"{log}:4: the last line has no end yet") for w in report.warnings)
    # a broken line that is not the last is still malformed
    log.write_text(lines[3][:20] + "\n" + "".join(line + "\n" for line in lines[:3]))
    with pytest.raises(InputError, match=r"1 malformed record\(s\), first: .*parity.log:1:"):
        run_parity(f"nginx:{log}", f"jsonl:{tmp_path / 'queue.jsonl'}", options)


def test_copies_lost_at_the_end_are_missing_once_a_pull_found_the_queue_empty(
    tmp_path: Path,
) -> None:
    """Traffic stops; the last copies never reach the queue (a burst over the relay's cap).
    Measured from the newest record they would stay "in flight" for ever, and parity would
    pass; measured from when a pull found the queue empty, they are missing."""
    from hookshift.verify.archive import Archive

    lines = [nginx_line(rid(n), T0 + n * 1000, body(n)) for n in range(1, 11)]
    write_lines(tmp_path / "parity.log", lines)
    archive = tmp_path / "archive"
    write_messages(
        tmp_path / "sent.jsonl",
        [message(f"m{n}", body(n), T0 + n * 1000 + 40) for n in range(1, 5)],
    )
    archive.mkdir(mode=0o700)
    (archive / "seg-000001.jsonl").write_bytes((tmp_path / "sent.jsonl").read_bytes())
    app, queue = f"nginx:{tmp_path / 'parity.log'}", f"archive:{archive}"
    before = run_parity(app, queue, ParityOptions(grace_s=30))
    assert before.counts["in_flight"] == 6 and before.verdict == "pass"  # nothing says when
    with Archive(archive, None) as pulled:
        pulled.mark_drained(T0 + 10_000 + 60_000)  # a pull a minute after the last callback
    after = run_parity(app, queue, ParityOptions(grace_s=30))
    assert after.counts["in_flight"] == 0 and after.counts["missing_in_queue"] == 6
    assert after.verdict == "fail"
