"""The parity log with a real nginx: `access_log off;` in the callback location silences it, so
the plan refuses that location; without the `off` line the applied plan logs each callback; and
by default it lands beside the access log nginx really writes, also under `-p`."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from hookshift.cli import main
from hookshift.errors import InputError
from hookshift.mirror.apply import apply_plan
from hookshift.mirror.plan import MirrorOptions, make_plan
from hookshift.procs import LOOPBACK, free_port, wait_until
from tests.mirror.servers import RecordingServer
from tests.mirror.test_functional import _start_nginx

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


def _post(port: int) -> int:
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=10)
    conn.request("POST", "/callback", body=b'{"MSGID":"m1"}', headers={"Host": "hooks.test"})
    response = conn.getresponse()
    response.read()
    return response.status


def _plan_with_parity_log(config: Path, parity: Path) -> None:
    options = MirrorOptions(
        config=config,
        path="/callback",
        stage_url="https://abc123.execute-api.ap-northeast-2.amazonaws.com/prod",
        parity_log=parity,
        relay_socket=str(config.parent / "relay.sock"),
    )
    make_plan(options, (1, 22, 1))


def test_access_log_off_silences_a_parity_log_beside_it_so_the_plan_refuses_it(
    tmp_path: Path, nginx_bin: str, app: RecordingServer
) -> None:
    port = free_port()
    parity = tmp_path / "parity.log"
    config = tmp_path / "nginx.conf"
    config.write_text(
        CONFIG.format(p=tmp_path, port=port, app=app.port, extra=f"access_log {parity};")
    )
    nginx = _start_nginx(nginx_bin, tmp_path, port)
    try:
        assert _post(port) == 200
        wait_until(lambda: len(app.received) == 1, "the callback at the app")
    finally:
        nginx.stop()
    assert parity.read_text() == "", "nginx wrote no line: `off` silences every log there"

    config.write_text(CONFIG.format(p=tmp_path, port=port, app=app.port, extra=""))
    with pytest.raises(InputError) as refused:
        _plan_with_parity_log(config, parity)
    assert refused.value.where == f"{config}:12"


def test_an_access_log_of_an_if_in_the_location_replaces_the_parity_log_so_the_plan_refuses(
    tmp_path: Path, nginx_bin: str, app: RecordingServer
) -> None:
    """For the callbacks an `if` holds for (JSON ones here), nginx writes the `if` block's
    logs only: the location's parity log would miss them."""
    port = free_port()
    parity = tmp_path / "parity.log"
    config = tmp_path / "nginx.conf"
    guard = "if ($http_content_type ~* json) { access_log off; }"
    text = CONFIG.format(p=tmp_path, port=port, app=app.port, extra=guard)
    config.write_text(text.replace("access_log off;\n", f"access_log {parity};\n", 1))
    nginx = _start_nginx(nginx_bin, tmp_path, port)
    try:
        conn = http.client.HTTPConnection(LOOPBACK, port, timeout=10)
        conn.request("POST", "/callback", body=b"{}", headers={"Content-Type": "application/json"})
        assert conn.getresponse().status == 200
        wait_until(lambda: len(app.received) == 1, "the callback at the app")
    finally:
        nginx.stop()
    assert parity.read_text() == "", "the if block's `off` held for the JSON callback"

    config.write_text(text.replace("access_log off;\n", "", 1))
    with pytest.raises(InputError) as refused:
        _plan_with_parity_log(config, parity)
    assert refused.value.where == f"{config}:12"
    assert "an `if` in location = /callback has its own `access_log off`" in refused.value.what


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
        stage_dns="runtime",  # the stage's name resolves nowhere: nginx -t must not resolve it
    )
    apply_plan(make_plan(options, (1, 22, 1)), nginx_bin=nginx_bin, backup_dir=tmp_path / "bk")
    nginx = _start_nginx(nginx_bin, tmp_path, port)
    try:
        assert _post(port) == 200
        wait_until(lambda: parity.exists() and parity.read_text().strip() != "", "a parity line")
    finally:
        nginx.stop()
    (line,) = parity.read_text().splitlines()
    assert json.loads(line)["uri"] == "/callback"


PREFIXED = """worker_processes 1;
pid logs/nginx.pid;
error_log logs/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log logs/access.log;
    client_body_temp_path logs/body;
    proxy_temp_path logs/proxy;
    server {{
        listen 127.0.0.1:{port};
        location = /callback {{
            proxy_pass http://127.0.0.1:{app};
        }}
    }}
}}
"""


def test_under_nginx_prefix_the_logs_go_where_that_nginx_writes_its_access_log(
    tmp_path: Path, nginx_bin: str, app: RecordingServer, ca_file: Path
) -> None:
    """nginx run with -p resolves `access_log logs/access.log` under its prefix; the applied
    mirror's parity log and relay error log sit in that directory, not in the compiled-in
    /var/log/nginx of the system's nginx."""
    port = free_port()
    prefix = tmp_path / "ng"
    (prefix / "logs").mkdir(parents=True)
    config = prefix / "nginx.conf"
    config.write_text(PREFIXED.format(port=port, app=app.port))
    args = ["mirror", "apply", "--config", str(config), "--path", "/callback"]
    args += ["--stage-url", "https://abc123.execute-api.ap-northeast-2.amazonaws.com/prod"]
    args += ["--nginx-bin", nginx_bin, "--nginx-prefix", f"{prefix}/", "--no-dns-check"]
    args += ["--stage-dns", "runtime", "--trusted-ca", str(ca_file)]
    args += ["--relay-socket", str(tmp_path / "relay.sock"), "--backup-dir", str(tmp_path / "bk")]
    main(args)  # returns: applied, nginx -t -p passed on the result
    text = config.read_text()
    assert "/var/log/nginx" not in text
    assert f"error_log {prefix}/logs/hookshift-mirror.error.log warn;" in text
    nginx = _start_nginx(nginx_bin, prefix, port)
    parity = prefix / "logs" / "hookshift-parity.log"
    try:
        assert _post(port) == 200
        wait_until(lambda: parity.exists() and parity.read_text().strip() != "", "a parity line")
    finally:
        nginx.stop()
    assert json.loads(parity.read_text().splitlines()[0])["uri"] == "/callback"
    assert "POST /callback" in (prefix / "logs" / "access.log").read_text()
