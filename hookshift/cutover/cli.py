"""``hookshift cutover init|status|advance|rollback`` and ``hookshift probe``.

The runbook as a program: each ``advance`` gathers the evidence its gate needs, refuses (exit 1)
naming every gate that is not met and why, and otherwise changes nginx through the mirror engine
and appends the transition to the journal. ``rollback`` goes back one stage from anywhere and
proves the nginx files are byte-identical to what they were in that stage.

The commands parse options, call `hookshift.cutover.api` and print its results: data on
stdout, the API's notices and the verdict on stderr.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import click

from hookshift.console import apply_options, diag, emit_json, stdout_guard
from hookshift.cutover import api, journal, stages
from hookshift.cutover.diagnosis import Diagnosis
from hookshift.cutover.settings import Settings
from hookshift.errors import HookshiftError
from hookshift.mirror.cli import option_list as mirror_option_list

_FORMAT = click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="text for people, json for scripts.",
)
_ADOPT = click.option(
    "--adopt-edits",
    is_flag=True,
    help="Record nginx edits made outside the cut-over in the journal, then go on.",
)
_STATE = click.option(
    "--state",
    "state_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The cut-over journal (created by init, appended by every transition).",
)


#: The recorded mirror options' help where the cut-over gives them a wider meaning; one text
#: for init, advance and rollback, so the same option reads the same in each
_HELP = {
    "config": "The main nginx config (its includes are followed), or a site file: "
    "the main config including it is used.",
    "resolvers": "DNS resolver ADDR[:PORT] for nginx and the probes (repeatable).",
    "nginx_prefix": "nginx's -p PREFIX (GitLab Omnibus, a source build): relative "
    "paths in the config resolve there; every stage's nginx -t and reload use it.",
}


def _settings_options(func: Any) -> Any:
    """The options that set or override the cut-over's settings (all optional)."""
    options = [
        *mirror_option_list("config", "path", "stage_url", recorded=True, help=_HELP),
        click.option("--domain-url", help="The custom domain (and base path), https://..."),
        click.option("--domain-target", help="Its d-XXXX.execute-api.REGION.amazonaws.com name."),
        click.option("--queue", help="sqs:QUEUE_URL, archive:DIR or jsonl:FILE."),
        click.option("--endpoint-url", help="SQS endpoint (default: AWS)."),
        click.option("--region", help="AWS region of the queue."),
        *mirror_option_list("parity_log", recorded=True),
        click.option("--nginx-log", help="Log to count nginx's callbacks (default: parity log)."),
        *mirror_option_list(
            "nginx_bin",
            "nginx_prefix",
            "resolvers",
            recorded=True,
            help=_HELP,
        ),
        click.option("--ca-file", help="A private CA bundle (probe and nginx verification)."),
        *mirror_option_list(
            "server_name",
            "listen",
            "backup_dir",
            "relay_socket",
            "stage_dns",
            "mirror_error_log",
            recorded=True,
        ),
        click.option("--archive", help="Archive dir for the mirror-period messages (drain)."),
        click.option(
            "--watch-state",
            help="The state directory of a running `hookshift verify watch`: the parity gates "
            "use its result when it is fresh and covers the stage.",
        ),
        click.option("--min-window", type=float, help="Parity window, seconds (default 3600)."),
        click.option("--min-events", type=int, help="Parity events (default 100)."),
        click.option("--quiet-period", type=float, help="Seconds without a callback at nginx."),
        click.option("--probe-timeout", type=float, help="Seconds to wait for a probe's marker."),
        click.option("--parity-grace", type=float, help="verify parity --grace, seconds."),
        click.option("--execution-log", help="Probes: cloudwatch:LOG_GROUP or FILE."),
    ]
    return apply_options(func, options)


def _nginx_overrides(func: Any) -> Any:
    """The settings rollback may override: where nginx's files are and how nginx is run (the
    same options, with the same help, as advance's)."""
    options = mirror_option_list("config", "nginx_bin", "nginx_prefix", recorded=True, help=_HELP)
    return apply_options(func, options)


