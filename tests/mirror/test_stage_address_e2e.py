"""nginx 1.22's default (run-time DNS): the relay keeps connections to the stage's address as
the resolver gave it when planning, planning again keeps that address, and `hookshift mirror
refresh` rewrites it (safely, with a reload) once the name has moved.

Everything goes through the Python API a user calls, against the real nginx and a DNS server
on loopback that the config names as its resolver.
"""

from __future__ import annotations

import http.client
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from hookshift import mirror
from hookshift.mirror.refresh import refresh
from hookshift.procs import LOOPBACK, free_port, wait_until
from hookshift.rehearsal.dns import DnsServer
from tests.mirror.servers import RecordingServer
from tests.mirror.test_functional import BASE, SAMPLE, STAGE_HOST, _post, _start_nginx

pytestmark = pytest.mark.e2e  # every test here starts a process


@pytest.fixture
def stages(ca: trustme.CA) -> Iterator[tuple[RecordingServer, RecordingServer]]:
    """The stage at 127.0.0.1 and, on the same port, where its name moves: 127.0.0.2. Both
    answer with an empty body, as API Gateway's integration does."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert(STAGE_HOST).configure_cert(ctx)
    first = RecordingServer(tls=ctx, payload=b"").start()
    second = RecordingServer(tls=ctx, payload=b"", host="127.0.0.2", port=first.port).start()
    yield first, second
    first.stop()
    second.stop()


def test_the_default_keeps_the_planned_address_until_refresh_moves_it(
    tmp_path: Path,
    nginx_bin: str,
    stages: tuple[RecordingServer, RecordingServer],
    ca_file: Path,
) -> None:
    first, second = stages
    app = RecordingServer().start()
    try:
        port = free_port()
        config = tmp_path / "nginx.conf"
        config.write_text(BASE.format(p=tmp_path, port=port, app=app.port))
        original = config.read_bytes()
        with DnsServer([f"{STAGE_HOST}=127.0.0.1"], ttl=1) as dns:
            request = mirror.MirrorRequest(
                path="/callback",
                stage_url=f"https://{STAGE_HOST}:{first.port}/prod",
                config=config,
                resolvers=(dns.address,),
                parity_log=tmp_path / "parity.log",
                trusted_ca=ca_file,
                relay_socket=str(tmp_path / "relay.sock"),
                timeout=1.0,
                nginx_bin=nginx_bin,
            )
            applied = mirror.apply(request, backup_dir=tmp_path / "bk", prefix=tmp_path)
            assert applied.planned.plan.stage_addresses == ("127.0.0.1",)
            assert applied.planned.to_json()["keepalive_to_stage"] is True
            nginx = _start_nginx(nginx_bin, tmp_path, port)
            try:
                asked = len(dns.queries)
                conn = http.client.HTTPConnection(LOOPBACK, port, timeout=10)
                bodies = [SAMPLE + str(i).encode() for i in range(8)]
                assert [_post(port, body, conn) for body in bodies] == [200] * 8
                wait_until(lambda: len(first.received) == 8, "every copy at the stage")
                assert sorted(r.body for r in first.received) == sorted(bodies)
                assert first.connections < 8, "copies share kept-alive connections"
                assert len(dns.queries) == asked, "no DNS per copy while the address serves"

                dns.set_records([f"{STAGE_HOST}=127.0.0.2"])
                assert mirror.plan(request).already_applied, "planning again keeps the address"

                done = refresh(config, nginx_bin=nginx_bin, prefix=tmp_path)
                assert done.action == "rewritten" and done.kept == "127.0.0.2"
                assert "now go to 127.0.0.2" in done.describe()
                assert f"server 127.0.0.2:{first.port} " in config.read_text()

                # the old address still serves: only the rewrite can send copies to the new
                # one (a new connection per callback: the reload closed the idle ones)
                def moved() -> bool:
                    assert _post(port, SAMPLE + b"moved") == 200
                    return any(r.body == SAMPLE + b"moved" for r in second.received)

                wait_until(moved, "a copy at the rewritten address")
                again = refresh(config, nginx_bin=nginx_bin, prefix=tmp_path)
                assert again.action == "current", again.describe()
                assert mirror.plan(request).already_applied
            finally:
                nginx.stop()
        mirror.remove(config, nginx_bin=nginx_bin, backup_dir=tmp_path / "bk", prefix=tmp_path)
        assert config.read_bytes() == original, "remove gives back the original bytes"
    finally:
        app.stop()
