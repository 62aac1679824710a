"""A cut-over of an nginx started with ``-p PREFIX`` (GitLab Omnibus, a source build), whose
config names its logs, pid file and temp directories relative to that prefix: every nginx -t
and reload of a stage runs with the prefix recorded at init, on the real, running nginx."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme

from hookshift.errors import OperationError
from hookshift.procs import LOOPBACK, ManagedProcess, free_port, wait_for_port
from tests.cutover.helpers import STAGE_URL, Cutover, force, run

pytestmark = pytest.mark.e2e  # a real nginx runs

MAIN = """\
{user}worker_processes 1;
error_log logs/error.log;
pid logs/nginx.pid;

events {{
    worker_connections 64;
}}

http {{
    access_log logs/access.log;
    client_body_temp_path tmp/client_body;
    proxy_temp_path tmp/proxy;
    fastcgi_temp_path tmp/fastcgi;
    uwsgi_temp_path tmp/uwsgi;
    scgi_temp_path tmp/scgi;
    include conf.d/*.conf;
}}
"""

SITE = """\
server {{
    listen {address}:{port};
    location /callback {{
        proxy_pass http://{address}:{app_port};
    }}
}}
"""


@dataclass(frozen=True)
class Prefixed:
    """nginx's prefix as a source build lays it out (conf/, logs/, tmp/) and its port."""

    root: Path
    port: int

    @property
    def main(self) -> Path:
        return self.root / "conf" / "nginx.conf"

    @property
    def site(self) -> Path:
        return self.root / "conf" / "conf.d" / "callbacks.conf"

    @property
    def relay(self) -> Path:
        return self.root / "relay.sock"


@pytest.fixture
def prefix(tmp_path: Path) -> Prefixed:
    bed = Prefixed(tmp_path / "nginx", free_port())
    for sub in ("conf/conf.d", "logs", "tmp"):
        (bed.root / sub).mkdir(parents=True)
    # as root, workers would run as "nobody" and could not enter pytest's 0700 directories
    user = "user root;\n" if os.geteuid() == 0 else ""
    bed.main.write_text(MAIN.format(user=user), encoding="utf-8")
    site = SITE.format(address=LOOPBACK, port=bed.port, app_port=free_port())
    bed.site.write_text(site, encoding="utf-8")
    return bed


@pytest.fixture
def running(prefix: Prefixed, nginx_bin: str) -> Iterator[ManagedProcess]:
    """The nginx master started with ``-p``, in the foreground, stopped by pid."""
    nginx = ManagedProcess(
        name="nginx",
        argv=[nginx_bin, "-p", f"{prefix.root}/", "-c", str(prefix.main), "-g", "daemon off;"],
        log_path=prefix.root / "nginx.stderr.log",
    )
    nginx.start(ready=lambda: wait_for_port(prefix.port, timeout=15))
    try:
        yield nginx
    finally:
        nginx.stop()


def _init(tmp_path: Path, prefix: Prefixed, nginx_bin: str, *more: str) -> Cutover:
    ca = tmp_path / "ca.pem"
    trustme.CA().cert_pem.write_to_path(str(ca))
    state = tmp_path / "cutover.jsonl"
    done = run(
        "cutover", "init", "--state", str(state), "--config", str(prefix.main),
        "--path", "/callback", "--stage-url", STAGE_URL, "--nginx-bin", nginx_bin,
        "--ca-file", str(ca), "--resolver", f"{LOOPBACK}:{free_port()}",
        "--stage-dns", "runtime",  # the stage's name resolves nowhere (nginx -t must pass)
        "--relay-socket", str(prefix.relay), "--backup-dir", str(tmp_path / "backup"),
        "--parity-log", str(prefix.root / "logs" / "parity.log"), *more,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return Cutover(state, prefix.main, prefix.site, nginx_bin)


def test_each_stage_is_tested_and_reloaded_under_the_prefix_recorded_at_init(
    tmp_path: Path, prefix: Prefixed, nginx_bin: str, running: ManagedProcess
) -> None:
    cut = _init(tmp_path, prefix, nginx_bin, "--nginx-prefix", str(prefix.root))
    original = cut.files()
    status = json.loads(run("cutover", "status", "--state", str(cut.state),
                            "--format", "json").stdout)  # fmt: skip
    assert status["settings"]["nginx_prefix"] == str(prefix.root)

    # nginx -t -p passes, and the reload reaches the master through logs/nginx.pid under the
    # prefix: the running nginx opens the relay's socket that the mirror stage adds
    force(cut, "mirror-stage", reload=True)
    assert prefix.relay.is_socket()
    assert cut.files() != original

    back = run("cutover", "rollback", "--state", str(cut.state), "--reload")
    assert back.returncode == 0, back.stderr
    assert "nginx files are byte-identical to baseline" in back.stdout
    assert cut.files() == original
    assert not prefix.relay.exists()  # the running nginx dropped the mirror's relay
    assert running.running()


def test_without_the_prefix_the_same_nginx_cannot_be_changed(
    tmp_path: Path, prefix: Prefixed, nginx_bin: str, running: ManagedProcess
) -> None:
    cut = _init(tmp_path, prefix, nginx_bin)
    original = cut.files()
    with pytest.raises(OperationError, match="nginx -t fails on the original config"):
        force(cut, "mirror-stage", reload=True)
    assert cut.files() == original
    assert not prefix.relay.exists()


def test_rollback_takes_the_prefix_as_an_override_as_advance_does(
    tmp_path: Path, prefix: Prefixed, nginx_bin: str, running: ManagedProcess
) -> None:
    """A journal started without --nginx-prefix (the operator learned of nginx's -p later, and
    advanced with the option): the rollback needs the same override to test and reload."""
    from hookshift.cutover import journal, nginx_ops

    cut = _init(tmp_path, prefix, nginx_bin)
    original = cut.files()
    current = journal.read(cut.state)
    settings = cut.settings().override(nginx_prefix=str(prefix.root))
    moved = nginx_ops.realize(cut.state, settings, "baseline", "mirror-stage", reload=True)
    journal.append(current, journal.next_entry(current, action="advance",
                                               to_stage="mirror-stage", files=moved))  # fmt: skip
    assert prefix.relay.is_socket()
    journal_before = cut.state.read_bytes()
    mirrored = cut.files()

    for bad, says in (("", "is empty"), (str(tmp_path / "nowhere"), "no such directory")):
        refused = run("cutover", "rollback", "--state", str(cut.state), "--nginx-prefix", bad)
        assert refused.returncode == 2, refused.stderr
        assert says in refused.stderr and "--nginx-prefix" in refused.stderr, refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
        assert cut.files() == mirrored and cut.state.read_bytes() == journal_before

    back = run("cutover", "rollback", "--state", str(cut.state), "--reload",
               "--nginx-prefix", str(prefix.root))  # fmt: skip
    assert back.returncode == 0, back.stderr
    assert "nginx files are byte-identical to baseline" in back.stdout
    assert cut.files() == original
    assert not prefix.relay.exists()  # the running nginx (found through the prefix) reloaded
    assert running.running()
