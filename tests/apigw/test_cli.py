"""`hookshift apigw serve|template` as the rehearsal and the benchmarks run them: a process."""

from __future__ import annotations

import json
import os
import ssl
import stat
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from hookshift.apigw.client import post
from hookshift.apigw.emulator import CustomDomain, StageConfig
from hookshift.apigw.integration import TemplateOptions, mapping_template
from hookshift.apigw.process import start_emulator_process
from hookshift.rehearsal.sqs import MotoServer
from tests.apigw.conftest import receive_all

pytestmark = pytest.mark.e2e  # every test here starts a process


def _hookshift(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hookshift", "apigw", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_serve_runs_as_a_process_prints_ready_and_delivers(
    moto: MotoServer, tmp_path: Path
) -> None:
    queue = moto.create_queue(f"cli-{uuid.uuid4().hex[:10]}")
    config = StageConfig(
        sqs_endpoint=moto.endpoint,
        queue_url=queue,
        stage="dev",
        custom_domains=(CustomDomain("hooks.example.com", "v1"),),
        response_mode="default",
    )
    emulator = start_emulator_process(tmp_path, config)
    try:
        assert (
            emulator.url
            == f"https://abc123.execute-api.ap-northeast-2.amazonaws.com:{emulator.port}/dev"
        )
        assert emulator.ca_pem.read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")
        response = post(
            emulator.invoke_url, '{"k":"a&b"}', {"X-Request-Id": "r1"}, cafile=emulator.ca_pem
        )
        assert response.status == 200
        domain = post(emulator.domain_url("hooks.example.com"), '{"k":"d"}', cafile=emulator.ca_pem)
        assert domain.status == 200
    finally:
        emulator.stop()
    assert not emulator.process.running()
    assert {m["Body"] for m in receive_all(moto, queue)} == {'{"k":"a&b"}', '{"k":"d"}'}
    logged = [json.loads(line) for line in emulator.executions_path.read_text().splitlines()]
    assert [e["integration_status"] for e in logged] == [200, 200]
    assert "-> 200 SQS 200 (moto)" in emulator.log_path.read_text()


def test_serve_process_rehearses_deny_send_and_the_request_validator(
    moto: MotoServer, tmp_path: Path
) -> None:
    queue = moto.create_queue(f"cli-{uuid.uuid4().hex[:10]}")
    model = {"type": "object", "required": ["CMSGID"]}
    config = StageConfig(
        sqs_endpoint=moto.endpoint, queue_url=queue, deny_send=True, request_model=model
    )
    with start_emulator_process(tmp_path / "deny", config) as emulator:
        assert post(emulator.invoke_url, '{"CMSGID":"c"}', cafile=emulator.ca_pem).status == 500
        assert post(emulator.invoke_url, "{}", cafile=emulator.ca_pem).status == 400
    assert "AccessDenied" in emulator.log_path.read_text()


def test_serve_process_logs_a_refused_no_sni_handshake(moto: MotoServer, tmp_path: Path) -> None:
    queue = moto.create_queue(f"cli-{uuid.uuid4().hex[:10]}")
    config = StageConfig(sqs_endpoint=moto.endpoint, queue_url=queue)
    with start_emulator_process(tmp_path, config) as emulator:
        with pytest.raises(ssl.SSLError):
            post(emulator.invoke_url, "{}", cafile=emulator.ca_pem, sni=False)
        deadline = time.monotonic() + 10
        while "no server name (SNI)" not in emulator.log_path.read_text():
            assert time.monotonic() < deadline, emulator.log_path.read_text()
            time.sleep(0.05)


def test_the_execution_log_holding_callbacks_is_its_owner_s_only_whatever_the_umask(
    moto: MotoServer, tmp_path: Path
) -> None:
    queue = moto.create_queue(f"cli-{uuid.uuid4().hex[:10]}")
    config = StageConfig(sqs_endpoint=moto.endpoint, queue_url=queue)
    older = tmp_path / "older" / "apigw-executions.jsonl"
    older.parent.mkdir()
    older.write_text("", encoding="utf-8")
    older.chmod(0o644)  # left open by an earlier run
    previous = os.umask(0o022)  # the serve process inherits it
    try:
        for workdir in (tmp_path / "fresh", older.parent):
            with start_emulator_process(workdir, config) as emulator:
                body = '{"PHONE":"01000007919"}'
                assert post(emulator.invoke_url, body, cafile=emulator.ca_pem).status == 200
            assert "01000007919" in emulator.executions_path.read_text(encoding="utf-8")
            assert stat.S_IMODE(emulator.executions_path.stat().st_mode) == 0o600
    finally:
        os.umask(previous)


def test_template_prints_the_mapping_template() -> None:
    result = _hookshift("template", "--request-id-header", "X-Nginx-Id")
    assert result.returncode == 0, result.stderr
    assert result.stdout == mapping_template(TemplateOptions(request_id_header="X-Nginx-Id"))


def test_bad_options_are_one_line_and_exit_2(tmp_path: Path) -> None:
    result = _hookshift(
        "serve", "--sqs-endpoint", "http://127.0.0.1:9", "--queue-url", "http://x/1/q",
        "--domain", "nodots",
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "--domain" in result.stderr
    missing = _hookshift(
        "serve", "--sqs-endpoint", "http://127.0.0.1:9", "--queue-url", "http://x/1/q",
        "--template", str(tmp_path / "nope.vtl"),
    )  # fmt: skip
    assert missing.returncode == 2 and "nope.vtl" in missing.stderr
