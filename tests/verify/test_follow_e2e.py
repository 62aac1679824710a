"""The mirror period on the rehearsal stack: `pull --follow` and `watch` run while callbacks
flow, the app is deployed, the stage fails for a while, and both are killed -9 and restarted.
After each phase the watched counts equal a one-shot parity over the same files; the alert
fires once for the stage failure; the metrics file parses; every message is archived once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from hookshift.apigw.process import start_emulator_process
from hookshift.rehearsal.load import make_callbacks, send_callbacks
from hookshift.rehearsal.scenario import DeployScenario, run_deploy_scenario
from hookshift.rehearsal.sqs import CREDENTIALS, REGION, MotoServer
from hookshift.rehearsal.stack import Stack, StackOptions, start_stack
from hookshift.verify.archive import iter_archive
from hookshift.verify.parity import COUNT_KEYS, ParityOptions, run_parity

pytestmark = pytest.mark.e2e
GRACE = 5


def _wait(check: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


class Period:
    """The two long-running processes of a mirror period, as the systemd units run them."""

    def __init__(self, stack: Stack, root: Path) -> None:
        self.stack, self.root = stack, root
        self.archive, self.state = root / "archive", root / "watch"
        self.metrics, self.alerts = root / "hookshift.prom", root / "alerts.txt"
        self.env = {
            **os.environ,
            "AWS_ACCESS_KEY_ID": CREDENTIALS["aws_access_key_id"],
            "AWS_SECRET_ACCESS_KEY": CREDENTIALS["aws_secret_access_key"],
            "AWS_DEFAULT_REGION": REGION,
        }
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self) -> None:
        hs = [sys.executable, "-m", "hookshift", "verify"]
        pull = [
            *hs, "pull", "--queue-url", self.stack.queue_url, "--archive", str(self.archive),
            "--endpoint-url", self.stack.moto_endpoint, "--delete", "--follow",
            "--wait-time", "1", "--workers", "2",
        ]  # fmt: skip
        watch = [
            *hs, "watch", "--app", f"nginx:{self.stack.parity_log}*",
            "--queue", f"archive:{self.archive}", "--state", str(self.state),
            "--interval", "1", "--grace", str(GRACE), "--metrics-file", str(self.metrics),
            "--alert-cmd", f'echo "$HOOKSHIFT_ALERT" >> {self.alerts}', "--rearm-after", "1h",
        ]  # fmt: skip
        for name, argv in (("pull", pull), ("watch", watch)):
            log = (self.root / f"{name}.log").open("ab")
            self.procs[name] = subprocess.Popen(argv, env=self.env, stdout=log, stderr=log)

    def kill_9(self) -> None:
        for proc in self.procs.values():
            proc.kill()
            proc.wait(10)

    def stop(self) -> dict[str, int]:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        return {name: proc.wait(60) for name, proc in self.procs.items()}

    def watched(self) -> dict[str, Any]:
        try:
            return dict(json.loads((self.state / "watch-state.json").read_text()))
        except (OSError, ValueError):
            return {}

    def settle(self) -> dict[str, int]:
        """Wait until the queue is drained and a watch update began after that; the counts."""
        sqs = self.stack.sqs()

        def drained() -> bool:
            attrs = sqs.get_queue_attributes(
                QueueUrl=self.stack.queue_url,
                AttributeNames=[
                    "ApproximateNumberOfMessages",
                    "ApproximateNumberOfMessagesNotVisible",
                ],
            )["Attributes"]
            return sum(int(v) for v in attrs.values()) == 0

        _wait(drained, "the pull to drain the queue")
        mark = time.time()
        _wait(
            lambda: self.watched().get("updated_at", 0) - self.watched().get("update_s", 0) > mark,
            "a watch update after the drain",
        )
        for name, proc in self.procs.items():
            assert proc.poll() is None, (self.root / f"{name}.log").read_text()
        return {k: self.watched()["counts"][k] for k in COUNT_KEYS}

    def one_shot(self) -> dict[str, int]:
        report = run_parity(
            f"nginx:{self.stack.parity_log}*",
            f"archive:{self.archive}",
            ParityOptions(grace_s=GRACE),
        )
        return {k: report.counts[k] for k in COUNT_KEYS}

    def archived(self) -> int:
        return sum(1 for _ in iter_archive(self.archive)) if self.archive.exists() else 0

    def alerts_fired(self) -> list[str]:
        return self.alerts.read_text().split() if self.alerts.exists() else []


@pytest.fixture
def period(tmp_path: Path, moto: MotoServer, nginx_bin: str) -> Iterator[Period]:
    options = StackOptions(queue_name="e2e-period", nginx_bin=nginx_bin, stage_mode="process")
    stack = start_stack(tmp_path / "stack", options, moto=moto)
    running = Period(stack, tmp_path)
    try:
        yield running
    finally:
        for proc in running.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        stack.stage.stop()  # the test may have started a new stage the stack does not know
        stack.stop()


def _send(stack: Stack, run_id: str, count: int) -> list[str]:
    callbacks = make_callbacks(count, run_id=run_id)
    send_callbacks(stack.nginx_url, callbacks, rate=40)
    return [c.key for c in callbacks]


def test_a_mirror_period_survives_deploys_stage_failures_and_kills(period: Period) -> None:
    stack = period.stack
    period.start()
    # 1. steady traffic
    _send(stack, "a", 30)
    counts = period.settle()
    assert counts == period.one_shot() and counts["matched"] == 30
    # 2. the app is deployed: it loses some, the queue has them (not an alert)
    run_deploy_scenario(
        stack, DeployScenario(count=40, rate=40, deploy_at=10, downtime=0.6), run_id="b"
    )
    counts = period.settle()
    assert counts == period.one_shot() and counts["missing_in_app"] > 0
    assert period.alerts_fired() == []
    # 3. the stage fails for a while: nginx's copies are lost
    old = stack.stage
    old.stop()
    _send(stack, "c", 20)
    stack.stage = start_emulator_process(stack.workdir / "apigw2", old.config)
    before, probe = period.archived(), iter(make_callbacks(1000, run_id="p"))

    def mirror_back() -> bool:  # nginx's breaker lets copies through again after a while
        send_callbacks(stack.nginx_url, [next(probe)], rate=1)
        time.sleep(0.5)
        return period.archived() > before

    _wait(mirror_back, "the mirror to work again")
    time.sleep(GRACE + 1)  # then traffic moves the window's end past the grace
    _send(stack, "d", 20)
    counts = period.settle()
    assert counts == period.one_shot() and counts["missing_in_queue"] >= 20
    _wait(lambda: period.alerts_fired() != [], "the alert")
    time.sleep(3)  # more updates of the same incident
    assert period.alerts_fired() == ["missing_in_queue"]
    # 4. kill -9 of both mid-traffic, then restart
    callbacks = make_callbacks(60, run_id="e")
    thread = threading.Thread(
        target=send_callbacks, args=(stack.nginx_url, callbacks), kwargs={"rate": 40}
    )
    thread.start()
    before = period.archived()
    _wait(lambda: period.archived() > before + 15, "the pull to get going")
    period.kill_9()
    period.start()
    thread.join()
    counts = period.settle()
    assert counts == period.one_shot()
    assert period.alerts_fired() == ["missing_in_queue"]  # the restarted watcher remembers
    messages = list(iter_archive(period.archive))
    ids = [m["MessageId"] for m in messages]
    keys = [json.loads(m["Body"])["CMSGID"] for m in messages]
    assert len(ids) == len(set(ids)) and len(keys) == len(set(keys))
    assert {c.key for c in callbacks} <= set(keys)  # the stage was healthy: every one is there
    families = {f.name: f for f in text_string_to_metric_families(period.metrics.read_text())}
    per_class = {
        s.labels["class"]: s.value for s in families["hookshift_parity_callbacks_total"].samples
    }
    assert per_class["missing_in_queue"] == counts["missing_in_queue"]
    assert families["hookshift_pull_last_success_timestamp_seconds"].samples[0].value > 0
    assert period.stop() == {"pull": 0, "watch": 0}
