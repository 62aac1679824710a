"""``hookshift rehearse``: the whole migration on this machine, in under two minutes.

It starts the stack (rehearsal.stack), sends callbacks through nginx while the app is deployed
part-way, drains the queue into an archive, and shows where every callback ended up: the ones
the app lost during its deploy are in the queue. That is the reason for the migration.
"""

from __future__ import annotations

import errno
import json
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import click

from hookshift.console import NonEmptyPath, diag, emit_json
from hookshift.errors import InputError
from hookshift.mirror.plan import MIRROR_ERROR_LOG_NAME
from hookshift.mirror.render import COPIES_ZONE, HANDOFFS_ZONE
from hookshift.private import PRIVATE_DIR, make_dirs
from hookshift.rehearsal.load import SendResult
from hookshift.rehearsal.scenario import (
    DeployScenario,
    Reconciliation,
    body_key,
    reconcile,
    run_deploy_scenario,
)
from hookshift.rehearsal.stack import Stack, StackOptions, start_stack
from hookshift.verify.keys import PROFILES, parse_key, show_body_key

SAMPLES_SHOWN = 5
DOWNTIME_MAX_S = 3600  # a deploy longer than an hour is no rehearsal of one
PARITY_PROFILE = "bizppurio"  # the parity check's key; samples are shown by it too
PARITY_KEY = parse_key(PROFILES[PARITY_PROFILE])


def _new_run_dir(base: Path) -> Path:
    """A fresh directory per run under `base`, so a rerun never mixes with an earlier one.

    The owner's only (0700, whatever the umask): the app's ledger, what was sent and the
    stage's execution log hold whole callbacks, phone numbers included.
    """
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    try:
        make_dirs(base)
        for n in range(100):
            candidate = base / (stamp if n == 0 else f"{stamp}-{n}")
            try:
                candidate.mkdir(mode=PRIVATE_DIR)
            except FileExistsError:
                continue
            os.chmod(candidate, PRIVATE_DIR)
            return candidate.resolve()
    except OSError as exc:  # a file on the way, a read-only or full disk, another user's
        raise InputError(
            f"cannot make the run directory: {_why(exc)}",
            where=str(exc.filename or base),
            fix="pass --workdir with a directory you can write",
        ) from None
    raise InputError(f"cannot make a run directory under {base}", fix="pass --workdir")


def _why(exc: OSError) -> str:
    if exc.errno in (errno.EEXIST, errno.ENOTDIR):  # mkdir's words for a file in the way
        return "a file stands where a directory must be"
    return exc.strerror or str(exc)


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # the stack's `finally` stops every process by pid


def summary_lines(
    rec: Reconciliation,
    scenario: DeployScenario,
    results: list[SendResult],
    queue_ids: dict[str, str],
    drops: RelayDrops | None = None,
) -> list[str]:
    """The human summary of a run (pure, so it is tested without processes). `drops`: the
    copies the mirror's bounds dropped, which explain callbacks in neither place."""
    by_key = {r.key: r for r in results}
    failed = len(rec.sent) - len(rec.vendor_ok)
    lines = [
        f"{len(rec.sent)} callbacks sent through nginx; the app was deployed when callback "
        f"{scenario.deploy_seq} was due (down {scenario.downtime:g} s)",
        "",
        f"  vendor got 2xx        {len(rec.vendor_ok):>6}    non-2xx/error {failed:>6}",
        f"  in the app's ledger   {len(rec.in_app):>6}",
        f"  in the queue          {len(rec.in_queue):>6}    (mirrored by nginx to API Gateway)",
        f"  lost at the app       {len(rec.lost_at_app):>6}    of them in the queue "
        f"{len(rec.lost_at_app_in_queue):>6}",
        f"  in neither            {len(rec.unaccounted):>6}",
        f"  queue body != sent    {len(rec.queue_mismatched):>6}",
    ]
    if rec.queue_duplicates or rec.queue_unparseable:
        lines.append(
            f"  queue duplicates      {rec.queue_duplicates:>6}    unparseable "
            f"{rec.queue_unparseable:>6}"
        )
    if rec.lost_at_app_in_queue:
        lines += ["", "Callbacks the app lost during its deploy, safe in the queue:"]
        for key in rec.lost_at_app_in_queue[:SAMPLES_SHOWN]:
            sent = by_key[key]
            what = f"HTTP {sent.status}" if sent.status is not None else sent.error.split(":")[0]
            userdata = json.loads(sent.body).get("USERDATA", "")
            shown = show_body_key(PARITY_KEY, sent.body) or key
            lines.append(
                f"  {shown}  vendor got {what:<14} SQS MessageId {queue_ids.get(key, '?')}  "
                f"USERDATA {userdata!r}"
            )
        more = len(rec.lost_at_app_in_queue) - SAMPLES_SHOWN
        if more > 0:
            lines.append(f"  ... and {more} more")
        lines.append(
            "Once the vendor posts to API Gateway, a deploy delays such callbacks instead of "
            "losing them: the consumer reads them from the queue when the app is back."
        )
    lines.append("")
    if rec.unaccounted and drops is not None and drops.total:
        lines.append(
            f"The mirror dropped {drops.total} copies at its bounds ({drops.at_cap} at the "
            f"relay's cap of copies in flight, {drops.at_handoff} at a worker's hand-off bound; "
            f"{drops.where}): the stage answered too slowly for the rate. Raise "
            "worker_connections to raise both; `hookshift verify heal` re-sends such copies."
        )
    if rec.unaccounted:
        lines.append(f"verdict: FAIL: {len(rec.unaccounted)} callbacks are in neither place")
    else:
        lines.append(
            f"verdict: every callback sent is in the app or the queue "
            f"({len(rec.sent) - len(rec.unaccounted)}/{len(rec.sent)})"
        )
    return lines


