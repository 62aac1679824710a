"""Many vendor connections at once while the stage hangs: the copies must never cost the vendor
a connection.

nginx counts every connection against its worker's `worker_connections`: the vendor's, the
app's, and a copy's hand-off to the relay (both ends of the unix socket), and it spreads
clients unevenly over its workers. When a worker runs short it closes idle keep-alive
connections, and the vendor sees a reset. So a worker hands the relay copies of a bounded
number of callbacks at once and drops the others' copies at once (parity counts them), and the
relay holds a bounded number of copies at the stage. Nothing here is timed: the tests count
answers, errors, lines and connections.
"""

from __future__ import annotations

import http.client
import json
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from bench.isolation import connections_to
from bench.stages import ECHO_MODULE
from hookshift.mirror.plan import make_plan
from hookshift.procs import LOOPBACK, ManagedProcess, free_port, wait_for_port, wait_until
from tests.mirror import test_functional as functional
from tests.mirror.test_functional import SAMPLE, Live

pytestmark = pytest.mark.e2e  # every test here starts a process

# The functional tests' set-up (each nginx binary, app, TLS stage, DNS, the callback server).
any_nginx, app, stage, dns, port, live = (
    functional.any_nginx,
    functional.app,
    functional.stage,
    functional.dns,
    functional.port,
    functional.live,
)

HANDOFF_LIMIT = 'limiting connections by zone "hookshift_handoffs"'


class _HeldApp(ThreadingHTTPServer):
    """An app that holds every callback until `release` is set, then answers 200."""

    daemon_threads = True
    request_queue_size = 256

    def __init__(self) -> None:
        super().__init__((LOOPBACK, 0), _HeldHandler)
        self.release = threading.Event()
        self.waiting = 0
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self.server_address[1])


class _HeldHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        server: _HeldApp = self.server  # type: ignore[assignment]
        with server.lock:
            server.waiting += 1
        server.release.wait(60)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def held_app() -> Iterator[_HeldApp]:
    server = _HeldApp()
    server.thread.start()
    yield server
    server.release.set()
    server.shutdown()
    server.server_close()


def _limit_of(text: str, zone: str) -> int:
    return int(re.search(rf"limit_conn {zone} (\d+);", text).group(1))  # type: ignore[union-attr]


def _callback(port: int, i: int) -> int:
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=60)
    conn.request("POST", "/callback", body=SAMPLE + str(i).encode(), headers={"Host": "hooks.test"})
    response = conn.getresponse()
    response.read()
    conn.close()
    return response.status


def test_a_worker_hands_the_relay_copies_of_a_bounded_number_of_callbacks(
    live: Live, held_app: _HeldApp
) -> None:
    """One worker (worker_connections 512: room for all of it), the app holding every
    callback: the first `limit` callbacks' copies reach
    the stage, the others' are dropped at once (a line at info, not an error), and every
    callback still reaches the app and gets its answer. Once they have ended, copies go
    again."""
    conf = live.prefix / "nginx.conf"
    text = conf.read_text().replace(f":{live.app.port};", f":{held_app.port};")
    conf.write_text(text.replace("worker_connections 64;", "worker_connections 512;"))
    options = live.options()
    limit = _limit_of(make_plan(options, live.nginx[1]).changes[0].new_text, "hookshift_handoffs")
    callbacks = limit + 8
    nginx = live.start(options)
    try:
        with ThreadPoolExecutor(max_workers=callbacks) as pool:
            answers = [pool.submit(_callback, live.port, i) for i in range(callbacks)]
            wait_until(lambda: held_app.waiting == callbacks, "every callback at the app")
            wait_until(lambda: len(live.stage.received) >= limit, "the copies handed over")
            held_app.release.set()
            assert [a.result() for a in answers] == [200] * callbacks
        error_log = (live.prefix / "error.log").read_text()
        assert error_log.count(HANDOFF_LIMIT) == callbacks - limit
        assert all("[info]" in ln for ln in error_log.splitlines() if HANDOFF_LIMIT in ln)
        assert len(live.stage.received) == limit, "a dropped copy is not sent later"
        assert _callback(live.port, callbacks) == 200
        wait_until(lambda: len(live.stage.received) == limit + 1, "a copy once the crowd left")
    finally:
        nginx.stop()