_SETTING_NAMES = (
    "config", "path", "stage_url", "domain_url", "domain_target", "queue", "endpoint_url", "region",
    "parity_log", "nginx_log", "nginx_bin", "nginx_prefix", "resolvers", "ca_file", "server_name",
    "listen", "backup_dir", "relay_socket", "stage_dns", "mirror_error_log", "archive",
    "watch_state", "min_window", "min_events", "quiet_period", "probe_timeout", "parity_grace",
    "execution_log",
)  # fmt: skip


def _pop_settings(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {name: kwargs.pop(name) for name in _SETTING_NAMES}


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _entries(state_path: Path) -> int | None:
    """How many entries the journal holds (None: there is none, or it cannot be read)."""
    try:
        return len(journal.read(state_path).entries)
    except HookshiftError:
        return None


def _where_left(state_path: Path, before: int | None) -> str:
    """Where an interrupted command left the cut-over, from its journal (`before`: its
    entries when the command started)."""
    now = _entries(state_path)
    if now is None:
        return "no journal was written" if before is None else "the journal cannot be read now"
    current = journal.read(state_path)
    opened = current.pending
    if opened is not None:
        return (
            f"the transition {opened.from_stage} -> {opened.to_stage} (entry #{opened.seq}) "
            "is open and nginx's files may be part-way: the next `hookshift cutover advance` "
            "or `rollback` settles it first (`hookshift cutover status` shows it)"
        )
    if now == before:
        return (
            f"nothing was recorded: the cut-over is still at {current.stage}, nginx's files "
            "are as they were"
        )
    return f"the cut-over is at {current.stage} (`hookshift cutover status` shows its history)"


@contextlib.contextmanager
def _interruptible(state_path: Path) -> Iterator[None]:
    """Ctrl-C, or SIGTERM (``timeout``, a stopped service), while a command runs: the mirror
    engine puts back a write it had begun as the interrupt unwinds it, and the operator hears
    where the cut-over was left (exit 130). SIGTERM would otherwise end the process where it
    stands, silently, leaving even the engine's half-done write to the next command."""
    before = _entries(state_path)
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        yield
    except KeyboardInterrupt:
        click.echo(f"hookshift: interrupted: {_where_left(state_path, before)}", err=True)
        raise click.exceptions.Exit(130) from None
    finally:
        signal.signal(signal.SIGTERM, previous)


@click.group("cutover", context_settings={"help_option_names": ["-h", "--help"]})
def cutover() -> None:
    """Move the vendor's callbacks to the API Gateway custom domain, stage by stage.

    \b
    Stages: baseline -> mirror-stage -> mirror-domain -> vendor-switched -> decommissioned.
    Each advance checks its gates (doctor, probes, parity, drain, traffic) and refuses,
    naming the gate and why, until they are met. rollback goes back one stage; nginx's files
    come back byte-identical. Every transition is appended to the --state journal.

    \b
    Examples:
      hookshift cutover init --state cutover.jsonl --config /etc/nginx/nginx.conf \\
          --path /callback \\
          --stage-url https://abc123.execute-api.ap-northeast-2.amazonaws.com/prod \\
          --domain-url https://hooks.example.com \\
          --queue sqs:https://sqs.ap-northeast-2.amazonaws.com/123456789012/results \\
          --parity-log /var/log/nginx/hookshift-parity.log --archive /var/lib/hookshift/archive
      hookshift cutover advance --state cutover.jsonl --reload
      hookshift cutover status --state cutover.jsonl
      hookshift cutover rollback --state cutover.jsonl --reload
    """


@cutover.command("init")
@_STATE
@_settings_options
@_FORMAT
def init(state_path: Path, output_format: str, **kwargs: Any) -> None:
    """Start a cut-over journal at `baseline`, recording the settings and the config's hashes.

    \b
    Example:
      hookshift cutover init --state cutover.jsonl --config /etc/nginx/nginx.conf \\
          --path /callback --stage-url https://abc.execute-api.ap-northeast-2.amazonaws.com/prod
    """
    with _interruptible(state_path):
        done = api.init(state_path, Settings().override(**_pop_settings(kwargs)), notice=diag)
    with stdout_guard(f" (the journal {state_path} was started at baseline)"):
        if output_format == "json":
            emit_json(done.to_json())
            return
        click.echo(f"baseline: {stages.STAGE_SUMMARY['baseline']}")
        click.echo(f"journal: {state_path} ({len(done.files)} nginx file(s) recorded)")
        click.echo(f"next: hookshift cutover advance --state {state_path} --reload")


@cutover.command("status")
@_STATE
@_FORMAT
def status(state_path: Path, output_format: str) -> None:
    """Show the current stage, the last gate results and the journal's history.

    \b
    Example:
      hookshift cutover status --state cutover.jsonl --format json
    """
    result = api.status(state_path, notice=diag)
    with stdout_guard():
        if output_format == "json":
            emit_json(result.to_json())
        else:
            _print_status(result)


def _print_status(result: api.StatusResult) -> None:
    current = result.journal
    click.echo(f"stage: {result.stage} ({result.summary})")
    opened = result.open_transition
    if opened:
        click.echo(
            f"open:  {opened.from_stage} -> {opened.to_stage} (entry #{opened.seq}, not finished)"
        )
    if not current.chained:
        click.echo("note:  this journal predates the hash chain: edits to it are not detected")
    if result.entered:
        click.echo(f"since: {result.entered.time}")
    if result.next_stage:
        click.echo(f"next:  {result.next_stage}, gates: {', '.join(result.gates)}")
    last = result.last_advance
    if last is not None:
        click.echo(
            f"gates of the last advance (#{last.seq}, {last.from_stage} -> {last.to_stage}):"
        )
        for gate in last.gates:
            mark = "ok  " if gate.get("passed") else "FAIL"
            click.echo(f"  {mark} {gate.get('gate')}: {gate.get('why')}")
    click.echo("history:")
    for entry in current.entries:
        if entry.action == "begin" and entry is not current.pending:
            continue  # its commit or abort line follows; the JSON history keeps every entry
        files = f", {len(entry.files)} file(s) changed" if entry.files else ""
        origin = f"{entry.from_stage} -> " if entry.from_stage else ""
        shown = entry.to_stage
        voided = _voided(current, entry)
        if voided is not None:  # "abort X -> X" would not say which transition was not made
            origin, shown = f"{voided.from_stage} -> ", voided.to_stage
        note = f"  # {entry.note}" if entry.note else ""
        click.echo(
            f"  {entry.seq:>3}  {entry.time}  {entry.action:<8} {origin}{shown}{files}{note}"
        )


def _voided(current: journal.Journal, entry: journal.Entry) -> journal.Entry | None:
    """The intent an ``abort`` entry voids (its ``begin``), when the journal names it."""
    seq = entry.evidence.get("intent") if entry.action == "abort" else None
    if not isinstance(seq, int) or not 0 < seq <= len(current.entries):
        return None
    begun = current.entries[seq - 1]
    return begun if begun.action == "begin" and begun.from_stage is not None else None


def _print_gates(check: stages.TransitionCheck) -> None:
    for result in check.results:
        mark = "ok  " if result.passed else "FAIL"
        click.echo(f"{mark} {result.gate}: {result.why}")


def _vendor_instruction(url: str | None, path: str | None) -> str:
    return (
        "ACTION REQUIRED: change the callback URL registered at the vendor to\n"
        f"    {url}\n"
        f"  (it replaces the URL that reaches this nginx at {path}). nginx now forwards\n"
        "  any straggler (vendor retries, in-flight results) to that URL, so nothing bypasses\n"
        "  the queue. Then run `hookshift cutover advance` again once the vendor calls the\n"
        "  domain directly and nginx has been quiet for --quiet-period."
    )


def _print_settled(settled: api.Settled | None, output_format: str) -> bool:
    """Say that settling an interrupted transition already did what was asked (if it did)."""
    if settled is None:
        return False
    if output_format == "json":
        emit_json(settled.to_json())
    diag("ok", f"the cut-over is at {settled.stage}: nothing more to do")
    return True


@cutover.command("advance")
@_STATE
@_settings_options
@click.option("--reload", is_flag=True, help="Reload nginx after the change (nginx -s reload).")
@click.option(
    "--dry-run",
    is_flag=True,
    help="Run the advance's checks and gates; change neither nginx nor the journal.",
)
@_ADOPT
@click.option(
    "--dedup-confirmed",
    is_flag=True,
    help="mirror-domain: the consumer deduplicates, so the queue need not be drained.",
)
@_FORMAT
def advance(
    state_path: Path,
    reload: bool,
    dry_run: bool,
    adopt_edits: bool,
    dedup_confirmed: bool,
    output_format: str,
    **kwargs: Any,
) -> None:
    """Check the gates out of the current stage; if all pass, move to the next stage.

    Refuses with exit 1, listing every gate that is not met and why. The settings recorded at
    init are used; an option given here replaces its setting for this run only.

    \b
    Examples:
      hookshift cutover advance --state cutover.jsonl --dry-run
      hookshift cutover advance --state cutover.jsonl --reload
      hookshift cutover advance --state cutover.jsonl --min-window 86400 --min-events 5000
    """
    with _interruptible(state_path):
        result = api.advance(
            state_path,
            overrides=_pop_settings(kwargs),
            reload=reload,
            dry_run=dry_run,
            adopt_edits=adopt_edits,
            dedup_confirmed=dedup_confirmed,
            notice=diag,
        )
    moved = result.advanced or result.settled is not None
    with stdout_guard(_moved(result.from_stage, result.to_stage, result.settled) if moved else ""):
        _print_advance(result, output_format)
    if result.settled is not None:
        return
    check = result.check
    assert check is not None
    if not result.advanced:
        if not check.passed:
            failed = ", ".join(r.gate for r in check.failed)
            diag(
                "error",
                f"not advancing {result.from_stage} -> {result.to_stage}: gate(s) not met: "
                f"{failed}",
            )
            raise click.exceptions.Exit(1)
        diag("info", f"dry run: every gate out of {result.from_stage} passes; nothing changed")
        return
    if result.settled is None and result.files and not reload:
        diag("warning", NOT_RELOADED)


#: Files changed without --reload: the running nginx keeps the config it last loaded, and the
#: next gates (parity over the mirror's copies) would measure that instead of the new stage.
NOT_RELOADED = (
    "nginx was not reloaded: it keeps serving the config it last loaded until it is "
    "(nginx -s reload, or --reload next time)"
)


def _moved(from_stage: str, to_stage: str | None, settled: api.Settled | None) -> str:
    """What an output failure after a transition must not hide: where the cut-over now is."""
    if settled is not None:
        return f" (the cut-over is at {settled.stage}: `hookshift cutover status` shows it)"
    return f" (the cut-over moved {from_stage} -> {to_stage}: `hookshift cutover status` shows it)"


def _print_advance(result: api.AdvanceResult, output_format: str) -> None:
    if _print_settled(result.settled, output_format):
        return
    check = result.check
    assert check is not None
    if output_format == "json":
        emit_json(result.to_json())
        return
    _print_gates(check)
    if not result.advanced:
        return
    target = str(result.to_stage)
    click.echo(f"advanced: {result.from_stage} -> {target} ({stages.STAGE_SUMMARY[target]})")
    for change in result.files:
        click.echo(f"  changed {change.path}")
    if target == "vendor-switched":
        click.echo(_vendor_instruction(result.vendor_url, result.settings.path))
    if result.report is not None:
        click.echo(f"final report: {result.report}")


@cutover.command("rollback")
@_STATE
@_nginx_overrides
@click.option("--reload", is_flag=True, help="Reload nginx after the change.")
@_ADOPT
@_FORMAT
def rollback(
    state_path: Path,
    config: Path | None,
    nginx_bin: str | None,
    nginx_prefix: Path | None,
    reload: bool,
    adopt_edits: bool,
    output_format: str,
) -> None:
    """Return to the previous stage; nginx's files come back byte-identical.

    --config, --nginx-bin and --nginx-prefix replace what init recorded, for this run only
    (nginx moved, or runs with another -p).

    \b
    Example:
      hookshift cutover rollback --state cutover.jsonl --reload
    """
    try:
        with _interruptible(state_path):
            result = api.rollback(
                state_path,
                config=str(config) if config else None,
                nginx_bin=nginx_bin,
                nginx_prefix=str(nginx_prefix) if nginx_prefix else None,
                reload=reload,
                adopt_edits=adopt_edits,
                notice=diag,
            )
    except api.NotByteIdentical as exc:  # done and recorded: its result is data, as a gate's
        with stdout_guard(_moved(exc.result.from_stage, exc.result.to_stage, None)):
            _print_rollback(exc.result, output_format)
        raise
    with stdout_guard(_moved(result.from_stage, result.to_stage, result.settled)):
        _print_rollback(result, output_format)
    if result.settled is None and result.files and not reload:
        diag("warning", NOT_RELOADED)
    if result.settled is None and result.reminder:
        diag("warning", result.reminder)


def _print_rollback(result: api.RollbackResult, output_format: str) -> None:
    if _print_settled(result.settled, output_format):
        return
    if output_format == "json":
        emit_json(result.to_json())
        return
    target = result.to_stage
    click.echo(f"rolled back: {result.from_stage} -> {target} ({stages.STAGE_SUMMARY[target]})")
    for change in result.files:
        click.echo(f"  restored {change.path} (sha256 {str(change.sha256_after)[:12]})")
    if result.byte_identical:
        click.echo(f"nginx files are byte-identical to {target} ({result.checked} checked)")


@click.command("probe")
@click.argument("url")
@click.option("--queue", help="Where to find the marker: sqs:QUEUE_URL, archive:DIR, jsonl:FILE.")
@click.option("--endpoint-url", help="SQS endpoint (default: AWS).")
@click.option("--region", help="AWS region of the queue.")
@click.option("--resolver", help="DNS server ADDR[:PORT] to resolve the URL's host with.")
@click.option("--ca-file", help="CA bundle to verify the certificate (a private CA).")
@click.option(
    "--expect-target",
    metavar="d-XXXX.execute-api.REGION.amazonaws.com",
    help="The custom domain's target, to check an alias A record against.",
)
@click.option(
    "--execution-log",
    metavar="cloudwatch:LOG_GROUP|FILE",
    help="The stage's execution log, to name SQS's answer behind a 5xx or a lost 200 "
    "(cloudwatch:API-Gateway-Execution-Logs_APIID/STAGE).",
)
@click.option(
    "--timeout",
    type=float,
    default=10.0,
    show_default=True,
    help="Seconds each step may take: DNS (at most 3), the TLS handshake (5), the POST (10), "
    "and the search for the marker in the queue.",
)
@_FORMAT
def probe(
    url: str,
    queue: str | None,
    endpoint_url: str | None,
    region: str | None,
    resolver: str | None,
    ca_file: str | None,
    expect_target: str | None,
    execution_log: str | None,
    timeout: float,
    output_format: str,
) -> None:
    """POST a synthetic callback with a unique marker to URL and find it in the queue.

    Every failure on the way (DNS, TLS, API Gateway, SQS) comes back as its cause and the fix.
    Exit 0 when the probe landed intact (or, without --queue, API Gateway accepted it), 1 when
    not.

    \b
    Examples:
      hookshift probe https://abc123.execute-api.ap-northeast-2.amazonaws.com/prod/callback \\
          --queue sqs:https://sqs.ap-northeast-2.amazonaws.com/123456789012/results
      hookshift probe https://hooks.example.com/callback --queue sqs:URL --format json
    """
    from hookshift.cutover.diagnosis import diagnose
    from hookshift.cutover.probe import QueueSpec, run_probe

    spec = QueueSpec.parse(queue, endpoint_url=endpoint_url, region=region) if queue else None
    observation = run_probe(
        url,
        queue=spec,
        resolver=resolver,
        ca_file=ca_file,
        timeout=timeout,
        execution_log=execution_log,
        expect_target=expect_target,
    )
    result = diagnose(observation)
    with stdout_guard():
        _print_diagnosis(result, output_format)
    if not result.ok:
        raise click.exceptions.Exit(1)


def _print_diagnosis(result: Diagnosis, output_format: str) -> None:
    if output_format == "json":
        emit_json(result.to_json())
        return
    if result.landed:
        click.echo(f"landed: the probe reached the queue through {result.url}")
    elif result.landed is None and result.ok:
        click.echo(f"accepted: {result.url} took the probe (no --queue: not looked for)")
    else:
        click.echo(f"NOT LANDED: the probe through {result.url} did not reach the queue")
    for finding in result.findings:
        click.echo(f"{finding.severity}: {finding.code}: {finding.cause}")
        if finding.severity != "info":
            click.echo(f"  fix: {finding.fix}")