@click.command("rehearse")
@click.option("-n", "--count", default=200, show_default=True, help="Callbacks to send.")
@click.option("--rate", default=50.0, show_default=True, help="Callbacks per second.")
@click.option(
    "--downtime", default=1.5, show_default=True, help="Seconds the app is down in the deploy."
)
@click.option(
    "--workdir",
    type=NonEmptyPath("pass a directory, e.g. --workdir rehearsal-run", file_okay=False),
    default=Path("rehearsal-run"),
    show_default=True,
    help="Each run gets a fresh sub-directory here (configs, logs, ledger, archive).",
)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
def rehearse(count: int, rate: float, downtime: float, workdir: Path, fmt: str) -> None:
    """Rehearse the migration locally: nginx mirrors callbacks to a local API Gateway stage
    emulator -> SQS (moto) while the app is deployed; every callback must end up somewhere.

    \b
    Starts on free loopback ports: DNS, SQS (moto), the stage emulator over TLS, the sample
    app, and a real nginx with a sample config patched by `hookshift mirror apply`. Sends
    callbacks, restarts the app part-way, drains the queue and prints the parity summary.
    Every process is stopped by pid at the end, on error and on Ctrl-C. Exit 1 when the
    verdict is FAIL: a callback in neither the app nor the queue, or the parity check failed
    (also when no callback the app accepted was left to compare: raise -n).

    \b
    Examples:
      hookshift rehearse
      hookshift rehearse -n 500 --rate 100 --downtime 3
      hookshift rehearse --format json --workdir /tmp/rehearsal
    """
    check_scenario(count, rate, downtime)
    run_dir = _new_run_dir(workdir)
    diag("info", f"run directory: {run_dir}")
    scenario = DeployScenario(count=count, rate=rate, downtime=downtime)
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        report = _run(run_dir, scenario)
    finally:
        signal.signal(signal.SIGTERM, previous)
    if fmt == "json":
        emit_json(report)
    else:
        click.echo("\n".join(report["summary"]))
        click.echo(f"files: {run_dir}")
    if failed(report):
        sys.exit(1)


def check_scenario(count: int, rate: float, downtime: float) -> None:
    """Refuse the first option that is out of range, by its name (one line for each).

    Each test is written so that nan fails it: every comparison with nan is false.
    """
    if not count >= 1:
        raise InputError(
            f"not a number of callbacks of 1 or more: {count}", where="--count", fix="e.g. -n 200"
        )
    if not 0 < rate < math.inf:
        raise InputError(
            f"not a number of callbacks per second above 0: {rate:g}",
            where="--rate",
            fix="e.g. --rate 50",
        )
    if not 0 <= downtime <= DOWNTIME_MAX_S:
        raise InputError(
            f"not a number of seconds from 0 to {DOWNTIME_MAX_S}: {downtime:g}",
            where="--downtime",
            fix="e.g. --downtime 1.5",
        )


def failed(report: Mapping[str, Any]) -> bool:
    """The rehearsal's verdict is FAIL: a callback is in neither the app nor the queue, or its
    parity check failed. A parity check with nothing to compare (every callback arrived while
    the app was down) fails too: a PASS over no callback would vouch for nothing, so the run
    says so in its exit code rather than in a line a script never reads."""
    parity = report.get("parity")
    return bool(report["reconciliation"]["unaccounted"]) or (
        parity is not None and parity.get("verdict") != "pass"
    )