# A crowd in one worker with Debian's worker_connections 768: 256 keep-alive vendor
# connections (the bench's crowd row, 512 over two workers, gave the busiest one about 350),
# and an app that answers after 2 ms (a second nginx, Debian's echo module), as in the bench.
# One worker keeps the test about what the mirror costs, not about how unevenly nginx spreads
# clients over workers: without a mirror the worker holds at most the 256 clients and one
# connection to the app for each, and before the hand-offs were bounded the mirror made it
# close thousands of idle vendor connections in 5 s.
CROWD_CLIENTS = 256
APP_CONF = """load_module {echo};
worker_processes 2;
pid {p}/app.pid;
error_log {p}/app-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {p}/app-body;
    server {{
        listen 127.0.0.1:{port};
        location / {{ echo_read_request_body; echo_sleep 0.002; echo ok; }}
    }}
}}
"""
WRK_SCRIPT = """wrk.method = "POST"
wrk.body = {body}
wrk.headers["Content-Type"] = "application/json"
done = function(summary, latency, requests)
  io.write(string.format('{{"requests":%d,"connect":%d,"read":%d,"write":%d,"status":%d,'
    .. '"timeout":%d}}\\n', summary.requests, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.status, summary.errors.timeout))
end
"""


def test_a_crowd_at_a_hanging_stage_resets_no_vendor_connection(
    live: Live, tmp_path: Path, nginx_bin: str
) -> None:
    """256 keep-alive clients (wrk) on one worker with worker_connections 768 while the stage
    accepts copies and never answers: no client sees an error, nginx never runs short of
    connections, and the connections open to the stage never exceed the relay's cap."""
    wrk = shutil.which("wrk")
    if wrk is None:
        pytest.skip("wrk is not installed (apt-get install wrk)")
    if not ECHO_MODULE.exists():
        pytest.skip(f"{ECHO_MODULE} is missing (apt-get install libnginx-mod-http-echo)")
    app_port = free_port()
    app_conf = APP_CONF.format(echo=ECHO_MODULE, p=tmp_path, port=app_port)
    (tmp_path / "app.conf").write_text(app_conf)
    conf = live.prefix / "nginx.conf"
    text = conf.read_text().replace(f":{live.app.port};", f":{app_port};")
    for small, crowd in (
        ("worker_processes 1;", "worker_processes 1;\nworker_rlimit_nofile 8192;"),
        ("worker_connections 64;", "worker_connections 768;"),
        ("error.log info;", "error.log warn;"),
    ):
        text = text.replace(small, crowd)
    conf.write_text(text)
    live.stage.hanging.set()
    options = live.options()
    cap = _limit_of(make_plan(options, live.nginx[1]).changes[0].new_text, "hookshift_copies")
    script = tmp_path / "crowd.lua"
    script.write_text(WRK_SCRIPT.format(body=json.dumps(SAMPLE.decode(), ensure_ascii=False)))
    peak = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.wait(0.1):
            peak = max(peak, connections_to(live.stage.port))

    app_nginx = ManagedProcess(
        "app-nginx",
        [nginx_bin, "-p", f"{tmp_path}/", "-c", str(tmp_path / "app.conf"), "-g", "daemon off;"],
        tmp_path / "app.out",
    ).start(ready=lambda: wait_for_port(app_port))
    error_log = live.prefix / "error.log"
    try:
        nginx = live.start(options)
        sampler = threading.Thread(target=sample, daemon=True)
        try:
            sampler.start()
            url = f"http://{LOOPBACK}:{live.port}/callback"
            errors = _crowd(wrk, script, url, seconds=5)
        finally:
            stop.set()
            sampler.join()
            nginx.stop()
    finally:
        app_nginx.stop()
    assert errors == dict.fromkeys(errors, 0), "no vendor connection refused, reset or failed"
    assert "worker_connections are not enough" not in error_log.read_text()
    assert 0 < peak <= cap, "the copies held at the stage stay under the relay's cap"


def _crowd(wrk: str, script: Path, url: str, seconds: int) -> dict[str, int]:
    """wrk's error counts after `seconds` of CROWD_CLIENTS keep-alive connections."""
    argv = [wrk, "-t2", f"-c{CROWD_CLIENTS}", f"-d{seconds}s", "--timeout=10s", "-s", str(script)]
    done = subprocess.run([*argv, url], capture_output=True, text=True, timeout=120)
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
    assert lines, f"wrk: {done.stdout} {done.stderr}"
    summary = json.loads(lines[-1])
    assert summary["requests"] > CROWD_CLIENTS
    return {k: summary[k] for k in ("connect", "read", "write", "status", "timeout")}
