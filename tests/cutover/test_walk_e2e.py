"""The whole cut-over on the rehearsal stack: five stages, each advance only when its gates are
met (refused, naming the gate, before), the vendor switch simulated by pointing the load driver
at the custom domain; then a rollback from each stage to the one before with nginx's files
byte-identical to what they were in that stage."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from hookshift.cutover import journal, nginx_ops
from hookshift.cutover.settings import Settings
from hookshift.errors import OperationError
from hookshift.rehearsal.load import make_callbacks, send_callbacks
from hookshift.rehearsal.sqs import REGION
from hookshift.rehearsal.stack import Stack, StackOptions, relay_socket, start_stack

pytestmark = pytest.mark.e2e

QUIET = 2.0


@pytest.fixture(autouse=True)
def _aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")


@pytest.fixture
def stack(tmp_path: Path, nginx_bin: str) -> Iterator[Stack]:
    with start_stack(tmp_path / "stack", StackOptions(mirror="none", nginx_bin=nginx_bin)) as s:
        # parity reads leave messages invisible for the visibility timeout: keep it short
        s.sqs().set_queue_attributes(QueueUrl=s.queue_url, Attributes={"VisibilityTimeout": "2"})
        yield s


@dataclass(frozen=True)
class _Ran:
    """A finished command: its exit code, stdout and stderr, and `output` (both, in that order)."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def _run(*args: str) -> _Ran:
    """The real console script (exit codes and stdout/stderr exactly as a user sees them)."""
    done = subprocess.run(
        [sys.executable, "-m", "hookshift", *args], capture_output=True, text=True, check=False
    )
    return _Ran(done.returncode, done.stdout, done.stderr)


def _files(stack: Stack) -> dict[str, bytes]:
    conf = stack.workdir / "nginx" / "conf"
    return {str(p): p.read_bytes() for p in sorted(conf.rglob("*.conf"))}


def _send_via_nginx(stack: Stack, count: int) -> None:
    results = send_callbacks(
        stack.nginx_url, make_callbacks(count, run_id=uuid.uuid4().hex[:8]), rate=20
    )
    assert all(r.status == 200 for r in results), [r.error or r.status for r in results]


def _send_to_domain(stack: Stack, count: int) -> None:
    """The vendor, switched: straight to the custom domain, no nginx on the way."""
    results = send_callbacks(
        stack.custom_domain_callback_url, make_callbacks(count, run_id=uuid.uuid4().hex[:8]),
        rate=20, verify=str(stack.ca_path), connect_to=stack.connect_to,
    )  # fmt: skip
    assert all(r.status == 200 for r in results), [r.error or r.status for r in results]


