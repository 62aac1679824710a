"""How long ``mirror plan`` takes on a big config, beside ``crossplane.parse`` of the same files.

A generated config (a main ``nginx.conf`` whose ``http {}`` includes ``sites/*.conf``, ten
servers per file, each server with a few locations, one of them the callback server) is read
by ``crossplane.parse`` and planned by `mirror.plan.make_plan`, alternately, several rounds.
The machine is shared, so each round's ratio compares two runs taken seconds apart; the best
of the rounds and the median are reported, for 10,000 and 50,000 servers (is it linear?).

``python -m bench bench.plan_speed`` writes the ``plan-speed`` section of bench/RESULTS.md;
``python -m bench.plan_speed --servers 2000 --rounds 1`` prints a quick figure only.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import crossplane  # type: ignore[import-untyped]

from bench.results import machine_line, write_section
from hookshift.mirror.plan import MirrorOptions, make_plan
from hookshift.nginx.config import paused_gc

SIZES = (10_000, 50_000)
ROUNDS = 3
SERVERS_PER_FILE = 10
CALLBACK_PATH = "/bizppurio/callback"
CALLBACK_HOST = "hooks.example.com"
STAGE_URL = "https://abc123.execute-api.ap-northeast-2.amazonaws.com/prod"
NGINX_VERSION = (1, 22, 1)
MAIN = """\
user www-data;
worker_processes auto;
events {
    worker_connections 768;
}
http {
    sendfile on;
    include mime.types;
    default_type application/octet-stream;
    access_log logs/access.log;
    # every site, ten servers to a file
    include sites/*.conf;
}
"""
SERVER = """\
server {{
    listen 80;
    listen [::]:80;
    server_name {name};
    location / {{
        try_files $uri $uri/ =404;
    }}
    location /api/ {{ proxy_pass http://127.0.0.1:{port}; }}
    location ~ \\.php$ {{
        fastcgi_pass unix:/run/php/php-fpm.sock;
    }}
    location {path} {{
        proxy_pass http://127.0.0.1:{port};
    }}
}}
"""


def generate(servers: int, root: Path) -> Path:
    """Write a config with `servers` servers under `root`; its main file.

    The callback server sits in the middle, so neither the first nor the last file is special.
    """
    sites = root / "sites"
    sites.mkdir(parents=True, exist_ok=True)
    (root / "logs").mkdir(exist_ok=True)
    (root / "mime.types").write_text("types {\n    text/html html;\n}\n")
    (root / "nginx.conf").write_text(MAIN)
    callback = servers // 2
    for first in range(0, servers, SERVERS_PER_FILE):
        parts = []
        for i in range(first, min(first + SERVERS_PER_FILE, servers)):
            is_callback = i == callback
            parts.append(
                SERVER.format(
                    name=CALLBACK_HOST if is_callback else f"s{i:05d}.example.com",
                    port=9000 + i % 1000,
                    path=CALLBACK_PATH if is_callback else f"/static{i}/",
                )
            )
        (sites / f"site{first // SERVERS_PER_FILE:05d}.conf").write_text("".join(parts))
    return root / "nginx.conf"


def options(main: Path) -> MirrorOptions:
    return MirrorOptions(
        config=main,
        path=CALLBACK_PATH,
        stage_url=STAGE_URL,
        server_name=CALLBACK_HOST,
        listen="80",
        parity_log=main.parent / "logs" / "parity.log",
    )


def parse(main: Path) -> None:
    crossplane.parse(str(main), comments=True, check_ctx=False, check_args=False)


def parse_paused_gc(main: Path) -> None:
    """crossplane.parse as the plan runs it: with the cyclic garbage collector paused."""
    with paused_gc():
        parse(main)


def plan(main: Path) -> None:
    make_plan(options(main), NGINX_VERSION)


def _seconds(fn: Callable[[Path], None], main: Path) -> float:
    """CPU seconds of this process: other engineers' load on the machine does not count."""
    t = time.process_time()
    fn(main)
    return time.process_time() - t


@dataclass(frozen=True)
class Result:
    servers: int
    megabytes: float
    files: int
    parse: list[float]
    plan: list[float]
    parse_paused: list[float]

    @property
    def ratios(self) -> list[float]:
        return [p / c for p, c in zip(self.plan, self.parse, strict=True)]

    @property
    def best_ratio(self) -> float:
        return min(self.plan) / min(self.parse)

    @property
    def median_ratio(self) -> float:
        return statistics.median(self.plan) / statistics.median(self.parse)

    @property
    def paused_ratio(self) -> float:
        return min(self.plan) / min(self.parse_paused)


def measure(servers: int, rounds: int) -> Result:
    with tempfile.TemporaryDirectory(prefix="hookshift-bench-plan-") as tmp:
        main = generate(servers, Path(tmp))
        files = list((main.parent / "sites").iterdir())
        size = sum(p.stat().st_size for p in files) + main.stat().st_size
        plan(main)  # warm the page cache and imports; the plan must also succeed
        parse_s: list[float] = []
        plan_s: list[float] = []
        paused_s: list[float] = []
        for i in range(rounds):
            # alternate which goes first, so neither always runs on a warmer machine
            order = [(parse, parse_s), (plan, plan_s), (parse_paused_gc, paused_s)]
            for fn, out in order if i % 2 == 0 else reversed(order):
                out.append(_seconds(fn, main))
            print(
                f"bench.plan_speed: {servers:,} servers round {i + 1}: crossplane.parse "
                f"{parse_s[-1]:.2f} s, plan {plan_s[-1]:.2f} s, "
                f"crossplane.parse with gc paused {paused_s[-1]:.2f} s",
                file=sys.stderr,
            )
        return Result(servers, size / 1e6, len(files) + 1, parse_s, plan_s, paused_s)


def markdown(results: list[Result]) -> str:
    lines = [
        "## Plan speed: `mirror plan` beside `crossplane.parse`",
        "",
        machine_line(),
        "",
        "A generated config: `nginx.conf` with `http { include sites/*.conf; }`, ten servers to",
        "a file, four locations per server, the callback server in the middle. `mirror plan`",
        "(the Python API, `make_plan`) and `crossplane.parse` of the same files run alternately",
        "in one process; figures are CPU seconds of the process (the machine is shared), best",
        "of the rounds (median in brackets). The plan parses with crossplane itself, with the",
        "cyclic garbage collector paused while it builds its tree; the last columns compare",
        "it with `crossplane.parse` run that way too, which isolates hookshift's own work.",
        "",
        "| servers | size | files | crossplane.parse s | plan s | plan / parse best | median |"
        " rounds | crossplane.parse, gc paused s | plan / that |",
        "|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.servers:,} | {r.megabytes:.1f} MB | {r.files:,} "
            f"| {min(r.parse):.2f} ({statistics.median(r.parse):.2f}) "
            f"| {min(r.plan):.2f} ({statistics.median(r.plan):.2f}) "
            f"| {r.best_ratio:.2f}x | {r.median_ratio:.2f}x "
            f"| {', '.join(f'{x:.2f}' for x in r.ratios)} "
            f"| {min(r.parse_paused):.2f} | {r.paused_ratio:.2f}x |"
        )
    if len(results) >= 2:
        small, big = results[0], results[-1]
        growth = min(big.plan) / min(small.plan)
        size = big.servers / small.servers
        lines += [
            "",
            f"From {small.servers:,} to {big.servers:,} servers ({size:.0f}x) the plan takes "
            f"{growth:.1f}x as long (crossplane.parse {min(big.parse) / min(small.parse):.1f}x).",
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--servers", type=int, action="append", help="config size(s)")
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    args = parser.parse_args(argv or [])
    sizes = tuple(args.servers) if args.servers else SIZES
    results = [measure(n, args.rounds) for n in sizes]
    text = markdown(results)
    if sizes == SIZES:
        write_section("plan-speed", text)
        print("bench.plan_speed: written to bench/RESULTS.md", file=sys.stderr)
    else:
        print(text)


if __name__ == "__main__":
    main(sys.argv[1:])
