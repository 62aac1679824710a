"""Primary-path isolation: does a slow, dead or failing stage slow the callbacks nginx serves?

For each stage behaviour (bench/stages.py), each client kind (keep-alive, ``Connection:
close``) and each nginx binary (Debian's; a mainline build too when ``HOOKSHIFT_NGINX_MAINLINE``
names one), a fresh front nginx is started without a mirror and then with hookshift's default
config, side by side, and wrk (Debian's) drives the callback location. The stage misbehaves
from the first copy on, so a run's first 5 s are the onset of the fault: they are measured and
reported on their own (a stall after a fault must show, not be averaged away), then the rest
of the 20 s. Against the counting stages the bench also compares what the stage received with
the callbacks nginx logged.

``python -m bench bench.isolation`` runs the whole matrix (about 10 minutes per binary) and
writes the ``isolation`` section of bench/RESULTS.md. ``python -m bench.isolation --help`` runs
a subset (the research configs of bench/isolation_configs.py with ``--variant``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench import stop_on_sigterm
from bench.isolation_configs import CALLBACK_PATH, VARIANTS, FrontSpec, write_front_conf
from bench.results import RESULTS, machine_line, write_section
from bench.stages import BEHAVIOUR_TITLES, BEHAVIOURS, Stages, children, cpu_seconds
from hookshift.nginx.binary import nginx_version
from hookshift.procs import LOOPBACK, ManagedProcess, free_port, wait_for_port

CLIENTS = ("keepalive", "close")
MATRIX_VARIANTS = ("none", "hookshift", "hookshift-keepalive")
# --stage-dns reload changes only what hookshift writes for nginx < 1.27.3
RESOLVE_IN_UPSTREAM = (1, 27, 3)
MAINLINE_ENV = "HOOKSHIFT_NGINX_MAINLINE"
GOAL_RATIO = 0.85
GOAL_P99_MS = 5.0
# Research rows (not hookshift's config), when asked for with --variant, are measured where
# they teach something unless --all-behaviours.
RESEARCH_BEHAVIOURS = {
    "hookshift-keepalive": ("healthy", "healthy_50ms", "slow_3s", "5xx", "blackhole"),
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
    onset_s: int = 5  # the first seconds of the fault, reported on their own
    duration_s: int = 20  # the whole run, onset included
    drain_s: float = 3.0  # after the run: copies in flight reach the stage before counting
    timeout_s: int = 5
    workers: int = 2


@dataclass(frozen=True)
class Cell:
    """One front config, written and checked, ready to be measured."""

    binary: str  # the front nginx's version, e.g. "1.22.1"
    behaviour: str
    variant: str
    client: str
    conf: Path
    port: int
    parity_log: Path | None


@dataclass(frozen=True)
class Run:
    """One wrk run (what our wrk script prints in ``done()``)."""

    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int  # connect/read/write errors, non-2xx answers and wrk timeouts together
    kinds: tuple[tuple[str, int], ...] = ()  # the errors by wrk's kind, those that occurred

    @property
    def rps(self) -> float:
        return self.requests / self.seconds


@dataclass(frozen=True)
class Measurement:
    """One front config measured: the fault's onset, the rest of the run, what was copied."""

    binary: str
    behaviour: str
    variant: str
    client: str
    onset: Run
    rest: Run
    logged: int | None = None  # callbacks in the parity log
    received: int | None = None  # copies the stage answered
    front_cpu_s: float = 0.0  # CPU the front nginx used while wrk ran (master and workers)
    stubs_cpu_s: float = 0.0  # CPU the app and the stage stubs used meanwhile

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.binary, self.behaviour, self.variant, self.client)

    @property
    def rps(self) -> float:
        return (self.onset.requests + self.rest.requests) / (self.onset.seconds + self.rest.seconds)

    @property
    def errors(self) -> int:
        return self.onset.errors + self.rest.errors

    @property
    def requests(self) -> int:
        return self.onset.requests + self.rest.requests

    def per_callback_us(self, cpu_s: float) -> float:
        """CPU microseconds per callback wrk got an answer to."""
        return cpu_s / max(self.requests, 1) * 1e6


