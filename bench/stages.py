"""The stage behaviours the isolation benchmark mirrors to, and the 2 ms app behind nginx.

Every part listens on 127.0.0.1 only:

- a *backend* nginx (its own process, Debian's echo module) that plays the app (reads the body,
  waits 2 ms, answers 200) and four TLS stages that stand in for API Gateway: *healthy*
  (answers at once), *healthy, 50 ms away* (answers after 50 ms, as a regional API Gateway
  does), *5xx* (answers 500 at once) and *slow* (answers after 3 s). The 200s have an empty
  body, as hookshift's API Gateway integration response gives (the seed's "empty response"):
  that matters, because nginx keeps a connection from a mirror only when the answer has no
  body. nginx plays them rather than Python because the healthy stage and the app see
  thousands of requests a second, and a Python server would make the benchmark measure Python;
- a *blackhole* stage: a process that accepts TCP connections and never reads or answers (the
  TLS handshake never completes, as with a hung load balancer);
- a *refused* stage: a loopback port nobody listens on (connect fails at once: RST);
- two DNS servers (``rehearsal.dns``): one that resolves the stage host to 127.0.0.1 and one in
  blackhole mode that never answers (the seed's ``could not be resolved (110: Operation timed
  out)``).

The TLS stages use a certificate for the stage host name issued by a throw-away CA (trustme), so
the mirror verifies the chain and sends SNI exactly as it must against the real API Gateway.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import trustme

from hookshift.procs import LOOPBACK, ManagedProcess, free_port, wait_for_port
from hookshift.rehearsal.dns import DnsServer

STAGE_HOST = "abc123def4.execute-api.ap-northeast-2.amazonaws.com"
STAGE_PATH = "/dev"
APP_DELAY_S = 0.002
SLOW_STAGE_S = 3
NEAR_STAGE_S = 0.05  # a healthy API Gateway in the same region answers in tens of ms
ECHO_MODULE = Path("/usr/lib/nginx/modules/ngx_http_echo_module.so")
TEMP_DIRS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")

BEHAVIOURS = ("healthy", "healthy_50ms", "slow_3s", "blackhole", "refused", "5xx", "dns_blackhole")
BEHAVIOUR_TITLES = {
    "healthy": "healthy (answers at once)",
    "healthy_50ms": "healthy, 50 ms away",
    "slow_3s": "answers after 3 s",
    "blackhole": "accepts, never answers",
    "refused": "refuses connections",
    "5xx": "answers 500",
    "dns_blackhole": "DNS server never answers",
}


@dataclass(frozen=True)
class StageTarget:
    """Where the mirror is pointed for one behaviour: stage port and the resolver to use."""

    behaviour: str
    host: str
    port: int
    resolver: str  # "127.0.0.1:PORT" as nginx's `resolver` takes it

    @property
    def authority(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Certs:
    """The throw-away CA (what the mirror trusts) and the stage's certificate chain and key."""

    ca: Path
    chain: Path
    key: Path