def _run(run_dir: Path, scenario: DeployScenario) -> dict[str, Any]:
    started = time.monotonic()
    diag("info", "starting DNS, SQS (moto), the stage emulator, the app and nginx ...")
    with start_stack(run_dir, StackOptions()) as stack:
        (run_dir / "pids.json").write_text(json.dumps(stack.pids()) + "\n", encoding="utf-8")
        diag(
            "info", f"nginx {stack.nginx_url} -> app :{stack.app_port}; mirror -> {stack.stage_url}"
        )
        results = _send(stack, scenario, run_dir)
        depth = stack.wait_for_queue(len(results))
        diag("info", f"queue holds {depth} messages; draining it into {run_dir / 'archive'}")
        messages = stack.drain_queue(run_dir / "archive")
        app_bodies = stack.app_bodies()
    queue_bodies = [str(m.get("Body", "")) for m in messages]
    rec = reconcile(results, app_bodies, queue_bodies)
    queue_ids = {
        key: str(m["MessageId"])
        for m in messages
        if (key := body_key(str(m.get("Body", "")))) is not None
    }
    parity = _parity(stack.parity_log, run_dir / "archive", run_dir)
    diag("ok", f"done in {time.monotonic() - started:.1f} s; every process stopped")
    drops = relay_drops(stack.parity_log.parent)
    summary = summary_lines(rec, scenario, results, queue_ids, drops)
    if parity is not None:
        summary += ["", *parity[1].rstrip("\n").splitlines()]
        summary += parity_lines(stack.parity_log, run_dir / "archive", run_dir)
    return {
        "run_dir": str(run_dir),
        "scenario": asdict(scenario),
        "reconciliation": {
            k: (len(v) if isinstance(v, tuple) else v) for k, v in asdict(rec).items()
        }
        | {"unaccounted_keys": list(rec.unaccounted)},
        "parity": parity[0] if parity else None,
        "summary": summary,
    }


@dataclass(frozen=True)
class RelayDrops:
    """Copies the mirror dropped at once at its bounds, as nginx logged them."""

    at_cap: int  # the relay's limit on copies in flight (its own error log)
    at_handoff: int  # a front worker's limit on copies being handed over (nginx's error log)
    where: str

    @property
    def total(self) -> int:
        return self.at_cap + self.at_handoff


def relay_drops(logs: Path) -> RelayDrops:
    """Count the drops in the rehearsal nginx's logs directory: the relay logs its cap's at
    ``warn`` in its own error log, a worker its hand-off bound's at ``info`` in nginx's (the
    rehearsal logs ``info``)."""

    def count(name: str, zone: str) -> int:
        needle = f'limiting connections by zone "{zone}"'.encode()
        try:
            return sum(needle in line for line in (logs / name).read_bytes().splitlines())
        except OSError:
            return 0

    return RelayDrops(
        at_cap=count(MIRROR_ERROR_LOG_NAME, COPIES_ZONE),
        at_handoff=count("error.log", HANDOFFS_ZONE),
        where=f"{logs / MIRROR_ERROR_LOG_NAME}, {logs / 'error.log'}",
    )


def _parity(parity_log: Path, archive: Path, run_dir: Path) -> tuple[dict[str, Any], str] | None:
    """hookshift's parity report (verify) over nginx's parity log and the drained queue.

    Everything has settled when this runs (the queue was drained after the last copy landed),
    so no grace window: a callback not in the queue now is missing. Returns the JSON report and
    its text rendering; the HTML report is written to ``run_dir/parity.html``.
    """
    try:
        from hookshift.verify import ParityOptions, parity
        from hookshift.verify.report import render_html, render_text, write_report
    except ImportError:  # a build without the verify package: the summary above still holds
        return None
    report = parity(
        f"nginx:{parity_log}",
        f"archive:{archive}",
        ParityOptions(grace_s=0, profile=PARITY_PROFILE),
    )
    write_report(run_dir / "parity.html", render_html(report))
    return dict(report.to_dict()), render_text(report, tty=sys.stdout.isatty())


def parity_lines(parity_log: Path, archive: Path, run_dir: Path) -> list[str]:
    """Where the full parity report is, and the command that makes it again."""
    return [
        f"parity report (HTML): {run_dir / 'parity.html'}",
        f"again: hookshift verify parity --app nginx:{parity_log} --queue archive:{archive} "
        f"--profile {PARITY_PROFILE} --grace 0",
    ]


def _send(stack: Stack, scenario: DeployScenario, run_dir: Path) -> list[SendResult]:
    lock = threading.Lock()
    with click.progressbar(
        length=scenario.count, label="sending callbacks", file=sys.stderr
    ) as bar:

        def advance(_: SendResult) -> None:
            with lock:  # results arrive on the load driver's worker threads
                bar.update(1)

        run = run_deploy_scenario(
            stack,
            scenario,
            run_id=run_dir.name.replace("-", "")[-10:],
            record=run_dir / "sent.jsonl",
            on_result=advance,
        )
    return run.results
