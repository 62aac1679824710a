"""Where each callback ended up (pure): the rehearsal's verdict must be right before it is shown."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hookshift.rehearsal.cli import (
    RelayDrops,
    failed,
    parity_lines,
    relay_drops,
    summary_lines,
)
from hookshift.rehearsal.load import SendResult, make_callbacks
from hookshift.rehearsal.scenario import DeployScenario, body_key, reconcile
from hookshift.rehearsal.stack import fill, relay_socket


def sent(status: int | None, seq: int) -> SendResult:
    [callback] = make_callbacks(1, run_id="r", start=seq, unixtime=1795852500)
    return SendResult(
        seq=seq,
        key=callback.key,
        time=0.0,
        status=status,
        error="" if status else "ConnectError: refused",
        elapsed_ms=1.0,
        url="http://127.0.0.1:1/cb",
        body=callback.body.decode("utf-8"),
    )


def test_a_callback_the_app_lost_but_the_queue_holds_is_accounted_for() -> None:
    ok, lost = sent(200, 0), sent(502, 1)
    rec = reconcile([ok, lost], app_bodies=[ok.body], queue_bodies=[ok.body, lost.body])
    assert rec.lost_at_app == (lost.key,)
    assert rec.lost_at_app_in_queue == (lost.key,)
    assert rec.unaccounted == ()
    assert rec.vendor_ok == (ok.key,)


def test_a_callback_in_neither_place_is_unaccounted_and_fails_the_verdict() -> None:
    ok, lost = sent(200, 0), sent(None, 1)
    rec = reconcile([ok, lost], app_bodies=[ok.body], queue_bodies=[ok.body])
    assert rec.unaccounted == (lost.key,)
    lines = summary_lines(rec, DeployScenario(count=2), [ok, lost], {})
    assert lines[-1].startswith("verdict: FAIL: 1 callbacks")


def test_callbacks_in_neither_place_are_explained_by_the_copies_the_mirror_dropped() -> None:
    ok, lost = sent(200, 0), sent(502, 1)
    rec = reconcile([ok, lost], app_bodies=[ok.body], queue_bodies=[ok.body])
    drops = RelayDrops(at_cap=3, at_handoff=1, where="logs/hookshift-mirror.error.log")
    text = "\n".join(summary_lines(rec, DeployScenario(count=2), [ok, lost], {}, drops))
    assert "The mirror dropped 4 copies at its bounds (3 at the relay's cap" in text
    assert "1 at a worker's hand-off bound; logs/hookshift-mirror.error.log" in text
    assert "Raise worker_connections" in text
    nothing_lost = reconcile([ok], app_bodies=[ok.body], queue_bodies=[ok.body])
    quiet = summary_lines(nothing_lost, DeployScenario(count=1), [ok], {}, drops)
    assert not any("dropped" in line for line in quiet), "only a loss needs explaining"


def test_the_drops_are_counted_from_the_lines_nginx_logs_for_each_bound(tmp_path: Path) -> None:
    cap = 'limiting connections by zone "hookshift_copies", client: unix:'
    handoff = 'limiting connections by zone "hookshift_handoffs", client: 127.0.0.1'
    (tmp_path / "hookshift-mirror.error.log").write_text(
        f"2026/12/07 03:15:21 [warn] 1#1: *1 {cap}\n" * 2 + "[warn] upstream timed out\n"
    )
    (tmp_path / "error.log").write_text(f"[info] 1#1: *9 {handoff}\n[info] {cap}\n")
    drops = relay_drops(tmp_path)
    assert (drops.at_cap, drops.at_handoff, drops.total) == (2, 1, 3)
    assert relay_drops(tmp_path / "missing").total == 0


def test_a_queue_body_that_differs_from_what_was_sent_is_a_mismatch() -> None:
    one = sent(200, 0)
    broken = one.body.replace("%", "%25")
    rec = reconcile([one], app_bodies=[one.body], queue_bodies=[broken])
    assert rec.queue_mismatched == (one.key,)


def test_duplicates_and_unparseable_queue_bodies_are_counted_not_matched() -> None:
    one = sent(200, 0)
    rec = reconcile([one], app_bodies=[], queue_bodies=[one.body, one.body, "order=A-1"])
    assert rec.queue_duplicates == 1
    assert rec.queue_unparseable == 1
    assert rec.in_queue == (one.key,)


def test_body_key_reads_the_vendor_key_and_nothing_else() -> None:
    assert body_key('{"CMSGID":"abc","X":"1"}') == "abc"
    assert body_key('{"X":"1"}') is None
    assert body_key("CMSGID=abc") is None
    assert body_key("[1, 2]") is None


def test_summary_names_the_lost_callbacks_with_their_queue_message_ids() -> None:
    results = [sent(200, 0), sent(502, 1)]
    rec = reconcile(results, [results[0].body], [r.body for r in results])
    lines = summary_lines(rec, DeployScenario(count=2), results, {results[1].key: "mid-1"})
    text = "\n".join(lines)
    assert "safe in the queue" in text
    fields = json.loads(results[1].body)
    shown = f"MSGID={fields['MSGID']}, RESULT={fields['RESULT']}"
    assert f"{shown}  vendor got HTTP 502" in text, "the key as the parity report shows it"
    assert "mid-1" in text
    assert lines[-1] == "verdict: every callback sent is in the app or the queue (2/2)"


def test_parity_lines_give_the_command_that_makes_the_report_again() -> None:
    lines = parity_lines(Path("/run/p.log"), Path("/run/archive"), Path("/run"))
    assert lines[0] == "parity report (HTML): /run/parity.html"
    assert "--app nginx:/run/p.log --queue archive:/run/archive" in lines[1]


def test_deploy_defaults_to_forty_percent_of_the_way() -> None:
    assert DeployScenario(count=200).deploy_seq == 80
    assert DeployScenario(count=200, deploy_at=5).deploy_seq == 5


def test_placeholders_fill_snippets_without_touching_nginx_variables() -> None:
    snippet = "proxy_pass https://@STAGE_HOST@:@STAGE_PORT@/dev$request_uri;"
    filled = fill(snippet, {"@STAGE_HOST@": "h.example", "@STAGE_PORT@": "8443"})
    assert filled == "proxy_pass https://h.example:8443/dev$request_uri;"


def test_relay_socket_stays_within_the_unix_socket_path_limit() -> None:
    # a path, not a directory: the temp dir of a parallel run is itself deep
    short = Path("/tmp/hookshift-rehearsal")
    assert relay_socket(short) == short / "nginx" / "hookshift" / "relay.sock"
    deep = short / ("d" * 120)
    assert len(str(relay_socket(deep))) < 100


@pytest.mark.parametrize(
    ("unaccounted", "parity", "is_failed"),
    [
        (0, {"verdict": "pass"}, False),
        (0, None, False),  # a build without verify: the reconciliation alone decides
        (1, {"verdict": "pass"}, True),
        (0, {"verdict": "fail", "reason": "1 callback(s) missing from the queue"}, True),
        # nothing to compare (every callback came while the app was down): no PASS to vouch
        (0, {"verdict": "fail", "reason": "only 0 callback(s) compared"}, True),
    ],
)
def test_the_run_fails_when_a_callback_is_lost_or_its_parity_check_fails(
    unaccounted: int, parity: dict[str, Any] | None, is_failed: bool
) -> None:
    report = {"reconciliation": {"unaccounted": unaccounted}, "parity": parity}
    assert failed(report) is is_failed