def make_certs(directory: Path, host: str = STAGE_HOST) -> Certs:
    """Issue a certificate for `host` from a new CA and write the PEM files into `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    cert = ca.issue_cert(host)
    certs = Certs(directory / "ca.pem", directory / "stage-chain.pem", directory / "stage-key.pem")
    ca.cert_pem.write_to_path(str(certs.ca))
    cert.private_key_pem.write_to_path(str(certs.key))
    with certs.chain.open("wb") as handle:
        for blob in cert.cert_chain_pems:
            handle.write(blob.bytes())
    return certs


def nginx_prefix(prefix: Path) -> str:
    """Lines every bench nginx shares: workers as this user, pid and temp paths in `prefix`."""
    for name in TEMP_DIRS:
        (prefix / "tmp" / name).mkdir(parents=True, exist_ok=True)
    user = "user root;\n" if os.geteuid() == 0 else ""
    return f"{user}pid {prefix}/nginx.pid;\nerror_log {prefix}/error.log warn;\n"


def nginx_temp_paths(prefix: Path) -> str:
    return "".join(f"    {name}_temp_path {prefix}/tmp/{name};\n" for name in TEMP_DIRS)


COUNTED = ("healthy", "healthy_50ms")  # stages that log each request they answer


def received_log(prefix: Path, behaviour: str) -> Path:
    """One line per request the stage answered (what reached it, to compare with nginx's log)."""
    return prefix / f"received-{behaviour}.log"


def render_backend_conf(
    prefix: Path, certs: Certs, *, app: int, healthy: int, near: int, five_xx: int, slow: int
) -> str:
    """The app (2 ms per callback) and the healthy, 5xx and slow TLS stages in one nginx."""
    tls = (
        f"        ssl_certificate {certs.chain};\n"
        f"        ssl_certificate_key {certs.key};\n"
        f"        server_name {STAGE_HOST};\n"
        "        location = /_empty { return 200 ''; }\n"
    )
    return (
        f"load_module {ECHO_MODULE};\n"
        f"{nginx_prefix(prefix)}"
        "worker_processes 2;\n"
        "worker_rlimit_nofile 16000;\n"
        "events { worker_connections 20000; }\n"
        "http {\n"
        "    access_log off;\n"
        "    log_format counted '.';\n"
        "    keepalive_requests 100000;\n"
        f"{nginx_temp_paths(prefix)}"
        "    server {\n"
        f"        listen {LOOPBACK}:{app};\n"
        "        location / {\n"
        "            echo_read_request_body;\n"
        f"            echo_sleep {APP_DELAY_S};\n"
        "            echo '{\"ok\":true}';\n"
        "        }\n"
        "    }\n"
        "    server {\n"
        f"        listen {LOOPBACK}:{healthy} ssl;\n"
        f"{tls}"
        f"        access_log {received_log(prefix, 'healthy')} counted;\n"
        "        location / { return 200 ''; }\n"
        "    }\n"
        "    server {\n"
        f"        listen {LOOPBACK}:{near} ssl;\n"
        f"{tls}"
        f"        access_log {received_log(prefix, 'healthy_50ms')} counted;\n"
        "        location / {\n"
        "            echo_read_request_body;\n"
        f"            echo_sleep {NEAR_STAGE_S};\n"
        "            echo_exec /_empty;\n"
        "        }\n"
        "    }\n"
        "    server {\n"
        f"        listen {LOOPBACK}:{five_xx} ssl;\n"
        f"{tls}"
        '        location / { return 500 \'{"message":"Internal server error"}\'; }\n'
        "    }\n"
        "    server {\n"
        f"        listen {LOOPBACK}:{slow} ssl;\n"
        f"{tls}"
        "        location / {\n"
        "            echo_read_request_body;\n"
        f"            echo_sleep {SLOW_STAGE_S};\n"
        "            echo_exec /_empty;\n"
        "        }\n"
        "    }\n"
        "}\n"
    )


class Stages:
    """The backend nginx, the blackhole acceptor and the DNS servers, started and stopped together.

    ``with Stages(workdir, nginx_bin) as stages: stages.target("slow_3s")``.
    """

    def __init__(self, workdir: Path, nginx_bin: str) -> None:
        self.workdir = workdir
        self.nginx_bin = nginx_bin
        self.certs = make_certs(workdir / "certs")
        self.ports = {
            name: free_port()
            for name in ("app", "healthy", "healthy_50ms", "5xx", "slow_3s", "blackhole")
        }
        self.refused_port = free_port()  # nothing ever listens here
        self.dns = DnsServer([f"{STAGE_HOST}=127.0.0.1"])
        self.dead_dns = DnsServer([f"{STAGE_HOST}=127.0.0.1"], blackhole=True)
        self._processes: list[ManagedProcess] = []

    @property
    def app_port(self) -> int:
        return self.ports["app"]

    def received(self, behaviour: str) -> int | None:
        """Requests the stage of `behaviour` has answered so far (None: not counted)."""
        if behaviour not in COUNTED:
            return None
        path = received_log(self.workdir / "backend", behaviour)
        return path.stat().st_size // 2 if path.exists() else 0

    def target(self, behaviour: str) -> StageTarget:
        """The stage address and resolver that produce `behaviour`."""
        if behaviour == "dns_blackhole":
            return StageTarget(behaviour, STAGE_HOST, self.ports["healthy"], self.dead_dns.address)
        port = self.refused_port if behaviour == "refused" else self.ports[behaviour]
        return StageTarget(behaviour, STAGE_HOST, port, self.dns.address)

    def start(self) -> Stages:
        if not ECHO_MODULE.exists():
            raise RuntimeError(
                f"{ECHO_MODULE} is missing: apt-get install libnginx-mod-http-echo "
                "(the bench's app and stages wait with echo_sleep)"
            )
        self.dns.start()
        self.dead_dns.start()
        prefix = self.workdir / "backend"
        prefix.mkdir(parents=True, exist_ok=True)
        conf = prefix / "nginx.conf"
        conf.write_text(
            render_backend_conf(
                prefix,
                self.certs,
                app=self.ports["app"],
                healthy=self.ports["healthy"],
                near=self.ports["healthy_50ms"],
                five_xx=self.ports["5xx"],
                slow=self.ports["slow_3s"],
            ),
            encoding="utf-8",
        )
        backend = ManagedProcess(
            "backend-nginx",
            [self.nginx_bin, "-g", "daemon off;", "-c", str(conf)],
            prefix / "stdout.log",
        )
        self._processes.append(backend)
        backend.start(ready=lambda: wait_for_port(self.ports["healthy"]))
        port = str(self.ports["blackhole"])
        blackhole = ManagedProcess(
            "blackhole",
            [sys.executable, "-m", "bench.stages", "blackhole", "--port", port],
            self.workdir / "blackhole.log",
            env=_child_env(),
        )
        self._processes.append(blackhole)
        blackhole.start(ready=lambda: wait_for_port(self.ports["blackhole"]))
        return self

    def pids(self) -> list[int]:
        """The stubs' processes (the backend nginx's master and workers, the blackhole), for
        the CPU they use."""
        found: list[int] = []
        for process in self._processes:
            found.append(process.pid)
            found += children(process.pid)
        return found

    def stop(self) -> None:
        for process in reversed(self._processes):
            process.stop()
        self._processes.clear()
        self.dns.stop()
        self.dead_dns.stop()

    def __enter__(self) -> Stages:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of ``/proc/PID/stat`` after the command name (None: the process is gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def children(parent: int) -> list[int]:
    """The pids of `parent`'s children (an nginx master's workers)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields is not None and int(fields[1]) == parent:
                found.append(int(entry.name))
    return found


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: Sequence[int]) -> float:
    """User and system CPU the processes have used so far (a process gone counts 0)."""
    total = 0
    for pid in pids:
        fields = _stat_fields(pid)
        if fields is not None:
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLOCK_TICKS


def _child_env() -> dict[str, str]:
    """``python -m bench.stages`` must import this tree from any working directory."""
    root = str(Path(__file__).resolve().parents[1])
    path = os.environ.get("PYTHONPATH", "")
    return {**os.environ, "PYTHONPATH": root + (os.pathsep + path if path else "")}


async def _serve_blackhole(port: int) -> None:
    """Accept every connection and hold it open without reading or writing a byte."""
    held: set[asyncio.StreamWriter] = set()

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.add(writer)
        try:
            await asyncio.Event().wait()
        finally:
            held.discard(writer)

    server = await asyncio.start_server(hold, LOOPBACK, port, backlog=4096)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with server:
        await stop.wait()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.stages")
    sub = parser.add_subparsers(dest="command", required=True)
    blackhole = sub.add_parser("blackhole", help="accept connections, never answer")
    blackhole.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    if args.command == "blackhole":
        asyncio.run(_serve_blackhole(args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
