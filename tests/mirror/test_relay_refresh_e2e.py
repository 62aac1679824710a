"""nginx 1.22 with `--stage-dns reload` (keep-alive to the stage, whose name nginx
resolves with the system resolver at start and reload only) follows a DNS change of the stage
after `hookshift mirror refresh`.

The system resolver must answer differently over time without touching the machine's
/etc/hosts: nginx and every hookshift command run in a private mount namespace (a ``sleep``
holds it) where a file of the test's own is bind-mounted over /etc/hosts. Writing that file
in place changes what getaddrinfo answers, inside the namespace only.
"""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from hookshift.procs import ManagedProcess, free_port, wait_for_port, wait_until
from tests.mirror.servers import RecordingServer
from tests.mirror.test_functional import BASE, SAMPLE, _post

pytestmark = pytest.mark.e2e  # every test here starts a process

STAGE = "stage.hookshift.test"


def _namespace_tools() -> str | None:
    """Why the test cannot run here, or None."""
    if os.geteuid() != 0:
        return "a private mount namespace (unshare -m) needs root"
    if not (shutil.which("unshare") and shutil.which("nsenter")):
        return "unshare and nsenter (util-linux) are not installed"
    return None


@pytest.fixture
def namespace(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """(pid holding a mount namespace whose /etc/hosts is `hosts`, hosts)."""
    reason = _namespace_tools()
    if reason:
        pytest.skip(reason)
    hosts = tmp_path / "hosts"
    hosts.write_text(f"127.0.0.1 localhost\n127.0.0.1 {STAGE}\n")
    script = 'mount --bind "$0" /etc/hosts && exec sleep 600'
    holder = ManagedProcess(
        name="namespace",
        argv=["unshare", "--mount", "--propagation", "private", "sh", "-c", script, str(hosts)],
        log_path=tmp_path / "namespace.out",
    )

    def mounted() -> None:
        wait_until(lambda: _inside(holder.pid, "getent", "hosts", STAGE).returncode == 0, "mount")

    holder.start(ready=mounted)
    try:
        yield holder.pid, hosts
    finally:
        holder.stop()


def _inside(pid: int, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["nsenter", "-t", str(pid), "-m", "--", *argv],
        capture_output=True,
        text=True,
        check=False,
    )


def _hookshift(pid: int, *args: str) -> subprocess.CompletedProcess[str]:
    return _inside(pid, sys.executable, "-m", "hookshift", *args)


def test_the_keep_alive_1_22_layout_follows_a_dns_change_after_mirror_refresh(
    tmp_path: Path,
    nginx_bin: str,
    namespace: tuple[int, Path],
    ca: trustme.CA,
    ca_file: Path,
) -> None:
    pid, hosts = namespace

    def tls() -> ssl.SSLContext:  # one each: a server records SNI through its context
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ca.issue_cert(STAGE).configure_cert(ctx)
        return ctx

    first = RecordingServer(tls=tls(), payload=b"").start()
    second = RecordingServer(tls=tls(), payload=b"", host="127.0.0.2", port=first.port).start()
    app = RecordingServer().start()
    port = free_port()
    conf = tmp_path / "nginx.conf"
    conf.write_text(BASE.format(p=tmp_path, port=port, app=app.port))
    nginx_args = ["--config", str(conf), "--nginx-bin", nginx_bin, "--nginx-prefix", str(tmp_path)]
    nginx: ManagedProcess | None = None
    try:
        applied = _hookshift(
            pid, "mirror", "apply", *nginx_args, "--path", "/callback",
            "--stage-url", f"https://{STAGE}:{first.port}/prod", "--trusted-ca", str(ca_file),
            "--relay-socket", str(tmp_path / "hookshift" / "relay.sock"),
            "--parity-log", str(tmp_path / "parity.log"), "--backup-dir", str(tmp_path / "bk"),
            "--no-dns-check", "--stage-dns", "reload",
        )  # fmt: skip
        assert applied.returncode == 0, applied.stderr
        assert "mirror refresh" in applied.stderr, "the plan says how to keep the stage current"
        assert f"server {STAGE}:{first.port} max_fails=1" in conf.read_text(), "keep-alive layout"
        nginx = ManagedProcess(
            name="nginx",
            argv=[
                "nsenter", "-t", str(pid), "-m", "--",
                nginx_bin, "-p", f"{tmp_path}/", "-c", str(conf), "-g", "daemon off;",
            ],
            log_path=tmp_path / "nginx.out",
        ).start(ready=lambda: wait_for_port(port))  # fmt: skip

        def reaches(server: RecordingServer, body: bytes) -> bool:
            assert _post(port, body) == 200  # a new connection: a reload closes idle ones
            return any(r.body == body for r in server.received)

        wait_until(lambda: reaches(first, SAMPLE + b"1"), "a copy at the first address")
        copy = next(r for r in first.received if r.body == SAMPLE + b"1")
        assert copy.path == "/prod/callback?src=vendor" and copy.headers["host"] == STAGE
        assert set(first.sni) == {STAGE}

        done = _hookshift(pid, "mirror", "refresh", *nginx_args)
        assert done.returncode == 0, done.stderr
        assert "nginx reloaded" in done.stderr and "not recorded yet" in done.stderr
        done = _hookshift(pid, "mirror", "refresh", *nginx_args)
        assert done.returncode == 0 and "nothing to do" in done.stderr, done.stderr

        hosts.write_text(f"127.0.0.1 localhost\n127.0.0.2 {STAGE}\n")  # in place: same inode
        # nginx keeps the address it resolved until it reloads
        wait_until(lambda: reaches(first, SAMPLE + b"2"), "a copy at the old address")
        assert not second.received
        early = _hookshift(pid, "mirror", "refresh", *nginx_args)
        assert early.returncode == 0 and "next run after" in early.stderr, early.stderr
        done = _hookshift(pid, "mirror", "refresh", *nginx_args, "--min-interval", "0")
        assert done.returncode == 0, done.stderr
        assert f"nginx reloaded: {STAGE} now resolves to 127.0.0.2 (was 127.0.0.1)" in done.stderr
        wait_until(lambda: reaches(second, SAMPLE + b"3"), "a copy at the new address")
        assert nginx.running(), "reloaded, not restarted"
    finally:
        if nginx is not None:
            nginx.stop()
        for server in (first, second, app):
            server.stop()
