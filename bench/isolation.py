"""Primary-path isolation: does a slow, dead or failing stage slow the callbacks nginx serves?

For each stage behaviour (bench/stages.py) and each mirror config (bench/isolation_configs.py:
no mirror, the seed's, hookshift's) a fresh front nginx is started and wrk (Debian's) drives the
callback location on keep-alive and on ``Connection: close`` connections. Each cell: a warm-up
(which also lets a breaker trip, as it would in the first seconds of an outage), then a short
measured run. The no-mirror baseline is measured next to each behaviour, so every ratio compares
figures taken a few seconds apart on the same machine.

``python -m bench bench.isolation`` runs the whole matrix (about 6 minutes) and writes the
``isolation`` section of bench/RESULTS.md. ``python -m bench.isolation --help`` runs a subset.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.isolation_configs import CALLBACK_PATH, VARIANTS, FrontSpec, write_front_conf
from bench.results import machine_line, write_section
from bench.stages import BEHAVIOUR_TITLES, BEHAVIOURS, Stages
from rehearsal.procs import LOOPBACK, ManagedProcess, free_port, wait_for_port

CLIENTS = ("keepalive", "close")
MATRIX_VARIANTS = ("none", "seed", "hookshift", "hookshift-keepalive", "pooled", "relay")
# Research rows (not hookshift's config) and hookshift's --stage-dns reload option are measured
# where they teach something, to keep the whole run near ten minutes: what keep-alive to the
# stage and a relay are worth (and, for the option, that the breaker still holds a dead stage).
RESEARCH_BEHAVIOURS = {
    "hookshift-keepalive": ("healthy", "healthy_50ms", "5xx", "blackhole"),
    "pooled": ("healthy", "healthy_50ms"),
    "relay": ("healthy", "healthy_50ms"),
}
CALLBACK_BODY = (
    '{"DEVICE":"AT","CMSGID":"261128091500123at0031servab12","MSGID":"1128at_KA1200000000000000001",'
    '"PHONE":"01012345678","MEDIA":"KAT","UNIXTIME":"1795852500","RESULT":"7000",'
    '"USERDATA":"order=A-1001&coupon=50%+off","WAPINFO":"KAO","REFKEY":"ord-A-1001"}'
)
WRK_SCRIPT = """\
wrk.method = "POST"
wrk.body = {body}
wrk.headers["Content-Type"] = "application/json"
{close}
done = function(summary, latency, requests)
  io.write(string.format(
    '{{"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,'
    .. '"timeout":%d,"p50_us":%d,"p99_us":%d,"max_us":%d}}\\n',
    summary.requests, summary.duration, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.status, summary.errors.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
"""


@dataclass(frozen=True)
class Settings:
    """How hard and how long wrk drives each cell."""

    connections: int = 16
    threads: int = 2
    warmup_s: int = 2
    settle_s: float = 3.0  # after the warm-up: copies in flight end, a breaker has tripped
    duration_s: int = 5
    timeout_s: int = 5
    workers: int = 2


@dataclass(frozen=True)
class Cell:
    """One front config, written and checked, ready to be measured."""

    behaviour: str
    variant: str
    client: str
    conf: Path
    port: int


@dataclass(frozen=True)
class Measurement:
    """One wrk run against one front config."""

    behaviour: str
    variant: str
    client: str
    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int  # connect/read/write errors, non-2xx answers and wrk timeouts together

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.behaviour, self.variant, self.client)


def parse_wrk(line: str, behaviour: str, variant: str, client: str) -> Measurement:
    """The JSON line our wrk script prints in ``done()`` -> a Measurement."""
    data = json.loads(line)
    seconds = max(data["duration_us"], 1) / 1e6
    errors = sum(data[k] for k in ("connect", "read", "write", "status", "timeout"))
    return Measurement(
        behaviour=behaviour,
        variant=variant,
        client=client,
        requests=data["requests"],
        rps=data["requests"] / seconds,
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        errors=errors,
    )


class Bench:
    """The stages and the wrk scripts for one run; `measure` runs one cell."""

    def __init__(self, workdir: Path, nginx_bin: str, wrk_bin: str, settings: Settings) -> None:
        self.workdir = workdir
        self.nginx_bin = nginx_bin
        self.wrk_bin = wrk_bin
        self.settings = settings
        self.stages = Stages(workdir / "stages", nginx_bin)
        self.scripts = {client: self._write_script(client) for client in CLIENTS}
        self._cells = 0

    def _write_script(self, client: str) -> Path:
        path = self.workdir / f"wrk-{client}.lua"
        close = 'wrk.headers["Connection"] = "close"' if client == "close" else ""
        path.write_text(
            WRK_SCRIPT.format(body=json.dumps(CALLBACK_BODY), close=close), encoding="utf-8"
        )
        return path

    def prepare(self, behaviour: str, variant: str, client: str) -> Cell:
        """Write and check the front config for one cell (all cells are written before any runs,
        so the configs come from one state of mirror/ even while it is being worked on)."""
        self._cells += 1
        prefix = self.workdir / f"front-{self._cells:02d}-{behaviour}-{variant}-{client}"
        prefix.mkdir(parents=True)
        spec = FrontSpec(
            prefix=prefix,
            port=free_port(),
            app_port=self.stages.app_port,
            target=self.stages.target(behaviour),
            certs=self.stages.certs,
            workers=self.settings.workers,
            parity_log=prefix / "parity.log",
        )
        conf = write_front_conf(variant, spec)
        check = subprocess.run(
            [self.nginx_bin, "-t", "-q", "-c", str(conf)], capture_output=True, text=True
        )
        if check.returncode != 0:
            raise RuntimeError(f"nginx -t failed on {conf}: {check.stderr.strip()}")
        return Cell(behaviour, variant, client, conf, spec.port)

    def measure(self, cell: Cell) -> Measurement:
        """Start the cell's front nginx, warm it up (a breaker trips here), then measure."""
        front = ManagedProcess(
            "front-nginx",
            [self.nginx_bin, "-g", "daemon off;", "-c", str(cell.conf)],
            cell.conf.parent / "stdout.log",
        )
        url = f"http://{LOOPBACK}:{cell.port}{CALLBACK_PATH}"
        with front.start(ready=lambda: wait_for_port(cell.port)):
            self._wrk(url, cell.client, self.settings.warmup_s)
            if cell.variant != "none":
                time.sleep(self.settings.settle_s)
            line = self._wrk(url, cell.client, self.settings.duration_s)
        return parse_wrk(line, cell.behaviour, cell.variant, cell.client)

    def _wrk(self, url: str, client: str, seconds: int) -> str:
        s = self.settings
        argv = [self.wrk_bin, f"-t{s.threads}", f"-c{s.connections}", f"-d{seconds}s"]
        argv += [f"--timeout={s.timeout_s}s", "-s", str(self.scripts[client]), url]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
        lines = [ln for ln in done.stdout.splitlines() if ln.startswith('{"requests"')]
        if done.returncode != 0 or not lines:
            raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip()}")
        return lines[-1]


def ratio_text(value: float, base: float) -> str:
    return f"{value / base:.2f}x" if base > 0 else "n/a"


def render_table(results: Sequence[Measurement], settings: Settings) -> str:
    """The RESULTS.md section: one row per behaviour x config x client, with ratio and p99 delta."""
    by_key = {m.key: m for m in results}
    lines = [
        "## Primary-path isolation (bench/isolation.py)",
        "",
        machine_line(),
        "",
        f"wrk: {settings.connections} connections, {settings.threads} threads, "
        f"{settings.warmup_s} s warm-up, {settings.settle_s:.0f} s pause (the copies sent "
        f"during the warm-up end: a breaker has tripped), {settings.duration_s} s measured; "
        f"app waits 2 ms per callback; front nginx 1.22 with {settings.workers} workers. "
        "Ratio and p99 delta are against the no-mirror row of the same stage and client: "
        "the mean of two runs, one before and one after the configs with a mirror. "
        "Errors: non-2xx, socket errors and wrk timeouts. Findings: docs/isolation.md.",
        "",
        "Configs: `none` no mirror; `seed` the seed's block (nginx defaults); `hookshift` what "
        "`hookshift mirror plan` writes for nginx 1.22 (two-hop breaker, parity log); "
        "`hookshift-keepalive` the same with `--stage-dns reload` (TLS keep-alive from the "
        "relay to the stage, addresses fixed until a reload); research "
        "rows, not written by hookshift: `pooled` one hop with TLS keep-alive to the stage "
        "(the 1.27.3+ `resolve` layout, fixed address on 1.22), `relay` the two-hop breaker "
        "behind a relay that answers the copy at once.",
        "",
        "| stage | client | mirror config | req/s | p50 ms | p99 ms | ratio | p99 delta ms "
        "| errors |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for m in results:
        base = by_key.get((m.behaviour, "none", m.client))
        ratio = ratio_text(m.rps, base.rps) if base else "n/a"
        delta = f"{m.p99_ms - base.p99_ms:+.1f}" if base else "n/a"
        if m.variant == "none":
            ratio, delta = "1.00x", "0.0"
        lines.append(
            f"| {BEHAVIOUR_TITLES[m.behaviour]} | {m.client} | {m.variant} | {m.rps:,.0f} "
            f"| {m.p50_ms:.1f} | {m.p99_ms:.1f} | {ratio} | {delta} | {m.errors} |"
        )
    verdicts = [verdict(m, by_key) for m in results if m.variant == "hookshift"]
    failing = [v for v in verdicts if v is not None]
    lines.append("")
    if failing:
        lines.append("Goal (hookshift >= 0.9x no-mirror req/s, p99 within 5 ms) **not met** for:")
        lines += [f"- {v}" for v in failing]
    elif verdicts:
        lines.append(
            "Goal met: hookshift's config keeps >= 0.9x no-mirror req/s and p99 within 5 ms "
            "for every stage behaviour and client in this run."
        )
    return "\n".join(lines) + "\n"


def verdict(m: Measurement, by_key: dict[tuple[str, str, str], Measurement]) -> str | None:
    """None when `m` meets the goal, else what falls short and by how much."""
    base = by_key.get((m.behaviour, "none", m.client))
    if base is None:
        return None
    problems = []
    if m.rps < 0.9 * base.rps:
        problems.append(f"req/s {m.rps / base.rps:.2f}x")
    if m.p99_ms > base.p99_ms + 5:
        problems.append(f"p99 +{m.p99_ms - base.p99_ms:.1f} ms")
    if not problems:
        return None
    return f"{BEHAVIOUR_TITLES[m.behaviour]}, {m.client}: " + ", ".join(problems)


def run_matrix(
    behaviours: Sequence[str],
    variants: Sequence[str],
    clients: Sequence[str],
    settings: Settings,
    *,
    keep: bool = False,
    explicit: bool = False,
) -> list[Measurement]:
    """Measure every cell; research variants only on RESEARCH_BEHAVIOURS unless `explicit`."""
    nginx_bin = shutil.which("nginx") or "/usr/sbin/nginx"
    wrk_bin = shutil.which("wrk")
    if wrk_bin is None:
        raise RuntimeError("wrk is not installed: apt-get install wrk")
    workdir = Path(tempfile.mkdtemp(prefix="hookshift-isolation-"))
    results: list[Measurement] = []
    try:
        bench = Bench(workdir, nginx_bin, wrk_bin, settings)
        with bench.stages:
            cells = [
                bench.prepare(behaviour, variant, client)
                for behaviour in behaviours
                for client in clients
                for variant in bracketed(variants)
                if explicit or behaviour in RESEARCH_BEHAVIOURS.get(variant, (behaviour,))
            ]
            for cell in cells:
                started = time.monotonic()
                m = bench.measure(cell)
                results.append(m)
                print(
                    f"isolation: {cell.behaviour:13} {cell.client:9} {cell.variant:19} "
                    f"{m.rps:9,.0f} req/s  p50 {m.p50_ms:7.1f} ms  "
                    f"p99 {m.p99_ms:7.1f} ms  errors {m.errors}  "
                    f"({time.monotonic() - started:.0f} s)",
                    file=sys.stderr,
                    flush=True,
                )
    finally:
        if keep:
            print(f"isolation: kept {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return merge_baselines(results)


def bracketed(variants: Sequence[str]) -> list[str]:
    """The no-mirror baseline before and after the others, so drift during a group shows less."""
    if "none" not in variants:
        return list(variants)
    return ["none", *(v for v in variants if v != "none"), "none"]


def merge_baselines(results: Sequence[Measurement]) -> list[Measurement]:
    """One no-mirror row per behaviour and client: the mean of the runs that bracket the group."""
    merged: list[Measurement] = []
    index: dict[tuple[str, str, str], int] = {}
    for m in results:
        if m.key not in index:
            index[m.key] = len(merged)
            merged.append(m)
            continue
        first = merged[index[m.key]]
        merged[index[m.key]] = Measurement(
            behaviour=m.behaviour,
            variant=m.variant,
            client=m.client,
            requests=first.requests + m.requests,
            rps=(first.rps + m.rps) / 2,
            p50_ms=(first.p50_ms + m.p50_ms) / 2,
            p99_ms=(first.p99_ms + m.p99_ms) / 2,
            errors=first.errors + m.errors,
        )
    return merged


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.isolation", description=__doc__)
    parser.add_argument("--behaviour", action="append", choices=BEHAVIOURS)
    parser.add_argument("--variant", action="append", choices=VARIANTS)
    parser.add_argument("--client", action="append", choices=CLIENTS)
    parser.add_argument("--duration", type=int, default=Settings.duration_s)
    parser.add_argument("--connections", type=int, default=Settings.connections)
    parser.add_argument("--workers", type=int, default=Settings.workers)
    parser.add_argument("--keep", action="store_true", help="keep the work dir (configs, logs)")
    parser.add_argument("--no-write", action="store_true", help="print, do not write RESULTS.md")
    args = parser.parse_args(argv if argv is not None else [])
    settings = Settings(
        duration_s=args.duration, connections=args.connections, workers=args.workers
    )
    results = run_matrix(
        args.behaviour or BEHAVIOURS,
        args.variant or MATRIX_VARIANTS,
        args.client or CLIENTS,
        settings,
        keep=args.keep,
        explicit=bool(args.variant),
    )
    table = render_table(results, settings)
    if args.no_write:
        print(table)
    else:
        write_section("isolation", table)


if __name__ == "__main__":
    main(sys.argv[1:])
