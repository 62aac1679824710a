"""Server choice agrees with the real nginx on generated configs: exact, wildcard (``*.x``,
``x.*``, ``.x``), regular-expression and empty names, ``default_server``, names that conflict
between servers, two listening sockets, and Host headers in other case, with a port or a
trailing dot. Every server answers with its own line; nginx's answer must come from the server
`nginx.matching.match` chooses."""

from __future__ import annotations

import http.client
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from hookshift.errors import InputError
from hookshift.nginx.matching import match
from hookshift.nginx.source import load_source
from hookshift.procs import LOOPBACK, free_port
from tests.mirror.test_functional import Nginx
from tests.mirror.test_functional import any_nginx as any_nginx  # both binaries, as there
from tests.nginx.oracle import serve

pytestmark = pytest.mark.e2e  # starts nginx
CONFIGS = 12
SERVERS_PER_CONFIG = 8
HOSTS = (
    "example.com",
    "a.example.com",
    "www.example.com",
    "b.a.example.com",
    "www.example.net",
    "api7.example.net",
    "example.net",
    "unknown.org",
    "A.Example.COM",
    "a.example.com.",
    "www.example.com:8080",
)
NAMES = (
    "example.com",
    "a.example.com",
    "*.example.com",
    ".example.com",
    "www.example.*",
    "~^api\\d+\\.example\\.net$",
    "~^(?<sub>[^.]+)\\.example\\.com$",
    "~(?i)^WWW\\.",
    '""',
    "example.net",
    "*.a.example.com",
    "www.*",
    "~^a\\D",
)


def _server(
    rng: random.Random, n: int, ports: tuple[int, int], defaults: dict[int, int]
) -> list[str]:
    listens = rng.choice(((ports[0],), (ports[1],), ports))
    lines = [f"server {{ # s{n}"]
    for port in listens:
        default = " default_server" if defaults.get(port) == n else ""
        lines.append(f"    listen {LOOPBACK}:{port}{default};")
    names = rng.sample(NAMES, rng.randint(0, 2))
    if names:
        lines.append(f"    server_name {' '.join(names)};")
    lines += ["    location / {", '        return 200 "L?";', "    }", "}"]
    return lines


@pytest.fixture
def generated(any_nginx: Nginx, tmp_path: Path) -> Iterator[tuple[Path, tuple[int, ...]]]:
    """CONFIGS configs side by side would need as many nginx; one config holds them all by
    giving each its own two ports."""
    nginx_bin, _ = any_nginx
    rng = random.Random(20261206)
    lines: list[str] = []
    all_ports: list[int] = []
    for _ in range(CONFIGS):
        ports = (free_port(), free_port())
        all_ports += ports
        defaults = {p: rng.randrange(SERVERS_PER_CONFIG) for p in ports if rng.random() < 0.5}
        for n in range(SERVERS_PER_CONFIG):
            lines += _server(rng, n, ports, defaults)
    yield from _with_ports(serve(nginx_bin, tmp_path, all_ports[-1], lines), all_ports)


def _with_ports(
    served: Iterator[tuple[Path, int]], ports: list[int]
) -> Iterator[tuple[Path, tuple[int, ...]]]:
    for config, _ in served:
        yield config, tuple(ports)


def _answered(port: int, host: str) -> str:
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=5)
    conn.request("POST", "/cb", body=b"{}", headers={"Host": host})
    return conn.getresponse().read().decode(errors="replace")


def test_generated_servers_are_chosen_as_nginx_chooses(
    generated: tuple[Path, tuple[int, ...]],
) -> None:
    config_path, ports = generated
    config = load_source(config_path).config
    mismatches = []
    chosen_lines = set()
    for port in ports:
        for host in HOSTS:
            try:
                chosen = match(config, "/cb", host=host, listen=f"{LOOPBACK}:{port}", for_app=False)
                said = f"L{chosen.location.line + 1}"  # its answer is the line after it
                chosen_lines.add(said)
            except InputError as exc:
                said = f"refused: {exc}"
            got = _answered(port, host)
            if got != said:
                mismatches.append((port, host, said, got))
    assert mismatches == [], mismatches[:10]
    assert len(chosen_lines) > CONFIGS * 2  # many servers are chosen, not one per socket