ERROR_KINDS = ("connect", "read", "write", "status", "timeout")


def parse_wrk(line: str) -> Run:
    """The JSON line our wrk script prints in ``done()`` -> a Run."""
    data = json.loads(line)
    return Run(
        requests=data["requests"],
        seconds=max(data["duration_us"], 1) / 1e6,
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        errors=sum(data[k] for k in ERROR_KINDS),
        kinds=tuple((k, data[k]) for k in ERROR_KINDS if data[k]),
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

    def prepare(
        self,
        binary: tuple[str, str],
        behaviour: str,
        variant: str,
        client: str,
        worker_connections: int = FrontSpec.worker_connections,
    ) -> Cell:
        """Write and check the front config for one cell (all cells are written before any runs,
        so the configs come from one state of mirror/ even while it is being worked on)."""
        label, nginx_bin = binary
        self._cells += 1
        prefix = self.workdir / f"front-{self._cells:03d}"  # short: unix socket paths inside
        prefix.mkdir(parents=True)
        spec = FrontSpec(
            prefix=prefix,
            port=free_port(),
            app_port=self.stages.app_port,
            target=self.stages.target(behaviour),
            certs=self.stages.certs,
            workers=self.settings.workers,
            parity_log=prefix / "parity.log",
            nginx_version=_version(label),
            worker_connections=worker_connections,
        )
        conf = write_front_conf(variant, spec)
        check = subprocess.run(
            [nginx_bin, "-t", "-q", "-c", str(conf)], capture_output=True, text=True
        )
        if check.returncode != 0:
            raise RuntimeError(f"nginx -t failed on {conf}: {check.stderr.strip()}")
        return Cell(label, behaviour, variant, client, conf, spec.port, spec.parity_log)

    def measure(self, cell: Cell, nginx_bin: str) -> Measurement:
        """Start the cell's front nginx and drive it from the first request: the onset of the
        fault, then the rest of the run; then count what the stage got."""
        port = _fresh_port(cell)
        front = ManagedProcess(
            "front-nginx",
            [nginx_bin, "-g", "daemon off;", "-c", str(cell.conf)],
            cell.conf.parent / "stdout.log",
        )
        url = f"http://{LOOPBACK}:{port}{CALLBACK_PATH}"
        s = self.settings
        counting = cell.variant != "none" and self.stages.received(cell.behaviour) is not None
        before = self.stages.received(cell.behaviour) or 0
        with front.start(ready=lambda: wait_for_port(port)):
            fronts, stubs = [front.pid, *children(front.pid)], self.stages.pids()
            cpu_before = cpu_seconds(fronts), cpu_seconds(stubs)
            onset = parse_wrk(self._wrk(url, cell.client, s.onset_s))
            rest = parse_wrk(self._wrk(url, cell.client, s.duration_s - s.onset_s))
            front_cpu = cpu_seconds(fronts) - cpu_before[0]
            stubs_cpu = cpu_seconds(stubs) - cpu_before[1]
            if counting:
                time.sleep(s.drain_s)
        logged = received = None
        if counting and cell.parity_log is not None and cell.parity_log.exists():
            logged = len(cell.parity_log.read_bytes().splitlines())
            received = (self.stages.received(cell.behaviour) or 0) - before
        return Measurement(
            cell.binary,
            cell.behaviour,
            cell.variant,
            cell.client,
            onset,
            rest,
            logged,
            received,
            front_cpu,
            stubs_cpu,
        )

    def _wrk(self, url: str, client: str, seconds: int, connections: int | None = None) -> str:
        s = self.settings
        argv = [self.wrk_bin, f"-t{s.threads}", f"-c{connections or s.connections}"]
        argv.append(f"-d{seconds}s")
        argv += [f"--timeout={s.timeout_s}s", "-s", str(self.scripts[client]), url]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
        lines = [ln for ln in done.stdout.splitlines() if ln.startswith('{"requests"')]
        if done.returncode != 0 or not lines:
            raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip()}")
        return lines[-1]