def test_walk_all_five_stages_then_roll_back_each_byte_identical(
    stack: Stack, tmp_path: Path
) -> None:
    assert stack.config is not None and stack.nginx is not None
    state = tmp_path / "cutover.jsonl"
    archive = tmp_path / "archive"
    s = ["--state", str(state)]
    original = _files(stack)
    init = _run(
        "cutover", "init", *s, "--config", str(stack.config.main),
        "--path", stack.options.callback_path, "--stage-url", stack.stage_url,
        "--domain-url", stack.custom_domain_url, "--queue", f"sqs:{stack.queue_url}",
        "--endpoint-url", stack.moto_endpoint, "--region", REGION,
        "--parity-log", str(stack.parity_log), "--nginx-bin", stack.nginx.nginx_bin,
        "--resolver", stack.dns_address, "--ca-file", str(stack.ca_path),
        "--stage-dns", "runtime",  # only the stack's DNS server knows the stage's name
        "--backup-dir", str(tmp_path / "backup"),
        "--relay-socket", str(relay_socket(stack.workdir)),
        "--archive", str(archive), "--min-window", "1", "--min-events", "5",
        "--quiet-period", str(QUIET), "--probe-timeout", "5", "--parity-grace", "0.5",
    )  # fmt: skip
    assert init.returncode == 0, init.output
    refused = _run("cutover", "rollback", *s)
    assert refused.returncode == 2 and "nothing to roll back" in refused.output
    in_stage: dict[str, dict[str, bytes]] = {"baseline": original}

    # a change that cannot work (here: the relay socket's directory does not exist) is refused
    # before anything is written: journal and nginx files untouched
    journal_before = state.read_bytes()
    failed = _run("cutover", "advance", *s, "--relay-socket", "/nonexistent/dir/relay.sock")
    assert failed.returncode == 2, failed.output
    assert "the relay socket's directory does not exist: /nonexistent/dir" in failed.stderr
    assert state.read_bytes() == journal_before
    assert _files(stack) == original

    # a dry run checks the gates for real and changes nothing
    dry = _run("cutover", "advance", *s, "--dry-run")
    assert dry.returncode == 0, dry.output
    assert "every gate out of baseline passes; nothing changed" in dry.stderr
    assert state.read_bytes() == journal_before and _files(stack) == original

    # 1 -> 2: doctor clean and a probe through the stage URL lands
    step = _run("cutover", "advance", *s)
    assert step.returncode == 0, step.output
    assert "ok   stage-probe: probe through https://" in step.output
    stack.reload_nginx()
    in_stage["mirror-stage"] = _files(stack)
    assert in_stage["mirror-stage"] != original

    # 2 -> 3 refused until parity has a window and events from this stage
    refused = _run("cutover", "advance", *s)
    assert refused.returncode == 1, refused.output
    assert "FAIL parity-stage-window" in refused.output
    _send_via_nginx(stack, 10)
    assert stack.wait_for_queue(10) == 10  # every copy reached the queue
    time.sleep(1.0)
    step = _run("cutover", "advance", *s)
    assert step.returncode == 0, step.output
    assert "ok   parity-stage: parity passed" in step.output
    assert "ok   domain-probe" in step.output
    stack.reload_nginx()
    in_stage["mirror-domain"] = _files(stack)
    # a retarget is remove + apply: if the apply is refused, the current stage is put back
    settings = Settings.from_json(journal.read(state).settings)
    bad = settings.override(relay_socket="/nonexistent/dir/relay.sock")
    with pytest.raises(OperationError, match="mirror apply"):
        nginx_ops.realize(state, bad, "mirror-domain", "mirror-stage", reload=False)
    assert _files(stack) == in_stage["mirror-domain"]

    # 3 -> 4: parity against the domain, then the mirror-period messages drained to the archive
    _send_via_nginx(stack, 10)
    assert stack.wait_for_queue(10) == 10
    time.sleep(1.0)
    step = _run("cutover", "advance", *s, "--format", "json")
    assert step.returncode == 0, step.output
    report = json.loads(step.stdout)
    assert report["to"] == "vendor-switched"
    assert {g["gate"] for g in report["gates"] if g["passed"]} == {
        "parity-domain", "parity-domain-window", "drain"
    }  # fmt: skip
    assert report["vendor_url"] == stack.custom_domain_callback_url
    assert stack.queue_depth() == 0
    assert any(archive.rglob("*.jsonl"))
    stack.reload_nginx()
    in_stage["vendor-switched"] = _files(stack)

    # 4 -> 5 refused while the vendor still calls nginx
    refused = _run("cutover", "advance", *s)
    assert refused.returncode == 1
    assert "FAIL direct-arrivals" in refused.output
    # the vendor switches; one straggler still reaches nginx and is forwarded to the domain
    _send_to_domain(stack, 5)
    _send_via_nginx(stack, 1)
    stack.wait_for_queue(6)
    refused = _run("cutover", "advance", *s)
    assert refused.returncode == 1
    assert "ok   direct-arrivals: 5 callback(s)" in refused.output
    assert "FAIL quiet-period" in refused.output
    time.sleep(QUIET + 0.5)
    step = _run("cutover", "advance", *s)
    assert step.returncode == 0, step.output
    assert "final report: " in step.output
    status = _run("cutover", "status", *s)
    assert "stage: decommissioned" in status.stdout
    assert "ok   quiet-period: last callback at nginx" in status.stdout
    stack.reload_nginx()
    in_stage["decommissioned"] = _files(stack)
    assert in_stage["decommissioned"] == original

    # rollback from each stage to the one before: byte-identical files, journalled
    for back_to in ("vendor-switched", "mirror-domain", "mirror-stage", "baseline"):
        step = _run("cutover", "rollback", *s)
        assert step.returncode == 0, step.output
        assert f"-> {back_to}" in step.output
        assert _files(stack) == in_stage[back_to], back_to
        stack.reload_nginx()

    # the recorded bytes of any stage can be written back through the engine's safe pipeline
    # (what rollback does when the engine's output for a stage no longer matches the record)
    def digests(files: dict[str, bytes]) -> dict[str, str | None]:
        return {p: hashlib.sha256(b).hexdigest() for p, b in files.items()}

    written = nginx_ops.restore(state, settings, digests(in_stage["mirror-stage"]), reload=False)
    assert len(written) == 2 and _files(stack) == in_stage["mirror-stage"]
    nginx_ops.restore(state, settings, digests(original), reload=False)
    assert _files(stack) == original

    done = journal.read(state)
    moves = [e for e in done.entries if e.action in ("init", "advance", "rollback")]
    assert [e.to_stage for e in moves] == [
        "baseline", "mirror-stage", "mirror-domain", "vendor-switched", "decommissioned",
        "vendor-switched", "mirror-domain", "mirror-stage", "baseline",
    ]  # fmt: skip
    assert all(e.evidence.get("byte_identical") for e in done.entries if e.action == "rollback")
    # back at baseline, nginx serves the app again
    _send_via_nginx(stack, 1)
