"""The rehearsal's own parts on real processes: the app's ledger, the load driver, real nginx."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from hookshift.procs import ManagedProcess, free_port
from hookshift.rehearsal.app import ledger_record, read_ledger, start_app
from hookshift.rehearsal.load import TRICKY_USERDATA, load_samples, make_callbacks, send_callbacks
from hookshift.rehearsal.nginx_server import NginxServer, write_sample_config


@pytest.fixture
def app(tmp_path: Path) -> Iterator[tuple[ManagedProcess, int, Path]]:
    port = free_port()
    ledger = tmp_path / "ledger.jsonl"
    process = start_app(port, ledger, tmp_path / "app.log")
    try:
        yield process, port, ledger
    finally:
        process.stop()


def test_samples_ship_inside_the_package_with_the_documented_fields() -> None:
    samples = load_samples()
    assert len(samples) >= 4
    for field in ("DEVICE", "CMSGID", "MSGID", "PHONE", "MEDIA", "UNIXTIME", "RESULT"):
        assert all(field in s for s in samples)


def test_callbacks_have_unique_keys_and_keep_the_characters_that_break_templates() -> None:
    callbacks = make_callbacks(50, run_id="t1")
    assert len({c.key for c in callbacks}) == 50
    assert len({c.fields["MSGID"] for c in callbacks}) == 50
    bodies = b"".join(c.body for c in callbacks).decode("utf-8")
    for needle in ("&", "+", "%", "=", "배송"):
        assert needle in bodies
    assert all(c.fields["CMSGID"] == c.key for c in callbacks)
    assert len(TRICKY_USERDATA) <= 50


def test_runs_with_different_ids_never_share_a_key() -> None:
    first = {c.key for c in make_callbacks(20, run_id="a")}
    second = {c.key for c in make_callbacks(20, run_id="b")}
    assert not first & second


def test_ledger_record_keeps_the_raw_body_and_the_request_id_header() -> None:
    body = '{"USERDATA":"order=A-1&coupon=50%+off 배송"}'.encode()
    record = ledger_record(
        path="/cb",
        method="POST",
        headers={"x-request-id": "abc", "Content-Type": "application/json"},
        body=body,
        request_id_header="X-Request-Id",
    )
    assert record["body"].encode("utf-8") == body
    assert record["request_id"] == "abc"
    assert record["content_type"] == "application/json"
    assert "body_b64" in ledger_record(
        path="/cb", method="POST", headers={}, body=b"\xff\xfe", request_id_header="X-Request-Id"
    )


@pytest.mark.e2e
def test_app_records_every_accepted_post_byte_for_byte(
    app: tuple[ManagedProcess, int, Path],
) -> None:
    _, port, ledger = app
    callbacks = make_callbacks(12, run_id="app")
    results = send_callbacks(f"http://127.0.0.1:{port}/callback/x", callbacks, rate=500)
    assert [r.status for r in results] == [200] * 12
    recorded = sorted(r["body"] for r in read_ledger(ledger))
    assert recorded == sorted(c.body.decode("utf-8") for c in callbacks)


@pytest.mark.e2e
def test_a_stopped_app_loses_callbacks_and_a_restarted_one_takes_them_again(
    tmp_path: Path, app: tuple[ManagedProcess, int, Path]
) -> None:
    process, port, ledger = app
    url = f"http://127.0.0.1:{port}/callback/x"
    process.stop()
    down = send_callbacks(url, make_callbacks(3, run_id="down"), rate=500, timeout=2)
    assert all(r.status is None and r.error for r in down)
    restarted = start_app(port, ledger, tmp_path / "app2.log")
    try:
        up = send_callbacks(url, make_callbacks(3, run_id="up"), rate=500)
    finally:
        restarted.stop()
    assert [r.status for r in up] == [200] * 3
    assert {json.loads(r["body"])["CMSGID"] for r in read_ledger(ledger)} == {r.key for r in up}


@pytest.mark.e2e
def test_load_driver_records_what_it_sent_and_each_status(
    tmp_path: Path, app: tuple[ManagedProcess, int, Path]
) -> None:
    _, port, _ = app
    record = tmp_path / "sent.jsonl"
    callbacks = make_callbacks(5, run_id="rec")
    send_callbacks(f"http://127.0.0.1:{port}/cb", callbacks, rate=500, record=record)
    lines = [json.loads(line) for line in record.read_text("utf-8").splitlines()]
    assert sorted(line["key"] for line in lines) == sorted(c.key for c in callbacks)
    assert {line["status"] for line in lines} == {200}
    assert {line["body"] for line in lines} == {c.body.decode("utf-8") for c in callbacks}


@pytest.mark.e2e
def test_nginx_proxies_callbacks_to_the_app_and_reloads(
    tmp_path: Path, app: tuple[ManagedProcess, int, Path], nginx_bin: str
) -> None:
    _, app_port, ledger = app
    config = write_sample_config(tmp_path / "nginx", app_port=app_port)
    with NginxServer(config, nginx_bin=nginx_bin) as nginx:
        first = send_callbacks(nginx.url, make_callbacks(4, run_id="ng"), rate=500)
        old_workers = nginx.workers()
        nginx.reload()
        assert nginx.workers() and not nginx.workers() & old_workers
        second = send_callbacks(nginx.url, make_callbacks(4, run_id="ng", start=4), rate=500)
        assert httpx.get(nginx.base_url + "/elsewhere").status_code == 404
        assert "reconfiguring" in nginx.error_log()
    assert [r.status for r in first + second] == [200] * 8
    assert len(list(read_ledger(ledger))) == 8
    assert not nginx.process or not nginx.process.running()


@pytest.mark.e2e
def test_nginx_refuses_to_start_on_a_broken_config(tmp_path: Path, nginx_bin: str) -> None:
    config = write_sample_config(tmp_path / "nginx", app_port=free_port())
    config.site.write_text("server { listen 127.0.0.1:1; bogus_directive on; }\n")
    from hookshift.errors import OperationError

    with pytest.raises(OperationError, match="bogus_directive"):
        NginxServer(config, nginx_bin=nginx_bin).start()
