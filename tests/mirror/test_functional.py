"""A running nginx with hookshift's mirror: the app gets the callback, the stage gets a copy,
the parity log gets the body, the original access_log and inherited headers keep working.

The tests marked for both binaries run on Debian's nginx (1.22, run-time DNS through a stage
hop) and on a current mainline nginx (>= 1.27.3, the stage in a resolving upstream) when
``HOOKSHIFT_NGINX_MAINLINE`` names one (``.ci/run`` builds it).
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import ssl
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import trustme

from hookshift.errors import OperationError
from hookshift.mirror.apply import Edit, apply_plan, write_edits
from hookshift.mirror.plan import RESOLVE_IN_UPSTREAM, MirrorOptions, MirrorPlan, make_plan
from hookshift.mirror.remove import remove_marked
from hookshift.mirror.render import Tuning
from hookshift.nginx.binary import nginx_version
from hookshift.procs import LOOPBACK, ManagedProcess, free_port, wait_for_port, wait_until
from hookshift.rehearsal.dns import DnsServer
from tests.mirror.servers import RecordingServer

pytestmark = pytest.mark.e2e  # every test here starts a process

STAGE_HOST = "abc123.execute-api.ap-northeast-2.amazonaws.com"
SAMPLE = (
    b'{"DEVICE":"AT","CMSGID":"261128091500123at0031servab12","PHONE":"01012345678",'
    b'"RESULT":"7000","USERDATA":"order=A-1001&coupon=50%+off","MSG":"\xec\x95\x88\xeb\x85\x95"}'
)

BASE = """user root;
worker_processes 1;
pid {p}/nginx.pid;
error_log {p}/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log {p}/access.log;
    client_body_temp_path {p}/body;
    proxy_temp_path {p}/proxy;
    fastcgi_temp_path {p}/fastcgi;
    uwsgi_temp_path {p}/uwsgi;
    scgi_temp_path {p}/scgi;
    server {{
        listen 127.0.0.1:{port};
        server_name hooks.test;
        proxy_set_header X-Tenant acme;
        location = /callback {{ proxy_pass http://127.0.0.1:{app}; }}
    }}
}}
"""


MAINLINE_ENV = "HOOKSHIFT_NGINX_MAINLINE"
Nginx = tuple[str, tuple[int, int, int]]


@pytest.fixture(params=["debian", "mainline"])
def any_nginx(request: pytest.FixtureRequest, nginx_bin: str) -> Nginx:
    """Each nginx binary there is, with its version (which chooses the layout)."""
    path = nginx_bin
    if request.param == "mainline":
        path = os.environ.get(MAINLINE_ENV, "")
        if not path:
            pytest.skip(f"{MAINLINE_ENV} is not set (.ci/run builds nginx 1.31.5 and sets it)")
        if not os.access(path, os.X_OK):
            pytest.skip(f"{MAINLINE_ENV}={path} is not an executable")
    return path, nginx_version(path)


@pytest.fixture
def app() -> Iterator[RecordingServer]:
    server = RecordingServer().start()
    yield server
    server.stop()


@pytest.fixture
def stage(ca: trustme.CA) -> Iterator[RecordingServer]:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert(STAGE_HOST).configure_cert(ctx)
    server = RecordingServer(tls=ctx).start()
    yield server
    server.stop()


@pytest.fixture
def port(tmp_path: Path, app: RecordingServer) -> int:
    """A config in `tmp_path` (callback server on the returned port, proxying to `app`)."""
    chosen = free_port()
    (tmp_path / "nginx.conf").write_text(BASE.format(p=tmp_path, port=chosen, app=app.port))
    return chosen


@pytest.fixture
def dns() -> Iterator[DnsServer]:
    with DnsServer([f"{STAGE_HOST}=127.0.0.1"]) as server:
        yield server


def _post(port: int, body: bytes, conn: http.client.HTTPConnection | None = None) -> int:
    conn = conn or http.client.HTTPConnection(LOOPBACK, port, timeout=10)
    conn.request(
        "POST",
        "/callback?src=vendor",
        body=body,
        headers={"Host": "hooks.test", "Content-Type": "application/json"},
    )
    response = conn.getresponse()
    response.read()
    return response.status


def _start_nginx(nginx_bin: str, prefix: Path, port: int) -> ManagedProcess:
    proc = ManagedProcess(
        name="nginx",
        argv=[nginx_bin, "-p", f"{prefix}/", "-c", str(prefix / "nginx.conf"), "-g", "daemon off;"],
        log_path=prefix / "nginx.out",
    )
    return proc.start(ready=lambda: wait_for_port(port))


def _options(prefix: Path, stage_port: int, dns: DnsServer, ca_file: Path) -> MirrorOptions:
    return MirrorOptions(
        config=prefix / "nginx.conf",
        path="/callback",
        stage_url=f"https://{STAGE_HOST}:{stage_port}/prod",
        resolvers=(dns.address,),
        parity_log=prefix / "parity.log",
        request_id_to_app=True,
        trusted_ca=ca_file,
        relay_socket=str(prefix / "relay.sock"),
        timeout=1.0,
        # the stage's name is known only to the test's DNS server, which nginx asks only with
        # run-time DNS (the system resolver, which nginx uses on reload, does not know it)
        stage_dns="runtime",
        # what the API gets from that DNS server when it plans (nginx < 1.27.3 keeps
        # connections to it)
        stage_addresses=(LOOPBACK,),
    )


def test_callback_reaches_app_and_stage_and_both_logs(
    tmp_path: Path,
    nginx_bin: str,
    stage: RecordingServer,
    dns: DnsServer,
    ca_file: Path,
    app: RecordingServer,
    port: int,
) -> None:
    original = (tmp_path / "nginx.conf").read_bytes()
    nginx = _start_nginx(nginx_bin, tmp_path, port)
    try:
        plan = make_plan(_options(tmp_path, stage.port, dns, ca_file), (1, 22, 1))
        result = apply_plan(
            plan, nginx_bin=nginx_bin, backup_dir=tmp_path / "bk", reload=True, prefix=tmp_path
        )
        assert result.reloaded
        wait_until(lambda: (tmp_path / "relay.sock").exists(), "the relay socket after reload")

        # the reload is asynchronous: old workers may serve a few more requests
        def mirrored() -> bool:
            assert _post(port, SAMPLE) == 200
            return bool(stage.received)

        wait_until(mirrored, "a mirrored copy at the stage")
        copy = stage.received[-1]
        assert copy.method == "POST"
        assert copy.path == "/prod/callback?src=vendor"
        assert copy.body == SAMPLE
        assert copy.headers["host"] == STAGE_HOST
        request_id = copy.headers["x-request-id"]
        assert len(request_id) == 32

        delivered = [r for r in app.received if r.headers.get("x-request-id") == request_id]
        assert len(delivered) == 1, "the app got the same callback, with the request id"
        assert delivered[0].body == SAMPLE
        assert delivered[0].headers["x-tenant"] == "acme", "inherited proxy_set_header kept"
        assert dns.queries == [], "the address known when planning needs no DNS per copy"

        wait_until(lambda: request_id in (tmp_path / "parity.log").read_text(), "parity line")
        lines = [json.loads(x) for x in (tmp_path / "parity.log").read_text().splitlines()]
        entry = next(x for x in lines if x["request_id"] == request_id)
        assert entry["v"] == 1 and entry["status"] == "200" and entry["upstream_status"] == "200"
        assert entry["body"].encode() == SAMPLE
        assert entry["uri"] == "/callback?src=vendor"
        assert entry["mirror"] == "/__hookshift_mirror"
        # nginx writes a request's logs one after the other: the parity line can be there a
        # moment before the access log's own
        wait_until(
            lambda: (
                (tmp_path / "access.log").read_text().count("POST /callback?src=vendor")
                >= len(lines)
            ),
            "the original access log's line for each callback (kept)",
        )

        removed = remove_marked(
            tmp_path / "nginx.conf",
            nginx_bin=nginx_bin,
            backup_dir=tmp_path / "bk",
            reload=True,
            prefix=tmp_path,
        )
        assert (tmp_path / "nginx.conf").read_bytes() == original
        # the reload took effect before remove returned: nginx let go of the relay's socket
        assert removed.reloaded and not (tmp_path / "relay.sock").exists()
        assert _post(port, SAMPLE) == 200
        again = remove_marked(
            tmp_path / "nginx.conf",
            nginx_bin=nginx_bin,
            backup_dir=tmp_path / "bk",
            reload=True,
            prefix=tmp_path,
        )
        assert again.no_change and again.reloaded  # asked to reload: nginx runs what is on disk
    finally:
        nginx.stop()


def test_an_apply_interrupted_after_its_reload_puts_nginx_back_on_the_original(
    tmp_path: Path,
    nginx_bin: str,
    stage: RecordingServer,
    dns: DnsServer,
    ca_file: Path,
    port: int,
) -> None:
    """Ctrl-C while nginx takes the reload: the files go back, and so must nginx (a second
    reload), or it would go on mirroring a config that is no longer on disk."""
    original = (tmp_path / "nginx.conf").read_bytes()
    nginx = _start_nginx(nginx_bin, tmp_path, port)
    try:
        plan = make_plan(_options(tmp_path, stage.port, dns, ca_file), (1, 22, 1))

        def interrupted() -> bool:
            wait_until(lambda: (tmp_path / "relay.sock").exists(), "nginx on the new config")
            raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            write_edits(
                [Edit(c.path, c.old_text, c.new_text) for c in plan.changes],
                config=tmp_path / "nginx.conf",
                nginx_bin=nginx_bin,
                backup_dir=tmp_path / "bk",
                reload=True,
                prefix=tmp_path,
                took_effect=interrupted,
            )
        assert (tmp_path / "nginx.conf").read_bytes() == original
        wait_until(lambda: not (tmp_path / "relay.sock").exists(), "nginx back on the original")
    finally:
        nginx.stop()


@pytest.mark.parametrize("stage_dns", ["runtime", "reload"])
def test_a_dead_stage_does_not_cost_the_app_a_single_callback(
    stage_dns: str,
    tmp_path: Path,
    nginx_bin: str,
    app: RecordingServer,
    dns: DnsServer,
    ca_file: Path,
    port: int,
) -> None:
    dead_port = free_port()  # nothing listens there: every copy is refused
    options = _options(tmp_path, dead_port, dns, ca_file)
    if stage_dns == "reload":  # the keep-alive upstream's host must resolve via getaddrinfo
        options = replace(
            options, stage_url=f"https://localhost:{dead_port}/prod", stage_dns="reload"
        )
    plan = make_plan(options, (1, 22, 1))
    assert plan.stage_dns == stage_dns
    apply_plan(plan, nginx_bin=nginx_bin, backup_dir=tmp_path / "bk", prefix=tmp_path)
    nginx = _start_nginx(nginx_bin, tmp_path, port)
    try:
        conn = http.client.HTTPConnection(LOOPBACK, port, timeout=10)  # keep-alive
        statuses = [_post(port, SAMPLE + str(i).encode(), conn) for i in range(20)]
        assert statuses == [200] * 20
        assert sorted(r.body for r in app.received) == sorted(
            SAMPLE + str(i).encode() for i in range(20)
        )
        wait_until(
            lambda: len((tmp_path / "parity.log").read_text().splitlines()) == 20, "parity lines"
        )
        # the relay's own errors (here: the refused connection that opened the breaker) go to
        # the mirror's error log, beside the parity log, not to the user's
        mirror_errors = (tmp_path / "hookshift-mirror.error.log").read_text()
        assert "server: hookshift-mirror-relay" in mirror_errors
        assert "Connection refused" in mirror_errors
        assert "hookshift-mirror-relay" not in (tmp_path / "error.log").read_text()
    finally:
        nginx.stop()


def test_forward_mode_sends_the_callback_to_the_stage_instead_of_the_app(
    tmp_path: Path,
    nginx_bin: str,
    stage: RecordingServer,
    dns: DnsServer,
    ca_file: Path,
    app: RecordingServer,
    port: int,
) -> None:
    options = replace(
        _options(tmp_path, stage.port, dns, ca_file),
        mode="forward",
        request_id_to_app=False,
        timeout=None,
    )
    apply_plan(
        make_plan(options, (1, 22, 1)),
        nginx_bin=nginx_bin,
        backup_dir=tmp_path / "bk",
        prefix=tmp_path,
    )
    nginx = _start_nginx(nginx_bin, tmp_path, port)
    try:
        assert _post(port, SAMPLE) == 200
        assert app.received == []
        (forwarded,) = stage.received
        assert forwarded.path == "/prod/callback?src=vendor" and forwarded.body == SAMPLE
        assert forwarded.headers["host"] == STAGE_HOST
        wait_until(
            lambda: (
                (tmp_path / "parity.log").exists()
                and (tmp_path / "parity.log").read_text().strip() != ""
            ),
            "parity line",
        )
        (entry,) = [json.loads(x) for x in (tmp_path / "parity.log").read_text().splitlines()]
        assert entry["mirror"] == "/__hookshift_forward"
        assert entry["request_id"] == forwarded.headers["x-request-id"]
        assert entry["body"].encode() == SAMPLE and entry["upstream_status"] == "200"
        wait_until(  # written just after the parity line
            lambda: "POST /callback?src=vendor" in (tmp_path / "access.log").read_text(),
            "the original access log's line",
        )
    finally:
        nginx.stop()


def _apply_and_start(
    tmp_path: Path, any_nginx: Nginx, options: MirrorOptions, port: int
) -> ManagedProcess:
    nginx_path, version = any_nginx
    plan = make_plan(options, version)
    apply_plan(plan, nginx_bin=nginx_path, backup_dir=tmp_path / "bk", prefix=tmp_path)
    return _start_nginx(nginx_path, tmp_path, port)


@dataclass(frozen=True)
class Live:
    """A config in `prefix` for one nginx binary, with a running app, TLS stage and DNS."""

    prefix: Path
    nginx: Nginx
    app: RecordingServer
    stage: RecordingServer
    dns: DnsServer
    ca_file: Path
    port: int

    def options(self, **overrides: Any) -> MirrorOptions:
        base = _options(self.prefix, self.stage.port, self.dns, self.ca_file)
        return replace(base, **overrides)

    def start(self, options: MirrorOptions) -> ManagedProcess:
        return _apply_and_start(self.prefix, self.nginx, options, self.port)


@pytest.fixture
def live(
    tmp_path: Path,
    any_nginx: Nginx,
    app: RecordingServer,
    stage: RecordingServer,
    dns: DnsServer,
    ca_file: Path,
    port: int,
) -> Live:
    return Live(tmp_path, any_nginx, app, stage, dns, ca_file, port)


def _relay_breaker_open(error_log: Path) -> bool:
    """Whether the relay's breaker has opened: its own failure line, not the stage hop's (whose
    kept connections to the stage's address have a breaker of their own)."""
    return error_log.exists() and any(
        "temporarily disabled" in line and "server: hookshift-mirror-relay" in line
        for line in error_log.read_text().splitlines()
    )


def test_a_stage_that_hangs_then_recovers_gets_copies_again_after_fail_timeout(
    live: Live,
) -> None:
    """While the stage hangs the callbacks go on at once; the copies in flight fail at their
    timeout and open the breaker, which keeps the stage out until fail_timeout has passed;
    then the stage gets copies again."""
    live.stage.hanging.set()
    nginx = live.start(live.options(timeout=0.5, tuning=Tuning(fail_timeout="2s")))
    try:
        conn = http.client.HTTPConnection(LOOPBACK, live.port, timeout=30)  # keep-alive
        statuses = [_post(live.port, SAMPLE + str(i).encode(), conn) for i in range(6)]
        assert statuses == [200] * 6, "the callbacks do not wait for their hanging copies"
        assert len(live.app.received) == 6
        errors = live.prefix / "hookshift-mirror.error.log"
        wait_until(lambda: _relay_breaker_open(errors), "the breaker to open")
        held = live.stage.held
        assert held <= 6, "a copy that timed out is not sent to the stage again"
        assert [_post(live.port, SAMPLE, conn) for _ in range(6)] == [200] * 6
        assert live.stage.held == held, "the open breaker keeps the hanging stage out"
        live.stage.hanging.clear()

        def copied() -> bool:
            assert _post(live.port, SAMPLE + b"again", conn) == 200
            return any(r.body == SAMPLE + b"again" for r in live.stage.received)

        wait_until(copied, "a copy at the recovered stage", timeout=15)
        assert "hookshift-mirror" not in (live.prefix / "error.log").read_text()
    finally:
        nginx.stop()


def test_a_broad_location_copies_and_logs_only_the_callback_path(
    tmp_path: Path,
    nginx_bin: str,
    app: RecordingServer,
    stage: RecordingServer,
    dns: DnsServer,
    ca_file: Path,
    port: int,
) -> None:
    config = tmp_path / "nginx.conf"
    config.write_text(config.read_text().replace("location = /callback {", "location / {"))
    plan = make_plan(_options(tmp_path, stage.port, dns, ca_file), (1, 22, 1))
    assert any("only /callback is copied" in i for i in plan.info)
    apply_plan(plan, nginx_bin=nginx_bin, backup_dir=tmp_path / "bk", prefix=tmp_path)
    nginx = _start_nginx(nginx_bin, tmp_path, port)
    try:
        conn = http.client.HTTPConnection(LOOPBACK, port, timeout=10)
        for path in ("/other", "/callback/more", "/callback?src=vendor", "/static/app.js"):
            conn.request("POST", path, body=SAMPLE, headers={"Host": "hooks.test"})
            response = conn.getresponse()
            response.read()
            assert response.status == 200
        assert [r.path for r in app.received] == [
            "/other",
            "/callback/more",
            "/callback?src=vendor",
            "/static/app.js",
        ]
        wait_until(lambda: len(stage.received) >= 1, "the callback's copy")
        assert [r.path for r in stage.received] == ["/prod/callback?src=vendor"]
        wait_until(lambda: (tmp_path / "parity.log").exists(), "the parity log")
        logged = [json.loads(x)["uri"] for x in (tmp_path / "parity.log").read_text().splitlines()]
        assert logged == ["/callback?src=vendor"]
    finally:
        nginx.stop()


def test_a_reload_nginx_cannot_take_is_rolled_back(
    tmp_path: Path,
    nginx_bin: str,
    stage: RecordingServer,
    dns: DnsServer,
    ca_file: Path,
    port: int,
) -> None:
    """nginx -t does not bind sockets: a relay path nginx cannot listen on passes -t, and the
    master keeps the old config on reload. apply notices and restores the original."""
    blocked = tmp_path / "not-a-socket"
    blocked.mkdir()  # a directory where the relay socket should go: bind() fails
    original = (tmp_path / "nginx.conf").read_bytes()
    options = replace(_options(tmp_path, stage.port, dns, ca_file), relay_socket=str(blocked))
    nginx = _start_nginx(nginx_bin, tmp_path, port)
    try:
        with pytest.raises(OperationError, match="did not take the new config"):
            apply_plan(
                make_plan(options, (1, 22, 1)),
                nginx_bin=nginx_bin,
                backup_dir=tmp_path / "bk",
                reload=True,
                prefix=tmp_path,
            )
        assert (tmp_path / "nginx.conf").read_bytes() == original
        assert _post(port, SAMPLE) == 200
    finally:
        nginx.stop()


@pytest.mark.parametrize(
    ("stage_dns", "addresses", "keeps_alive"),
    [
        ("reload", (), True),
        ("runtime", (LOOPBACK,), True),
        ("runtime", (), False),
    ],
    ids=["reload", "runtime-address-known", "runtime-no-address"],
)
def test_copies_travel_over_kept_alive_tls_connections_where_the_stage_address_is_known(
    stage_dns: str,
    addresses: tuple[str, ...],
    keeps_alive: bool,
    tmp_path: Path,
    nginx_bin: str,
    app: RecordingServer,
    ca: trustme.CA,
    ca_file: Path,
    port: int,
) -> None:
    """With `reload`, and with `runtime` given the stage's address when planning, the relay
    keeps its TLS connections to the stage (verified, with SNI), so many copies share few
    connections; `runtime` without a known address opens one per copy. The stage answers with
    an empty body, as API Gateway's integration does: that is what lets nginx keep a mirror's
    connection. `localhost` is resolved by getaddrinfo from /etc/hosts (the upstream's host)
    and by the loopback DNS server (runtime's resolver)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("localhost").configure_cert(ctx)
    stage = RecordingServer(tls=ctx, payload=b"").start()
    copies = 8
    try:
        with DnsServer(["localhost=127.0.0.1"]) as dns:
            options = replace(
                _options(tmp_path, stage.port, dns, ca_file),
                stage_url=f"https://localhost:{stage.port}/prod",
                stage_dns=stage_dns,  # type: ignore[arg-type]
                stage_addresses=addresses,
            )
            plan = make_plan(options, (1, 22, 1))
            apply_plan(plan, nginx_bin=nginx_bin, backup_dir=tmp_path / "bk", prefix=tmp_path)
            nginx = _start_nginx(nginx_bin, tmp_path, port)
            try:
                conn = http.client.HTTPConnection(LOOPBACK, port, timeout=10)
                statuses = [_post(port, SAMPLE + str(i).encode(), conn) for i in range(copies)]
                assert statuses == [200] * copies
                wait_until(lambda: len(stage.received) == copies, "every copy at the stage")
            finally:
                nginx.stop()
        assert sorted(r.body for r in stage.received) == sorted(
            SAMPLE + str(i).encode() for i in range(copies)
        )
        assert {r.headers["host"] for r in stage.received} == {"localhost"}
        if keeps_alive:
            assert stage.connections < copies, "copies share kept-alive connections"
        else:
            assert stage.connections == copies, "a new connection per copy"
    finally:
        stage.stop()


def _post_to(port: int, path: str) -> int:
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=10)
    conn.request("POST", path, body=SAMPLE, headers={"Host": "hooks.test"})
    response = conn.getresponse()
    response.read()
    return response.status


def _planned_with(
    prefix: Path,
    location: str,
    stage: RecordingServer,
    dns: DnsServer,
    ca_file: Path,
    nginx_bin: str,
) -> MirrorPlan:
    """The callback location of the base config replaced by `location` (its `{` opening the
    proxying block), planned and applied (nginx not yet started)."""
    config = prefix / "nginx.conf"
    config.write_text(config.read_text().replace("location = /callback {", location))
    plan = make_plan(_options(prefix, stage.port, dns, ca_file), (1, 22, 1))
    apply_plan(plan, nginx_bin=nginx_bin, backup_dir=prefix / "bk", prefix=prefix)
    return plan


def test_a_try_files_hand_off_is_mirrored_where_the_app_is_reached(
    tmp_path: Path,
    nginx_bin: str,
    app: RecordingServer,
    stage: RecordingServer,
    dns: DnsServer,
    ca_file: Path,
    port: int,
) -> None:
    """nginx leaves `location /` at try_files, before a mirror there would run: the copy and
    the parity line must come from `@app`, where the content handler runs."""
    hand_off = "location / { try_files /nonexistent @app; }\n        location @app {"
    plan = _planned_with(tmp_path, hand_off, stage, dns, ca_file, nginx_bin)
    assert plan.location.description == "location @app"
    assert plan.route == "/callback -> location / (try_files) -> location @app"
    assert any(i.startswith("route: /callback -> location /") for i in plan.info)
    nginx = _start_nginx(nginx_bin, tmp_path, port)
    try:
        assert _post_to(port, "/callback?src=vendor") == 200
        assert _post_to(port, "/other") == 200
        wait_until(lambda: len(stage.received) >= 1, "the callback's copy at the stage")
        assert [r.path for r in stage.received] == ["/prod/callback?src=vendor"]
        assert stage.received[0].body == SAMPLE
        assert [r.path for r in app.received] == ["/callback?src=vendor", "/other"]
        parity = tmp_path / "parity.log"
        wait_until(lambda: parity.exists() and "/callback" in parity.read_text(), "parity line")
        logged = [json.loads(x)["uri"] for x in parity.read_text().splitlines()]
        assert logged == ["/callback?src=vendor"]
    finally:
        nginx.stop()


def test_requests_rewritten_into_an_exact_location_are_not_copied(
    tmp_path: Path,
    nginx_bin: str,
    app: RecordingServer,
    stage: RecordingServer,
    dns: DnsServer,
    ca_file: Path,
    port: int,
) -> None:
    rewrite = (
        "location ~ ^/[^/]+/callback$ { rewrite ^ /callback last; }\n        location = /callback {"
    )
    _planned_with(tmp_path, rewrite, stage, dns, ca_file, nginx_bin)
    nginx = _start_nginx(nginx_bin, tmp_path, port)
    try:
        assert _post_to(port, "/tenant1/callback") == 200
        assert _post_to(port, "/callback?src=vendor") == 200
        wait_until(lambda: len(stage.received) >= 1, "the callback's copy at the stage")
        assert [r.path for r in app.received] == ["/callback", "/callback?src=vendor"]
        assert [r.path for r in stage.received] == ["/prod/callback?src=vendor"]
    finally:
        nginx.stop()


def test_every_copy_arrives_intact_with_the_stages_host_and_sni_and_no_credentials(
    live: Live,
) -> None:
    """Body bytes, method, path and query as the vendor sent them; the stage's own Host and
    SNI; the vendor's credentials left out, its signature header kept."""
    sent = {
        "/callback?src=vendor&q=%ED%95%9C+x": SAMPLE,
        "/callback": bytes(range(256)) * 4,
        "/callback?empty=1": b"",
        "/callback?big=1": b"A" * 100_000,
    }
    nginx = live.start(live.options())
    try:
        conn = http.client.HTTPConnection(LOOPBACK, live.port, timeout=10)
        for path, body in sent.items():
            conn.request(
                "POST",
                path,
                body=body,
                headers={
                    "Host": "hooks.test",
                    "Authorization": "Bearer vendor-secret",
                    "Cookie": "session=s3cr3t",
                    "Proxy-Authorization": "Basic cHJveHk=",
                    "X-Signature": "sig-123",
                },
            )
            response = conn.getresponse()
            response.read()
            assert response.status == 200
        wait_until(lambda: len(live.stage.received) >= len(sent), "every copy at the stage")
    finally:
        nginx.stop()
    by_id = {r.headers["x-request-id"]: r for r in live.app.received}
    assert len(live.stage.received) == len(sent)
    for copy in live.stage.received:
        original = by_id[copy.headers["x-request-id"]]
        assert copy.method == original.method == "POST"
        assert copy.path == "/prod" + original.path
        assert copy.body == original.body == sent[original.path]
        assert copy.headers["host"] == STAGE_HOST
        assert copy.headers["x-signature"] == "sig-123"
        for name in ("authorization", "cookie", "proxy-authorization"):
            assert name not in copy.headers, name
            assert name in original.headers, "the app still gets it"
    assert set(live.stage.sni) == {STAGE_HOST}


def test_the_relay_is_private_to_nginx_and_takes_only_the_callback_post(
    live: Live,
) -> None:
    """nginx makes every unix socket 0666, so the relay's socket lives in a directory nginx
    creates for its worker user only; and whoever reaches it can send only the callback."""
    relay = live.prefix / "hookshift" / "relay.sock"
    nginx = live.start(live.options(relay_socket=str(relay)))
    try:
        wait_until(relay.exists, "the relay socket")
        assert relay.stat().st_mode & 0o777 == 0o666
        directory = relay.parent.stat()
        assert directory.st_mode & 0o777 == 0o700
        assert directory.st_uid == os.getuid()  # the worker user of this config (`user root`)

        def ask(method: str, path: str) -> int:
            conn = _UnixConnection(str(relay))
            conn.request(method, path, body=b"x" if method != "GET" else None)
            response = conn.getresponse()
            response.read()
            conn.close()
            return response.status

        assert ask("POST", "/other") == 404
        assert ask("POST", "/callback/more") == 404
        assert ask("GET", "/callback") == 403
        assert ask("PUT", "/callback") == 403
        assert ask("POST", "/__hookshift_stage") == 404
        assert ask("POST", "/callback?from=relay") == 204
        wait_until(lambda: len(live.stage.received) >= 1, "the callback's copy")
    finally:
        nginx.stop()
    assert [r.path for r in live.stage.received] == ["/prod/callback?from=relay"]


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=5)
        self.unix_path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(5)
        self.sock.connect(self.unix_path)


