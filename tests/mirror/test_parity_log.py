"""The parity log with a real nginx: `access_log off;` in the callback location silences it, so
the plan refuses that location; without the `off` line the applied plan logs each callback."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hookshift.errors import InputError
from mirror.apply import apply_plan
from mirror.plan import MirrorOptions, make_plan
from rehearsal.procs import LOOPBACK, ManagedProcess, free_port, wait_for_port
from tests.mirror.servers import RecordingServer

CONFIG = """worker_processes 1;
pid {p}/nginx.pid;
error_log {p}/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log {p}/access.log;
    client_body_temp_path {p}/body;
    proxy_temp_path {p}/proxy;
    server {{
        listen 127.0.0.1:{port};
        location = /callback {{
            access_log off;
            {extra}
            proxy_pass http://127.0.0.1:{app};
        }}
    }}
}}
"""

pytestmark = pytest.mark.e2e


@pytest.fixture
def app() -> Iterator[RecordingServer]:
    server = RecordingServer().start()
    yield server
    server.stop()


def _serve(nginx_bin: str, prefix: Path, port: int) -> ManagedProcess:
    argv = [nginx_bin, "-p", f"{prefix}/", "-c", str(prefix / "nginx.conf"), "-g", "daemon off;"]
    proc = ManagedProcess(name="nginx", argv=argv, log_path=prefix / "nginx.out")
    return proc.start(ready=lambda: wait_for_port(port))


def _post(port: int) -> int:
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=10)
    conn.request("POST", "/callback", body=b'{"MSGID":"m1"}', headers={"Host": "hooks.test"})
    response = conn.getresponse()
    response.read()
    return response.status


def _eventually(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_access_log_off_silences_a_parity_log_beside_it_so_the_plan_refuses_it(
    tmp_path: Path, nginx_bin: str, app: RecordingServer
) -> None:
    port = free_port()
    parity = tmp_path / "parity.log"
    config = tmp_path / "nginx.conf"
    config.write_text(
        CONFIG.format(p=tmp_path, port=port, app=app.port, extra=f"access_log {parity};")
    )
    nginx = _serve(nginx_bin, tmp_path, port)
    try:
        assert _post(port) == 200
        assert _eventually(lambda: len(app.received) == 1)
    finally:
        nginx.stop()
    assert parity.read_text() == "", "nginx wrote no line: `off` silences every log there"

    config.write_text(CONFIG.format(p=tmp_path, port=port, app=app.port, extra=""))
    options = MirrorOptions(
        config=config,
        path="/callback",
        stage_url="https://abc123.execute-api.ap-northeast-2.amazonaws.com/prod",
        parity_log=parity,
        relay_socket=str(tmp_path / "relay.sock"),
    )
    with pytest.raises(InputError) as refused:
        make_plan(options, (1, 22, 1))
    assert refused.value.where == f"{config}:12"


def test_without_the_off_line_the_applied_plan_logs_each_callback(
    tmp_path: Path, nginx_bin: str, app: RecordingServer, ca_file: Path
) -> None:
    port = free_port()
    parity = tmp_path / "parity.log"
    config = tmp_path / "nginx.conf"
    text = CONFIG.format(p=tmp_path, port=port, app=app.port, extra="")
    config.write_text(text.replace("access_log off;", ""))
    options = MirrorOptions(
        config=config,
        path="/callback",
        stage_url="https://abc123.execute-api.ap-northeast-2.amazonaws.com/prod",
        parity_log=parity,
        trusted_ca=ca_file,
        relay_socket=str(tmp_path / "relay.sock"),
        mirror_error_log=tmp_path / "mirror.error.log",
    )
    apply_plan(make_plan(options, (1, 22, 1)), nginx_bin=nginx_bin, backup_dir=tmp_path / "bk")
    nginx = _serve(nginx_bin, tmp_path, port)
    try:
        assert _post(port) == 200
        assert _eventually(lambda: parity.exists() and parity.read_text().strip() != "")
    finally:
        nginx.stop()
    (line,) = parity.read_text().splitlines()
    assert json.loads(line)["uri"] == "/callback"