def _fresh_port(cell: Cell) -> int:
    """A port free now for the cell's front: the one chosen when the configs were written may
    have been taken since (the bench's own connections use ephemeral ports too)."""
    port = free_port()
    text = cell.conf.read_text(encoding="utf-8")
    listen = f"listen {LOOPBACK}:{cell.port};"
    if listen not in text:
        raise RuntimeError(f"{cell.conf} has no `{listen}`")
    cell.conf.write_text(text.replace(listen, f"listen {LOOPBACK}:{port};"), encoding="utf-8")
    return port


def _version(label: str) -> tuple[int, int, int]:
    major, minor, patch = (int(x) for x in label.split("."))
    return major, minor, patch


def binaries() -> list[tuple[str, str]]:
    """(version, path) of each front nginx to measure: Debian's, and a mainline build if named."""
    found = [shutil.which("nginx") or "/usr/sbin/nginx"]
    mainline = os.environ.get(MAINLINE_ENV, "")
    if mainline and os.access(mainline, os.X_OK):
        found.append(mainline)
    else:
        print(f"isolation: {MAINLINE_ENV} not set: Debian's nginx only", file=sys.stderr)
    return [(".".join(map(str, nginx_version(path))), path) for path in found]


def ratio_text(value: float, base: float) -> str:
    return f"{value / base:.2f}x" if base > 0 else "n/a"


def _copied(m: Measurement) -> str:
    if m.logged is None or m.received is None:
        return ""
    share = m.received / m.logged if m.logged else 0.0
    return f"{m.received:,} / {m.logged:,} ({share:.2%})"