def test_a_dns_change_of_the_stage_is_followed_without_a_reload(
    tmp_path: Path,
    any_nginx: Nginx,
    app: RecordingServer,
    ca: trustme.CA,
    ca_file: Path,
    port: int,
) -> None:
    """Run-time DNS (a stage hop on nginx < 1.27.3, ``resolve`` in the upstream from 1.27.3):
    when the stage's name moves to another address and the old one stops serving, copies
    follow the name while nginx runs. Before 1.27.3 the relay keeps connections to the address
    known when planning and goes by the name once that address fails."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert(STAGE_HOST).configure_cert(ctx)
    first = RecordingServer(tls=ctx, payload=b"").start()
    second = RecordingServer(tls=ctx, payload=b"", host="127.0.0.2", port=first.port).start()
    try:
        with DnsServer([f"{STAGE_HOST}=127.0.0.1"], ttl=1) as dns:
            options = replace(
                _options(tmp_path, first.port, dns, ca_file), tuning=Tuning(resolver_valid="1s")
            )
            nginx = _apply_and_start(tmp_path, any_nginx, options, port)
            try:
                conn = http.client.HTTPConnection(LOOPBACK, port, timeout=10)

                def reaches(server: RecordingServer) -> bool:
                    assert _post(port, SAMPLE, conn) == 200
                    return bool(server.received)

                wait_until(lambda: reaches(first), "a copy at the first address")
                dns.set_records([f"{STAGE_HOST}=127.0.0.2"])
                first.stop()
                wait_until(lambda: reaches(second), "a copy at the new address", timeout=20)
                bodies = {SAMPLE + str(i).encode() for i in range(5)}
                assert [_post(port, body, conn) for body in sorted(bodies)] == [200] * 5
                wait_until(
                    lambda: bodies <= {r.body for r in second.received},
                    "every next copy, intact, at the new address",
                )
                assert nginx.popen is not None and nginx.popen.poll() is None, "no restart"
            finally:
                nginx.stop()
    finally:
        first.stop()
        second.stop()


def test_a_hanging_stage_under_many_clients_refuses_none_and_caps_the_copies(
    live: Live,
) -> None:
    """worker_connections 768 and a stage that never answers: the relay holds at most its cap
    of copies and answers the rest at once, so no vendor connection is refused or reset."""
    conf = live.prefix / "nginx.conf"
    conf.write_text(conf.read_text().replace("worker_connections 64;", "worker_connections 768;"))
    live.stage.hanging.set()
    options = live.options(timeout=10.0)
    cap = int(
        next(
            line.split()[2].rstrip(";")
            for line in make_plan(options, live.nginx[1]).changes[0].new_text.splitlines()
            if "limit_conn hookshift_copies" in line
        )
    )
    clients = 2 * cap + 64
    nginx = live.start(options)
    try:

        def callback(i: int) -> int:
            conn = http.client.HTTPConnection(LOOPBACK, live.port, timeout=30)
            conn.request(
                "POST",
                "/callback",
                body=SAMPLE + str(i).encode(),
                headers={"Host": "hooks.test", "Connection": "close"},
            )
            response = conn.getresponse()
            response.read()
            conn.close()
            return response.status

        with ThreadPoolExecutor(max_workers=64) as pool:
            statuses = list(pool.map(callback, range(clients)))
        assert statuses == [200] * clients
        wait_until(lambda: live.stage.held >= cap, "the copies the relay lets through")
        relay_log = live.prefix / "hookshift-mirror.error.log"
        wait_until(lambda: "limiting connections" in relay_log.read_text(), "dropped copies")
        assert live.stage.held == cap, "copies in flight stay at the relay's cap"
    finally:
        nginx.stop()
    assert len(live.app.received) == clients


@pytest.mark.parametrize("stage_dns", ["runtime", "reload"])
def test_a_stage_answering_500_with_a_body_gets_a_probe_per_fail_timeout(
    stage_dns: str,
    tmp_path: Path,
    any_nginx: Nginx,
    app: RecordingServer,
    ca: trustme.CA,
    ca_file: Path,
    port: int,
) -> None:
    """A 5xx counts as a failed copy: the breaker opens on the first one, the copies after it
    go to the backup and fail at once (a 500 with a body would otherwise cost a new connection
    per copy), and after fail_timeout one copy probes the stage again. Through the stage hop
    (runtime DNS on nginx < 1.27.3) the stage's status passes through the hop."""
    if stage_dns == "reload" and any_nginx[1] >= RESOLVE_IN_UPSTREAM:
        pytest.skip("--stage-dns changes only the layout of nginx before 1.27.3")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("localhost").configure_cert(ctx)
    failing = RecordingServer(tls=ctx, payload=b'{"message": "Internal server error"}', status=500)
    failing.start()
    try:
        with DnsServer(["localhost=127.0.0.1"]) as dns:
            options = replace(
                _options(tmp_path, failing.port, dns, ca_file),
                stage_url=f"https://localhost:{failing.port}/prod",
                stage_dns=stage_dns,  # type: ignore[arg-type]
                tuning=Tuning(fail_timeout="3s"),
            )
            nginx = _apply_and_start(tmp_path, any_nginx, options, port)
            try:
                conn = http.client.HTTPConnection(LOOPBACK, port, timeout=10)
                assert _post(port, SAMPLE, conn) == 200
                wait_until(lambda: len(failing.received) == 1, "the first copy at the stage")
                errors = tmp_path / "hookshift-mirror.error.log"
                wait_until(lambda: _relay_breaker_open(errors), "the breaker to open on the 500")
                callbacks = [SAMPLE + str(i).encode() for i in range(10)]
                assert [_post(port, body, conn) for body in callbacks] == [200] * 10
                # the copies went to the backup; at most one more probe if fail_timeout passed
                assert len(failing.received) <= 2, "the open breaker keeps the stage out"

                def probed() -> bool:
                    assert _post(port, SAMPLE + b"probe", conn) == 200
                    return any(r.body == SAMPLE + b"probe" for r in failing.received)

                wait_until(probed, "a probe copy after fail_timeout", timeout=15)
            finally:
                nginx.stop()
        assert len(app.received) >= 12, "every callback reached the app"
        assert "hookshift-mirror" not in (tmp_path / "error.log").read_text()
    finally:
        failing.stop()


