"""`verify watch`'s signals: alerts once per incident, metrics that parse, /metrics."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from hookshift.procs import free_port
from hookshift.verify.alert import AlertMemory, evaluate
from hookshift.verify.retention import Finding
from tests.verify.data import T0, body, message, nginx_line, rid, write_messages

STALE = Finding("nothing has pulled from the queue for 1 h", "restart it")


def test_an_alert_fires_once_per_incident_and_rearms_after_recovery() -> None:
    memory, fired = AlertMemory(), []
    # the stage fails: missing_in_queue grows over five updates, 30 s apart
    for step, missing in enumerate([0, 3, 9, 20, 20, 31]):
        memory, alerts = evaluate(memory, 1000.0 + 30 * step, missing, None, rearm_s=600)
        fired += alerts
    assert [a.kind for a in fired] == ["missing_in_queue"]
    assert "rose from 0 to 3" in fired[0].message
    # no growth for 10 minutes: the incident is over
    memory, alerts = evaluate(memory, 1150.0 + 600, 31, None, rearm_s=600)
    assert [a.kind for a in alerts] == ["recovered"]
    memory, alerts = evaluate(memory, 1800.0, 31, None, rearm_s=600)
    assert alerts == []
    # a new loss is a new incident
    memory, alerts = evaluate(memory, 1830.0, 32, None, rearm_s=600)
    assert [a.kind for a in alerts] == ["missing_in_queue"]
    assert "rose from 31 to 32" in alerts[0].message


def test_a_stopped_pull_fires_once_and_rearms_when_it_runs_again() -> None:
    memory = AlertMemory()
    kinds = []
    for finding in [None, STALE, STALE, STALE, None, None, STALE]:
        memory, alerts = evaluate(memory, 0.0, 0, finding)
        kinds += [a.kind for a in alerts]
    assert kinds == ["pull_stopped", "recovered", "pull_stopped"]


def _files(root: Path, app: int, queue: int) -> tuple[Path, Path]:
    log = root / "p.log"
    lines = [nginx_line(rid(i), T0 + i * 1000, body(i)) for i in range(app)]
    log.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    messages = [
        message(f"m{i}", body(i), T0 + i * 1000 + 30, request_id=rid(i)) for i in range(queue)
    ]
    write_messages(root / "a" / "seg-1.jsonl", messages)
    return log, root / "a"


def _watch(root: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    argv = [
        sys.executable, "-m", "hookshift", "verify", "watch", "--app", f"nginx:{root / 'p.log'}",
        "--queue", f"archive:{root / 'a'}", "--state", str(root / "st"), "--grace", "0",
        "--metrics-file", str(root / "m.prom"),
        "--alert-cmd", f'echo "$HOOKSHIFT_ALERT $HOOKSHIFT_ALERT_MESSAGE" >> {root / "alerts"}',
        *extra,
    ]  # fmt: skip
    return subprocess.run(argv, capture_output=True, text=True, timeout=120)


@pytest.mark.e2e
def test_watch_once_alerts_once_across_runs_and_its_metrics_parse(tmp_path: Path) -> None:
    _files(tmp_path, app=10, queue=8)
    first = _watch(tmp_path, "--once")
    assert first.returncode == 1, first.stderr
    assert "parity fail: 2 callback(s) the app accepted are missing in the queue" in first.stdout
    second = _watch(tmp_path, "--once")  # the same incident, seen again by a new process
    _files(tmp_path, app=12, queue=8)  # and it grows
    third = _watch(tmp_path, "--once")
    assert second.returncode == third.returncode == 1
    alerts = (tmp_path / "alerts").read_text().splitlines()
    assert alerts == [
        "missing_in_queue the mirror is losing callbacks: missing_in_queue rose from 0 to 2"
    ]
    families = {
        f.name: f for f in text_string_to_metric_families((tmp_path / "m.prom").read_text())
    }
    per_class = {
        s.labels["class"]: s.value for s in families["hookshift_parity_callbacks_total"].samples
    }
    assert per_class["missing_in_queue"] == 4 and per_class["matched"] == 8
    assert families["hookshift_parity_pass"].samples[0].value == 0
    state = json.loads((tmp_path / "st" / "watch-state.json").read_text())
    assert state["counts"]["missing_in_queue"] == 4


@pytest.mark.e2e
def test_watch_serves_metrics_with_the_pulls_heartbeat_and_stops_on_sigterm(
    tmp_path: Path,
) -> None:
    _files(tmp_path, app=5, queue=5)
    now = time.time()
    heartbeat = {"queue_url": "q", "archive": "a", "pid": 1, "started_at": now,
                 "last_success": now - 5, "queue_lag_s": 1.5}  # fmt: skip
    (tmp_path / "a" / "follow-state.json").write_text(json.dumps(heartbeat))
    port = free_port()
    argv = [
        sys.executable, "-m", "hookshift", "verify", "watch",
        "--app", f"nginx:{tmp_path / 'p.log'}", "--queue", f"archive:{tmp_path / 'a'}",
        "--state", str(tmp_path / "st"), "--grace", "0", "--interval", "1",
        "--metrics-listen", f"127.0.0.1:{port}",
    ]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        text = ""
        while "hookshift_parity_pass" not in text:
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr
            try:
                text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
            except httpx.TransportError:
                time.sleep(0.2)
        families = {f.name: f for f in text_string_to_metric_families(text)}
        assert families["hookshift_parity_pass"].samples[0].value == 1
        last = families["hookshift_pull_last_success_timestamp_seconds"].samples[0].value
        assert last == pytest.approx(now - 5)
        assert families["hookshift_queue_lag_seconds"].samples[0].value == 1.5
        os.kill(proc.pid, signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "parity pass" in out and "alert" not in err