def render_table(results: Sequence[Measurement], settings: Settings) -> str:
    """The RESULTS.md section: one row per binary x behaviour x client x config."""
    by_key = {m.key: m for m in results}
    s = settings
    lines = [
        "## Primary-path isolation (bench/isolation.py)",
        "",
        machine_line(),
        "",
        f"wrk: {s.connections} connections, {s.threads} threads; each config runs "
        f"{s.duration_s} s from a fresh front nginx ({s.workers} workers, `worker_connections "
        f"{FrontSpec.worker_connections}`) whose stage "
        f"misbehaves from the first copy: the first {s.onset_s} s (the fault's onset) are "
        "measured on their own, then the rest. The app waits 2 ms per callback. Ratios and "
        "p99 deltas are against the no-mirror row of the same binary, stage and client, "
        "measured just before. Errors: non-2xx, socket errors and wrk timeouts. `copied`: "
        "requests the stage answered / callbacks in the parity log (copies still in flight "
        f"{s.drain_s:.0f} s after the run are missing). `CPU`: microseconds of CPU per "
        "callback answered, used by the front nginx (its master and workers: the callback "
        "path, and with a mirror the relay and the copies) and by the stubs (the app, and the "
        "stage that stands in for API Gateway, which would not run on this host). All of them "
        "share the 2 cores with wrk, so a stub's CPU lowers the req/s measured too. "
        "Findings: docs/isolation.md.",
        "",
        "Configs: `none` no mirror; `hookshift` what `hookshift mirror plan` writes by "
        "default for that nginx (a relay that answers the copy at once; on 1.22 a stage hop "
        "with keep-alive to the stage's address as planned, by name at a TLS handshake per "
        "copy when that address fails; from 1.27.3 a `resolve` upstream with keep-alive); "
        "`hookshift-keepalive` the same planned with `--stage-dns reload` (nginx "
        "< 1.27.3 only: keep-alive to the stage, resolved at start/reload and kept current by "
        "`hookshift mirror refresh`).",
        "",
        f"| nginx | stage | client | config | req/s | ratio | first {s.onset_s} s req/s | ratio "
        f"| p99 first {s.onset_s} s | delta | p99 after | delta | errors | copied | CPU front "
        "| CPU stubs |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for m in results:
        base = by_key.get((m.binary, m.behaviour, "none", m.client))
        if base is None or m.variant == "none":
            ratio = onset_ratio = "1.00x" if m.variant == "none" else "n/a"
            d_onset = d_rest = "0.0" if m.variant == "none" else "n/a"
        else:
            ratio, onset_ratio = (
                ratio_text(m.rps, base.rps),
                ratio_text(m.onset.rps, base.onset.rps),
            )
            d_onset = f"{m.onset.p99_ms - base.onset.p99_ms:+.1f}"
            d_rest = f"{m.rest.p99_ms - base.rest.p99_ms:+.1f}"
        lines.append(
            f"| {m.binary} | {BEHAVIOUR_TITLES[m.behaviour]} | {m.client} | {m.variant} "
            f"| {m.rps:,.0f} | {ratio} | {m.onset.rps:,.0f} | {onset_ratio} "
            f"| {m.onset.p99_ms:.1f} | {d_onset} | {m.rest.p99_ms:.1f} | {d_rest} "
            f"| {m.errors} | {_copied(m)} | {m.per_callback_us(m.front_cpu_s):.0f} "
            f"| {m.per_callback_us(m.stubs_cpu_s):.0f} |"
        )
    verdicts = [verdict(m, by_key, s.onset_s) for m in results if m.variant == "hookshift"]
    failing = [v for v in verdicts if v is not None]
    lines.append("")
    goal = f"hookshift >= {GOAL_RATIO}x no-mirror req/s, p99 within {GOAL_P99_MS:.0f} ms"
    if failing:
        lines.append(f"Goal ({goal}, in the first {s.onset_s} s and after) **not met** for:")
        lines += [f"- {v}" for v in failing]
    elif verdicts:
        lines.append(
            f"Goal met ({goal}, in the first {s.onset_s} s and after) in every row of this run."
        )
    return "\n".join(lines) + "\n"


def verdict(
    m: Measurement, by_key: dict[tuple[str, str, str, str], Measurement], onset_s: int
) -> str | None:
    """None when `m` meets the goal, else what falls short and by how much (`onset_s`: the
    length of the onset window, reported on its own)."""
    base = by_key.get((m.binary, m.behaviour, "none", m.client))
    if base is None:
        return None
    problems = []
    first = f"first {onset_s} s"
    for what, mine, theirs in (("", m.rps, base.rps), (f"{first} ", m.onset.rps, base.onset.rps)):
        if mine < GOAL_RATIO * theirs:
            problems.append(f"{what}req/s {mine / theirs:.2f}x")
    for what, run, ref in ((first, m.onset, base.onset), ("after", m.rest, base.rest)):
        if run.p99_ms > ref.p99_ms + GOAL_P99_MS:
            problems.append(f"p99 {what} +{run.p99_ms - ref.p99_ms:.1f} ms")
    if m.logged and m.received is not None and m.received < 0.999 * m.logged:
        problems.append(f"stage got {m.received / m.logged:.2%} of the copies")
    if not problems:
        return None
    return f"nginx {m.binary}, {BEHAVIOUR_TITLES[m.behaviour]}, {m.client}: " + ", ".join(problems)


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
    wrk_bin = shutil.which("wrk")
    if wrk_bin is None:
        raise RuntimeError("wrk is not installed: apt-get install wrk")
    fronts = binaries()
    workdir = Path(tempfile.mkdtemp(prefix="hookshift-isolation-"))
    results: list[Measurement] = []
    try:
        bench = Bench(workdir, fronts[0][1], wrk_bin, settings)
        with bench.stages:
            cells = [
                (bench.prepare(front, behaviour, variant, client), front[1])
                for front in fronts
                for behaviour in behaviours
                for client in clients
                for variant in variants
                if explicit or behaviour in RESEARCH_BEHAVIOURS.get(variant, (behaviour,))
                if variant != "hookshift-keepalive" or _version(front[0]) < RESOLVE_IN_UPSTREAM
            ]
            for cell, nginx_bin in cells:
                started = time.monotonic()
                m = bench.measure(cell, nginx_bin)
                results.append(m)
                print(
                    f"isolation: {cell.binary} {cell.behaviour:13} {cell.client:9} "
                    f"{cell.variant:10} {m.rps:7,.0f} req/s  first {settings.onset_s} s "
                    f"{m.onset.rps:7,.0f} "
                    f"p99 {m.onset.p99_ms:6.1f} ms  after p99 {m.rest.p99_ms:6.1f} ms  "
                    f"errors {m.errors}  {_copied(m)}  ({time.monotonic() - started:.0f} s)",
                    file=sys.stderr,
                    flush=True,
                )
    finally:
        if keep:
            print(f"isolation: kept {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return results


# The crowd row: a hanging stage under many truly concurrent vendor connections, with
# Debian's worker_connections. Copies must never use up the connections the vendor needs.
CROWD_CLIENTS = 512
CROWD_WORKER_CONNECTIONS = 768
# Runs of each crowd cell: nginx alone sometimes refuses some of a crowd of closing clients (its
# workers do not share new connections evenly), so one run per config cannot tell the two apart.
CROWD_RUNS = 3
CROWD_HEADING = "### A hanging stage under"


@dataclass(frozen=True)
class Crowd:
    """One crowd run: the clients' view, and the connections copies held meanwhile."""

    binary: str
    variant: str
    client: str
    run: Run
    cap: int | None  # copies in flight the relay lets through (limit_conn), None: no mirror
    peak_at_stage: int  # most connections to the stage open at once (ss, sampled)
    peak_in_worker: int  # most sockets one front worker had open at once (sampled)
    not_enough: int  # "worker_connections are not enough" lines in the front's error log
    dropped: int  # copies the relay answered 503 at once ("limiting connections")


def connections_to(port: int) -> int:
    """Established TCP connections whose peer is `port` on loopback (ss)."""
    done = subprocess.run(
        ["ss", "-Htn", "state", "established", f"( dport = :{port} )"],
        capture_output=True,
        text=True,
        check=False,
    )
    return len(done.stdout.splitlines())


def _sockets_of(pid: int) -> int:
    """Sockets `pid` has open (its connections, listening sockets and channels included)."""
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return 0
    count = 0
    for fd in fds:
        try:
            count += os.readlink(fd).startswith("socket:")
        except OSError:
            continue
    return count


def _count(path: Path, needle: str) -> int:
    return path.read_text(errors="replace").count(needle) if path.exists() else 0


def measure_crowd(bench: Bench, cell: Cell, nginx_bin: str, seconds: int) -> Crowd:
    """wrk with CROWD_CLIENTS connections against a front whose stage never answers, while a
    thread samples the connections open to the stage."""
    import threading

    stage_port = bench.stages.target("blackhole").port
    peak = in_worker = 0
    stop = threading.Event()
    workers: list[int] = []

    def sample() -> None:
        nonlocal peak, in_worker
        while not stop.wait(0.2):
            if len(workers) < bench.settings.workers:
                workers[:] = children(front.pid)
            peak = max(peak, connections_to(stage_port))
            in_worker = max([in_worker, *(_sockets_of(pid) for pid in workers)])

    port = _fresh_port(cell)
    front = ManagedProcess(
        "front-nginx",
        [nginx_bin, "-g", "daemon off;", "-c", str(cell.conf)],
        cell.conf.parent / "stdout.log",
    )
    sampler = threading.Thread(target=sample, daemon=True)
    url = f"http://{LOOPBACK}:{port}{CALLBACK_PATH}"
    with front.start(ready=lambda: wait_for_port(port)):
        sampler.start()
        try:
            run = parse_wrk(bench._wrk(url, cell.client, seconds, CROWD_CLIENTS))
        finally:
            stop.set()
            sampler.join()
    text = cell.conf.read_text()
    caps = [
        ln.split()[2].rstrip(";") for ln in text.splitlines() if "limit_conn hookshift_copies" in ln
    ]
    prefix = cell.conf.parent
    return Crowd(
        cell.binary,
        cell.variant,
        cell.client,
        run,
        int(caps[0]) if caps else None,
        peak,
        in_worker,
        _count(prefix / "error.log", "worker_connections are not enough"),
        _count(prefix / "hookshift-mirror.error.log", "limiting connections"),
    )


def run_crowd(
    clients: Sequence[str], settings: Settings, *, runs: int = CROWD_RUNS, keep: bool = False
) -> list[Crowd]:
    """The crowd row for each binary and client kind, `runs` times: no mirror, then hookshift's
    default, one after the other, so both see the same state of the machine."""
    wrk_bin = shutil.which("wrk")
    if wrk_bin is None:
        raise RuntimeError("wrk is not installed: apt-get install wrk")
    workdir = Path(tempfile.mkdtemp(prefix="hookshift-crowd-"))
    fronts = binaries()
    results: list[Crowd] = []
    try:
        bench = Bench(workdir, fronts[0][1], wrk_bin, settings)
        with bench.stages:
            for _ in range(runs):
                cells = [
                    (bench.prepare(front, "blackhole", v, c, CROWD_WORKER_CONNECTIONS), front[1])
                    for front in fronts
                    for c in clients
                    for v in ("none", "hookshift")
                ]
                for cell, nginx_bin in cells:
                    crowd = measure_crowd(bench, cell, nginx_bin, settings.duration_s)
                    results.append(crowd)
                    print(f"isolation crowd: {crowd}", file=sys.stderr, flush=True)
    finally:
        if keep:
            print(f"isolation crowd: kept {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return results


def render_crowd(results: Sequence[Crowd], settings: Settings, load: str) -> str:
    """The crowd rows as a small table of their own, one row per config over its runs."""
    runs = max(Counter((c.binary, c.client, c.variant) for c in results).values(), default=1)
    lines = [
        "",
        f"{CROWD_HEADING} {CROWD_CLIENTS} concurrent clients "
        f"(`worker_connections {CROWD_WORKER_CONNECTIONS}`)",
        "",
        machine_line(),
        f"Load average before the bench: {load}"
        + (
            ": other work was using the same cores, so read the errors and connection counts "
            "(what this row checks), not req/s."
            if float(load.split()[0]) >= 0.5
            else "."
        ),
        "",
        f"wrk: {CROWD_CLIENTS} keep-alive or `Connection: close` connections, "
        f"{settings.threads} threads, {settings.duration_s} s from a fresh front nginx "
        f"({settings.workers} workers, an app that answers after 2 ms) whose stage accepts "
        f"and never answers; {runs} run(s) of each config, without and with the mirror in "
        "turn. req/s and p99: the median run. `of which`: the errors of all runs by wrk's "
        "kind (`read`: the connection closed before an answer; `connect`: refused; "
        "`status`: not 2xx). `at the stage`: most connections to the stage open at once (ss, "
        "every 0.2 s), one per copy in flight; each also holds the relay's connection, and two "
        "more through the stage hop of nginx 1.22. `busiest worker`: most sockets one front "
        "worker had open at once (sampled; nginx starts closing idle connections when fewer "
        "than a sixteenth of its connections, 48, are free). "
        "`not enough`: nginx's `worker_connections are not enough` lines (the `reusing "
        "connections` one at most once a second per worker); "
        "`dropped`: copies the relay answered 503 at once beyond its cap, all runs (copies a "
        "worker did not hand over, beyond its hand-off bound, are logged at info and not "
        "counted here).",
        "",
        "| nginx | client | config | req/s | p99 ms | errors in each run | of which "
        "| cap | at the stage | busiest worker | not enough in each run | dropped |",
        "|---|---|---|---:|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    groups: dict[tuple[str, str, str], list[Crowd]] = {}
    for c in results:
        groups.setdefault((c.binary, c.client, c.variant), []).append(c)
    for (binary, client, variant), group in sorted(
        groups.items(), key=lambda kv: (kv[0][0], CLIENTS.index(kv[0][1]), kv[0][2] != "none")
    ):
        kinds: dict[str, int] = {}
        for c in group:
            for kind, count in c.run.kinds:
                kinds[kind] = kinds.get(kind, 0) + count
        cap = group[0].cap
        lines.append(
            f"| {binary} | {client} | {variant} "
            f"| {statistics.median(c.run.rps for c in group):,.0f} "
            f"| {statistics.median(c.run.p99_ms for c in group):.1f} "
            f"| {' · '.join(f'{c.run.errors:,}' for c in group)} "
            f"| {', '.join(f'{k} {n:,}' for k, n in kinds.items()) or '-'} "
            f"| {cap if cap is not None else '-'} | {max(c.peak_at_stage for c in group)} "
            f"| {max(c.peak_in_worker for c in group)} "
            f"| {' · '.join(str(c.not_enough) for c in group)} "
            f"| {sum(c.dropped for c in group):,} |"
        )
    return "\n".join(lines) + "\n"


def _matrix_section() -> str:
    """The isolation section of RESULTS.md as it stands, without its crowd rows (so that
    ``--crowd only`` replaces those and keeps the matrix)."""
    text = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else ""
    found = re.search(r"<!-- isolation:start -->\n(.*?)<!-- isolation:end -->", text, re.S)
    section = found.group(1) if found else ""
    return section.split(CROWD_HEADING, 1)[0].rstrip() + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.isolation", description=__doc__)
    parser.add_argument("--behaviour", action="append", choices=BEHAVIOURS)
    parser.add_argument("--variant", action="append", choices=VARIANTS)
    parser.add_argument("--client", action="append", choices=CLIENTS)
    parser.add_argument("--duration", type=int, default=Settings.duration_s)
    parser.add_argument("--onset", type=int, default=Settings.onset_s)
    parser.add_argument("--connections", type=int, default=Settings.connections)
    parser.add_argument("--workers", type=int, default=Settings.workers)
    parser.add_argument("--keep", action="store_true", help="keep the work dir (configs, logs)")
    parser.add_argument("--no-write", action="store_true", help="print, do not write RESULTS.md")
    parser.add_argument(
        "--crowd",
        choices=("with", "only", "without"),
        default="with",
        help=f"the hanging stage under {CROWD_CLIENTS} clients: with the matrix, only it, or not",
    )
    parser.add_argument(
        "--crowd-runs", type=int, default=CROWD_RUNS, help="runs of each crowd config"
    )
    args = parser.parse_args(argv if argv is not None else [])
    settings = Settings(
        duration_s=args.duration,
        onset_s=args.onset,
        connections=args.connections,
        workers=args.workers,
    )
    variants = args.variant or MATRIX_VARIANTS
    if "none" not in variants:
        variants = ["none", *variants]
    table = ""
    # read before the matrix: right after it, the load is the bench's own
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    if args.crowd != "only":
        results = run_matrix(
            args.behaviour or BEHAVIOURS,
            variants,
            args.client or CLIENTS,
            settings,
            keep=args.keep,
            explicit=bool(args.variant),
        )
        table = render_table(results, settings)
    if args.crowd != "without":
        crowd = run_crowd(args.client or CLIENTS, settings, runs=args.crowd_runs, keep=args.keep)
        if args.crowd == "only" and not args.no_write:
            table = _matrix_section()
        table += render_crowd(crowd, settings, load)
    if args.no_write:
        print(table)
    else:
        write_section("isolation", table)


if __name__ == "__main__":
    stop_on_sigterm()
    main(sys.argv[1:])
