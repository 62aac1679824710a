"""A dead stage must not cost the app a callback, and the copies it lost must show up as such.

Functional, not timing: the real nginx runs the config ``hookshift mirror plan`` writes (applied
with the real ``nginx -t``), the stage is dead (connections refused, or accepted and never
answered), and every callback is sent through nginx on keep-alive and on ``Connection: close``
connections. The app's ledger must hold every one, the parity log must list every one, the
relay's error log must show the circuit breaker open (the user's shows nothing), and the
parity report must name every callback as ``missing_in_queue`` (the queue got nothing), which
is what ``hookshift verify heal`` re-sends.
"""

from __future__ import annotations

import http.client
import json
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from bench.isolation_configs import (
    CALLBACK_PATH,
    NGINX_VERSION,
    FrontSpec,
    MirrorText,
    hookshift_plan_options,
    render_front_conf,
)
from bench.stages import STAGE_HOST, StageTarget, make_certs
from hookshift.mirror.apply import apply_plan
from hookshift.mirror.plan import make_plan
from hookshift.mirror.render import StageDns
from hookshift.procs import LOOPBACK, ManagedProcess, free_port, wait_for_port
from hookshift.rehearsal.app import read_ledger, start_app
from hookshift.rehearsal.dns import DnsServer
from hookshift.rehearsal.load import Callback, make_callbacks
from hookshift.verify.parity import ParityOptions, run_parity

pytestmark = pytest.mark.e2e  # every test here starts a process

REPO = Path(__file__).resolve().parents[2]
CALLBACKS = 24  # half on one keep-alive connection, half each on its own closed connection


@pytest.fixture(params=["refused", "blackhole"])
def dead_stage_port(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[int]:
    """A stage port that refuses connections, or accepts them and never answers."""
    port = free_port()
    if request.param == "refused":
        yield port
        return
    acceptor = ManagedProcess(
        "blackhole",
        [sys.executable, "-m", "bench.stages", "blackhole", "--port", str(port)],
        tmp_path / "blackhole.log",
        cwd=REPO,
    )
    with acceptor.start(ready=lambda: wait_for_port(port)):
        yield port


@pytest.fixture
def dns() -> Iterator[DnsServer]:
    with DnsServer([f"{STAGE_HOST}=127.0.0.1"]) as server:
        yield server


def post(conn: http.client.HTTPConnection, callback: Callback, *, close: bool) -> int:
    headers = {"Content-Type": callback.content_type}
    if close:
        headers["Connection"] = "close"
    conn.request("POST", CALLBACK_PATH, body=callback.body, headers=headers)
    response = conn.getresponse()
    response.read()
    return response.status


def wait_for_lines(path: Path, count: int, timeout: float = 20.0) -> list[dict[str, str]]:
    """nginx logs a mirrored request when its copy has ended (up to the mirror's timeouts)."""
    deadline = time.monotonic() + timeout
    while True:
        lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
        if len(lines) >= count or time.monotonic() > deadline:
            return [json.loads(line) for line in lines]
        time.sleep(0.1)


@pytest.mark.parametrize("stage_dns", [None, "reload"], ids=["default", "reload"])
def test_dead_stage_loses_no_callback_at_the_app_and_parity_names_every_lost_copy(
    tmp_path: Path, nginx_bin: str, dns: DnsServer, dead_stage_port: int, stage_dns: StageDns | None
) -> None:
    """With 1.22's default (run-time DNS: the stage's name, from the test's DNS server) and
    with keep-alive to a stage named in an upstream (resolved by the system resolver:
    `localhost` here)."""
    host = "localhost" if stage_dns == "reload" else STAGE_HOST
    ledger = tmp_path / "app-ledger.jsonl"
    app_port = free_port()
    prefix = tmp_path / "front"
    prefix.mkdir()
    parity_log = prefix / "parity.log"
    spec = FrontSpec(
        prefix=prefix,
        port=free_port(),
        app_port=app_port,
        target=StageTarget("dead", host, dead_stage_port, dns.address),
        certs=make_certs(tmp_path / "certs"),
        workers=2,
        parity_log=parity_log,
    )
    conf = prefix / "nginx.conf"
    conf.write_text(render_front_conf(MirrorText(), spec), encoding="utf-8")
    options = replace(hookshift_plan_options(conf, spec), stage_dns=stage_dns)
    plan = make_plan(options, NGINX_VERSION)
    assert plan.stage_dns == (stage_dns or "runtime")
    apply_plan(plan, nginx_bin=nginx_bin, backup_dir=tmp_path / "backups")
    assert "hookshift_stage" in conf.read_text(encoding="utf-8")  # the breaker layout is in

    callbacks = make_callbacks(CALLBACKS, run_id="iso")
    front = ManagedProcess(
        "front", [nginx_bin, "-g", "daemon off;", "-c", str(conf)], prefix / "stdout.log"
    )
    with (
        start_app(app_port, ledger, tmp_path / "app.log", fsync=False),
        front.start(ready=lambda: wait_for_port(spec.port)),
    ):
        kept = http.client.HTTPConnection(LOOPBACK, spec.port, timeout=30)
        statuses = [post(kept, cb, close=False) for cb in callbacks[: CALLBACKS // 2]]
        kept.close()
        for cb in callbacks[CALLBACKS // 2 :]:
            conn = http.client.HTTPConnection(LOOPBACK, spec.port, timeout=30)
            statuses.append(post(conn, cb, close=True))
            conn.close()
        logged = wait_for_lines(parity_log, CALLBACKS)
        # the callbacks are done before their copies: those wait at the relay for the stage
        relay_log = prefix / "hookshift-mirror.error.log"
        deadline = time.monotonic() + 20
        while "temporarily disabled" not in relay_log.read_text(encoding="utf-8"):
            assert time.monotonic() < deadline, "the breaker never opened"
            time.sleep(0.1)

    assert statuses == [200] * CALLBACKS
    sent = {cb.body.decode("utf-8") for cb in callbacks}
    assert {record["body"] for record in read_ledger(ledger)} == sent
    assert len(logged) == CALLBACKS
    assert {line["body"] for line in logged} == sent
    assert {(line["status"], line["upstream_status"]) for line in logged} == {("200", "200")}
    assert len({line["request_id"] for line in logged}) == CALLBACKS

    errors = (prefix / "error.log").read_text(encoding="utf-8")
    assert "upstream" not in errors, "the copies' errors stay out of the user's error log"

    empty_queue = tmp_path / "queue.jsonl"
    empty_queue.write_text("", encoding="utf-8")
    report = run_parity(
        f"nginx:{spec.parity_log}",
        f"jsonl:{empty_queue}",
        ParityOptions(profile="bizppurio", grace_s=0, redact=False),
    )
    assert report.counts["missing_in_queue"] == CALLBACKS
    missing = " ".join(report.missing_in_queue_keys)
    assert all(cb.fields["MSGID"] in missing for cb in callbacks)
    assert report.verdict == "fail"