def test_a_percent_escaped_callback_path_is_copied_through_every_hop(live: Live) -> None:
    """nginx selects locations by the decoded path: the vendor's `/callback/%EC%95%8C...`
    reaches `location = "/callback/알림"`, and so must the copy at each of the relay's hops."""
    config = live.prefix / "nginx.conf"
    escaped = "/callback/%EC%95%8C%EB%A6%BC"
    config.write_text(
        config.read_text().replace(
            "location = /callback {",
            'location / { return 404; }\n        location = "/callback/알림" {',
        )
    )
    plan = make_plan(live.options(path=escaped), live.nginx[1])
    assert plan.location.description == "location = /callback/알림"
    apply_plan(plan, nginx_bin=live.nginx[0], backup_dir=live.prefix / "bk", prefix=live.prefix)
    nginx = _start_nginx(live.nginx[0], live.prefix, live.port)
    try:
        assert _post_to(live.port, f"{escaped}?src=vendor") == 200
        assert _post_to(live.port, "/callback/other") == 404
        wait_until(lambda: len(live.stage.received) >= 1, "the callback's copy at the stage")
        assert [r.path for r in live.stage.received] == [f"/prod{escaped}?src=vendor"]
        assert [r.path for r in live.app.received] == [f"{escaped}?src=vendor"]
    finally:
        nginx.stop()
