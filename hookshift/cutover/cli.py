"""``hookshift cutover init|status|advance|rollback`` and ``hookshift probe``.

The runbook as a program: each ``advance`` gathers the evidence its gate needs, refuses (exit 1)
naming every gate that is not met and why, and otherwise changes nginx through the mirror engine
and appends the transition to the journal. ``rollback`` goes back one stage from anywhere and
proves the nginx files are byte-identical to what they were in that stage.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from hookshift.console import diag, emit_json
from hookshift.cutover import journal, nginx_ops, stages, transition
from hookshift.cutover.diagnosis import Diagnosis
from hookshift.cutover.settings import Settings
from hookshift.errors import InputError, OperationError
from hookshift.mirror.apply import checkpoint
from hookshift.mirror.cli import option_list as mirror_option_list

_FORMAT = click.option(
    "--format", "output_format", type=click.Choice(["text", "json"]), default="text",
    show_default=True, help="text for people, json for scripts.",
)  # fmt: skip
_ADOPT = click.option(
    "--adopt-edits", is_flag=True,
    help="Record nginx edits made outside the cut-over in the journal, then go on.",
)  # fmt: skip
_STATE = click.option(
    "--state", "state_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
    help="The cut-over journal (created by init, appended by every transition).",
)  # fmt: skip


def _settings_options(func: Any) -> Any:
    """The options that set or override the cut-over's settings (all optional)."""
    options = [
        *mirror_option_list(
            "config",
            "path",
            "stage_url",
            recorded=True,
            help={"config": "The main nginx config (its includes are followed)."},
        ),
        click.option("--domain-url", help="The custom domain (and base path), https://..."),
        click.option("--domain-target", help="Its d-XXXX.execute-api.REGION.amazonaws.com name."),
        click.option("--queue", help="sqs:QUEUE_URL, archive:DIR or jsonl:FILE."),
        click.option("--endpoint-url", help="SQS endpoint (default: AWS)."),
        click.option("--region", help="AWS region of the queue."),
        *mirror_option_list("parity_log", recorded=True),
        click.option("--nginx-log", help="Log to count nginx's callbacks (default: parity log)."),
        *mirror_option_list(
            "nginx_bin",
            "resolvers",
            recorded=True,
            help={"resolvers": "DNS resolver ADDR[:PORT] for nginx and the probes (repeatable)."},
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
    for option in reversed(options):
        func = option(func)
    return func


_SETTING_NAMES = (
    "config", "path", "stage_url", "domain_url", "domain_target", "queue", "endpoint_url", "region",
    "parity_log", "nginx_log", "nginx_bin", "resolvers", "ca_file", "server_name", "listen",
    "backup_dir", "relay_socket", "stage_dns", "mirror_error_log", "archive", "watch_state",
    "min_window",
    "min_events", "quiet_period", "probe_timeout", "parity_grace", "execution_log",
)  # fmt: skip


def _pop_settings(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {name: kwargs.pop(name) for name in _SETTING_NAMES}


def _absolute(values: dict[str, Any]) -> dict[str, Any]:
    """File settings made absolute, so the journal works from any directory."""
    out = dict(values)
    files = (
        "config", "parity_log", "nginx_log", "ca_file", "backup_dir", "archive", "mirror_error_log",
        "watch_state",
    )  # fmt: skip
    for name in files:
        if out.get(name):
            out[name] = str(Path(out[name]).absolute())
    log = out.get("execution_log")
    if log and not str(log).startswith("cloudwatch:"):
        out["execution_log"] = str(Path(log).absolute())
    return out


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
def init(state_path: Path, **kwargs: Any) -> None:
    """Start a cut-over journal at `baseline`, recording the settings and the config's hashes.

    \b
    Example:
      hookshift cutover init --state cutover.jsonl --config /etc/nginx/nginx.conf \\
          --path /callback --stage-url https://abc.execute-api.ap-northeast-2.amazonaws.com/prod
    """
    settings = Settings().override(**_absolute(_pop_settings(kwargs)))
    config = settings.need("config", "to record the nginx files of the baseline")
    settings.need("path", "to know the callback location")
    for name in ("stage_url", "domain_url"):
        url = getattr(settings, name)
        if url is not None and not url.startswith("https://"):
            raise InputError(
                f"--{name.replace('_', '-')} {url!r} is not an https URL",
                fix="API Gateway is HTTPS only: https://ID.execute-api.REGION.amazonaws.com/STAGE"
                " or https://your.custom.domain",
            )
    if settings.path and not settings.path.startswith("/"):
        raise InputError(f"--path {settings.path!r} does not start with /", fix="e.g. /callback")
    # recorded as a full path: a later run from cron (PATH without /usr/sbin) uses the same nginx
    settings = settings.override(nginx_bin=nginx_ops.check_binary(settings.nginx_bin))
    if state_path.exists():
        journal.read(state_path)  # a foreign file is reported as such
        raise InputError(
            "state file already exists", where=str(state_path),
            fix="use `hookshift cutover status` on it, or choose another --state path",
        )  # fmt: skip
    files = nginx_ops.hashes(state_path, nginx_ops.config_files(config))
    first = journal.next_entry(
        None, action="init", to_stage="baseline",
        evidence={"files": files}, note="cut-over started",
    )  # fmt: skip
    journal.create(state_path, settings.to_json(), first)
    click.echo(f"baseline: {stages.STAGE_SUMMARY['baseline']}")
    click.echo(f"journal: {state_path} ({len(files)} nginx file(s) recorded)")
    click.echo(f"next: hookshift cutover advance --state {state_path}")


def _load(state_path: Path, overrides: dict[str, Any]) -> tuple[journal.Journal, Settings]:
    current = journal.read(state_path)
    settings = Settings.from_json(current.settings).override(**_absolute(overrides))
    return current, settings


def _resolve(
    current: journal.Journal, settings: Settings, *, repair: bool, adopt: bool = False
) -> transition.Resolution:
    """Settle a transition a killed command left open, saying what became of it."""
    resolution = transition.resolve(current, settings, repair=repair, adopt=adopt)
    if resolution.message:
        level = "warning" if resolution.outcome == "part-way" and not repair else "info"
        diag(level, resolution.message)
    return resolution


def _settled_by_resolution(resolution: transition.Resolution, op: str, output_format: str) -> bool:
    """Whether resolving an interrupted transition already did what this command asks.

    Run again, the interrupted command finishes (completed: done; undone: it is redone). The
    opposite command, run to take the interrupted one back, stops at the stage that one
    started from: it does not go a stage further.
    """
    if resolution.intent is None or resolution.outcome is None:
        return False
    same = resolution.intent.op == op
    settled = resolution.outcome == "done" if same else resolution.outcome != "done"
    if settled:
        stage = resolution.journal.stage
        if output_format == "json":
            emit_json({"stage": stage, "interrupted": resolution.outcome, "changed": False})
        diag("ok", f"the cut-over is at {stage}: nothing more to do")
    return settled


@cutover.command("status")
@_STATE
@_FORMAT
def status(state_path: Path, output_format: str) -> None:
    """Show the current stage, the last gate results and the journal's history.

    \b
    Example:
      hookshift cutover status --state cutover.jsonl --format json
    """
    current = journal.read(state_path)
    interrupted: dict[str, Any] | None = None
    if current.pending is not None:
        try:
            with journal.locked(state_path):
                settings = Settings.from_json(current.settings)
                current = _resolve(journal.read(state_path), settings, repair=False).journal
        except OperationError:  # the lock is held: the transition is running right now
            current = journal.read(state_path)
            diag("info", "a transition is running now (another command holds the journal)")
    if current.pending is not None:
        pending = current.pending
        interrupted = {"seq": pending.seq, "from": pending.from_stage, "to": pending.to_stage}
    entered = current.entered(current.stage)
    nxt = stages.next_stage(current.stage)
    if output_format == "json":
        emit_json(
            {
                "stage": current.stage,
                "open_transition": interrupted,
                "summary": stages.STAGE_SUMMARY[current.stage],
                "entered": entered.time if entered else None,
                "next": nxt,
                "needs": list(stages.needed_evidence(current.stage)),
                "settings": dict(current.settings),
                "history": [e.to_json() for e in current.entries],
            }
        )
        return
    click.echo(f"stage: {current.stage} ({stages.STAGE_SUMMARY[current.stage]})")
    if interrupted:
        click.echo(f"open:  {interrupted['from']} -> {interrupted['to']} "
                   f"(entry #{interrupted['seq']}, not finished)")  # fmt: skip
    if not current.chained:
        click.echo("note:  this journal predates the hash chain: edits to it are not detected")
    if entered:
        click.echo(f"since: {entered.time}")
    if nxt:
        click.echo(f"next:  {nxt}, gates read: {', '.join(stages.needed_evidence(current.stage))}")
    last_advance = next((e for e in reversed(current.entries) if e.action == "advance"), None)
    if last_advance is not None:
        click.echo(
            f"gates of the last advance (#{last_advance.seq}, {last_advance.from_stage} -> "
            f"{last_advance.to_stage}):"
        )
        for gate in last_advance.gates:
            mark = "ok  " if gate.get("passed") else "FAIL"
            click.echo(f"  {mark} {gate.get('gate')}: {gate.get('why')}")
    click.echo("history:")
    for entry in current.entries:
        if entry.action == "begin" and entry is not current.pending:
            continue  # its commit or abort line follows; the JSON history keeps every entry
        files = f", {len(entry.files)} file(s) changed" if entry.files else ""
        origin = f"{entry.from_stage} -> " if entry.from_stage else ""
        click.echo(f"  {entry.seq:>3}  {entry.time}  {entry.action:<8} {origin}{entry.to_stage}"
                   f"{files}{'  # ' + entry.note if entry.note else ''}")  # fmt: skip


def _gather(
    current: journal.Journal, settings: Settings, dedup_confirmed: bool
) -> tuple[stages.Evidence, dict[str, Any]]:
    """Gather the evidence the gate out of the current stage reads (and extra detail)."""
    from hookshift.cutover import evidence as ev

    stage = current.stage
    entered = current.entered(stage)
    entered_at = entered.timestamp if entered else time.time()
    now = time.time()
    found: dict[str, Any] = {}
    detail: dict[str, Any] = {}
    needs = stages.needed_evidence(stage)
    # parity first: it archives the queue, and a probe's receive would hide messages from it
    if "parity" in needs and settings.parity_log and settings.queue:
        found["parity"] = ev.parity(settings, entered_at, now)
    if "doctor" in needs and settings.config:
        found["doctor"] = ev.doctor(settings)
    if "stage_probe" in needs and settings.stage_url and settings.queue:
        found["stage_probe"], diagnosis = ev.probe(settings, "stage_url")
        detail["stage_probe"] = diagnosis.to_json()
    if "domain_probe" in needs and settings.domain_url and settings.queue:
        found["domain_probe"], diagnosis = ev.probe(settings, "domain_url")
        detail["domain_probe"] = diagnosis.to_json()
    if "drain" in needs and (dedup_confirmed or (settings.archive and settings.queue)):
        # drain only once the other gates pass: it deletes from the queue
        pre = stages.check_transition(
            stage, stages.Evidence(**found), entered_at=entered_at,
            thresholds=settings.thresholds,
        )  # fmt: skip
        if all(r.passed for r in pre.results if r.gate != "drain"):
            found["drain"] = ev.drain(settings, dedup_confirmed)
    if "switch" in needs and settings.queue and (settings.nginx_log or settings.parity_log):
        previous = stages.previous_stage(stage)
        before = current.entered(previous) if previous else None
        previous_at = before.timestamp if before else entered_at
        found["switch"], found["quiet"] = ev.switch_and_quiet(
            settings, previous_at, entered_at, now
        )
    return stages.Evidence(**found), detail


def _print_check(check: stages.TransitionCheck, output_format: str, extra: dict[str, Any]) -> None:
    if output_format == "json":
        emit_json(
            {
                "from": check.from_stage,
                "to": check.to_stage,
                "passed": check.passed,
                "gates": [r.to_json() for r in check.results],
                **extra,
            }
        )
        return
    for result in check.results:
        mark = "ok  " if result.passed else "FAIL"
        click.echo(f"{mark} {result.gate}: {result.why}")


def _vendor_instruction(settings: Settings) -> str:
    url = settings.callback_url(settings.domain_url)
    return (
        "ACTION REQUIRED: change the callback URL registered at the vendor to\n"
        f"    {url}\n"
        f"  (it replaces the URL that reaches this nginx at {settings.path}). nginx now forwards\n"
        "  any straggler (vendor retries, in-flight results) to that URL, so nothing bypasses\n"
        "  the queue. Then run `hookshift cutover advance` again once the vendor calls the\n"
        "  domain directly and nginx has been quiet for --quiet-period."
    )


def _final_report(state_path: Path, current: journal.Journal) -> Path:
    """A markdown summary of the whole cut-over, next to the journal."""
    out = state_path.with_name(state_path.name + ".report.md")
    lines = [
        "# hookshift cut-over report",
        "",
        f"Journal: `{state_path}`; final stage: **{current.stage}**.",
        "",
        "| # | time | action | from | to | gates | files changed |",
        "|---|---|---|---|---|---|---|",
    ]
    for e in current.entries:
        gates = "; ".join(f"{g.get('gate')}: {'ok' if g.get('passed') else 'FAIL'}"
                          for g in e.gates) or "-"  # fmt: skip
        lines.append(
            f"| {e.seq} | {e.time} | {e.action} | {e.from_stage or '-'} | {e.to_stage} | "
            f"{gates} | {len(e.files)} |"
        )
    lines += ["", "Gate reasons per transition:", ""]
    for e in current.entries:
        for g in e.gates:
            lines.append(f"- {e.seq} {g.get('gate')}: {g.get('why')}")
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out


@cutover.command("advance")
@_STATE
@_settings_options
@click.option("--reload", is_flag=True, help="Reload nginx after the change (nginx -s reload).")
@click.option("--dry-run", is_flag=True, help="Check the gates only; change nothing.")
@_ADOPT
@click.option(
    "--dedup-confirmed", is_flag=True,
    help="mirror-domain: the consumer deduplicates, so the queue need not be drained.",
)  # fmt: skip
@_FORMAT
def advance(
    state_path: Path, reload: bool, dry_run: bool, adopt_edits: bool, dedup_confirmed: bool,
    output_format: str, **kwargs: Any,
) -> None:  # fmt: skip
    """Check the gates out of the current stage; if all pass, move to the next stage.

    Refuses with exit 1, listing every gate that is not met and why.

    \b
    Examples:
      hookshift cutover advance --state cutover.jsonl --dry-run
      hookshift cutover advance --state cutover.jsonl --reload
      hookshift cutover advance --state cutover.jsonl --min-window 86400 --min-events 5000
    """
    journal.read(state_path)  # a missing or foreign file is reported before any lock file
    with journal.locked(state_path):
        _advance(state_path, reload, dry_run, adopt_edits, dedup_confirmed, output_format, kwargs)


def _advance(
    state_path: Path, reload: bool, dry_run: bool, adopt_edits: bool, dedup_confirmed: bool,
    output_format: str, kwargs: dict[str, Any],
) -> None:  # fmt: skip
    current, settings = _load(state_path, _pop_settings(kwargs))
    target = stages.next_stage(current.stage)
    if target is None and current.pending is None:
        raise InputError(f"the cut-over is already {current.stage}: there is no next stage")
    if not dry_run:
        nginx_ops.check_binary(settings.nginx_bin)
    resolution = _resolve(current, settings, repair=not dry_run, adopt=adopt_edits and not dry_run)
    current = resolution.journal
    if not dry_run and _settled_by_resolution(resolution, "advance", output_format):
        return
    if current.pending is not None:  # a dry run leaves nginx's files as they are
        raise InputError(
            "a transition that was interrupted part-way is still open",
            fix="run `hookshift cutover advance` (without --dry-run) or `rollback` to put "
            "nginx's files back first",
        )
    stage = current.stage
    target = stages.next_stage(stage)
    if target is None:
        raise InputError(f"the cut-over is already {stage}: there is no next stage")
    adopted = _drift(state_path, current, settings, adopt_edits and not dry_run)
    if not dry_run:
        nginx_ops.preflight(settings, target)
    entered = current.entered(stage)
    evidence, detail = _gather(current, settings, dedup_confirmed and not dry_run)
    check = stages.check_transition(
        stage, evidence, entered_at=entered.timestamp if entered else time.time(),
        thresholds=settings.thresholds,
    )  # fmt: skip
    if not check.passed or dry_run:
        _print_check(check, output_format, {"detail": detail, "dry_run": dry_run})
        if not check.passed:
            failed = ", ".join(r.gate for r in check.failed)
            diag("error", f"not advancing {stage} -> {target}: gate(s) not met: {failed}")
            raise click.exceptions.Exit(1)
        diag("info", f"dry run: every gate out of {stage} passes; nothing changed")
        return
    if nginx_ops.SHAPES[target].mode is not None:
        nginx_ops.mirror_request(settings, nginx_ops.SHAPES[target])  # its settings are all set
    begun, intent = transition.begin(
        current, settings, op="advance", target=target, reload=reload,
        after=_after_without_marks(settings, target), adopt=adopted,
        gates=[r.to_json() for r in check.results],
        evidence={**evidence.to_json(), "detail": detail},
    )  # fmt: skip
    try:
        nginx_ops.realize(state_path, settings, stage, target, reload)
        checkpoint("cutover:nginx-changed")
    except (InputError, OperationError, OSError) as exc:
        transition.undo(begun, intent, settings, exc)
    actual, _ = _hashes_now(state_path, settings)
    files = nginx_ops.changes(intent.before, actual)
    updated = transition.commit(begun, intent, files, {}, f"reload={'yes' if reload else 'no'}")
    extra: dict[str, Any] = {"files": [f.to_json() for f in files]}
    if target == "vendor-switched":
        extra["vendor_url"] = settings.callback_url(settings.domain_url)
    if target == "decommissioned":
        extra["report"] = str(_final_report(state_path, updated))
    _print_check(check, output_format, extra)
    if output_format != "json":
        click.echo(f"advanced: {stage} -> {target} ({stages.STAGE_SUMMARY[target]})")
        for change in files:
            click.echo(f"  changed {change.path}")
        if target == "vendor-switched":
            click.echo(_vendor_instruction(settings))
        if target == "decommissioned":
            click.echo(f"final report: {extra['report']}")


@cutover.command("rollback")
@_STATE
@click.option("--config", help="Override the nginx config recorded at init.")
@click.option("--nginx-bin", help="The nginx binary (for nginx -t and reload).")
@click.option("--reload", is_flag=True, help="Reload nginx after the change.")
@_ADOPT
@_FORMAT
def rollback(
    state_path: Path, config: str | None, nginx_bin: str | None, reload: bool,
    adopt_edits: bool, output_format: str,
) -> None:  # fmt: skip
    """Return to the previous stage; nginx's files come back byte-identical.

    \b
    Example:
      hookshift cutover rollback --state cutover.jsonl --reload
    """
    journal.read(state_path)
    with journal.locked(state_path):
        _rollback(state_path, config, nginx_bin, reload, adopt_edits, output_format)


def _rollback(
    state_path: Path, config: str | None, nginx_bin: str | None, reload: bool,
    adopt_edits: bool, output_format: str,
) -> None:  # fmt: skip
    overrides: dict[str, Any] = {name: None for name in _SETTING_NAMES}
    overrides.update(config=config, nginx_bin=nginx_bin)
    current, settings = _load(state_path, overrides)
    nginx_ops.check_binary(settings.nginx_bin)
    resolution = _resolve(current, settings, repair=True, adopt=adopt_edits)
    current = resolution.journal
    if _settled_by_resolution(resolution, "rollback", output_format):
        return
    stage = current.stage
    target = stages.previous_stage(stage)
    if target is None:
        raise InputError("the cut-over is at baseline: there is nothing to roll back")
    adopting = _drift(state_path, current, settings, adopt_edits)
    nginx_ops.preflight(settings, target)
    expected = _expected_files(current, target)
    # edits adopted now are recorded right after the intent (seq + 2), with the commit
    adopted = _adopted_since(current, target) or (current.last.seq + 2 if adopting else None)
    after = expected if not adopted else _after_without_marks(settings, target)
    begun, intent = transition.begin(
        current, settings, op="rollback", target=target, reload=reload, after=after,
        adopt=adopting,
    )  # fmt: skip
    restored: list[str] = []
    try:
        nginx_ops.realize(state_path, settings, stage, target, reload)
        checkpoint("cutover:nginx-changed")
        if not adopted:
            # the engine reproduces a stage's bytes; if it no longer does (hookshift upgraded
            # during the cut-over), the bytes recorded for that stage are written back through it
            restored = nginx_ops.restore(state_path, settings, expected, reload)
            checkpoint("cutover:restored")
    except (InputError, OperationError, OSError) as exc:
        transition.undo(begun, intent, settings, exc)
    actual, _ = _hashes_now(state_path, settings)
    files = nginx_ops.changes(intent.before, actual)
    differ = sorted(p for p in set(expected) | set(actual) if expected.get(p) != actual.get(p))
    if adopted:  # the recorded bytes predate edits the operator adopted: not comparable
        diag(
            "warning",
            f"edits adopted since {target} was entered (entry #{adopted}): the files "
            "are the engine's output for that stage with those edits, not the recorded bytes",
        )
        differ = []
    transition.commit(
        begun, intent, files,
        {"byte_identical": None if adopted else not differ, "differ": differ,
         "restored_from_snapshot": restored},
        f"reload={'yes' if reload else 'no'}",
    )  # fmt: skip
    if differ:
        raise OperationError(
            f"rolled back to {target}, but {len(differ)} file(s) differ from that stage: "
            f"{', '.join(differ)}"
        )
    if output_format == "json":
        emit_json({"from": stage, "to": target, "byte_identical": True,
                   "files": [f.to_json() for f in files]})  # fmt: skip
        return
    click.echo(f"rolled back: {stage} -> {target} ({stages.STAGE_SUMMARY[target]})")
    for change in files:
        click.echo(f"  restored {change.path} (sha256 {str(change.sha256_after)[:12]})")
    if not adopted:
        click.echo(f"nginx files are byte-identical to {target} ({len(expected)} checked)")
    if stage == "vendor-switched":
        diag(
            "warning",
            "nginx proxies to the app again, but the vendor may still call the custom domain: "
            f"register the nginx URL (path {settings.path}) at the vendor again if you are "
            "abandoning the switch, and keep the consumer's deduplication on meanwhile",
        )


def _current_files(current: journal.Journal) -> dict[str, str | None]:
    """The sha256 of every config file as the journal says it is now (after its last entry)."""
    files: dict[str, str | None] = {}
    for entry in current.entries:
        if entry.action == "init":
            files = dict(entry.evidence.get("files", {}))
        for change in entry.files:
            files[change.path] = change.sha256_after
    return files


def _drift(
    state_path: Path, current: journal.Journal, settings: Settings, adopt: bool
) -> list[journal.FileChange]:
    """The nginx edits someone made since the journal's last entry, refused unless adopted.

    hookshift's remove + apply would carry such an edit along, and a rollback would undo it
    without anyone deciding so. With ``--adopt-edits`` the edits are returned, to be recorded
    as an ``adopt`` entry together with the transition that builds on them (a command that
    fails records nothing).
    """
    recorded = _current_files(current)
    actual, _ = _hashes_now(state_path, settings)
    changed = nginx_ops.changes(recorded, actual)
    if changed and not adopt:
        names = ", ".join(c.path for c in changed)
        raise InputError(
            f"nginx file(s) changed outside the cut-over since entry #{current.last.seq} "
            f"({current.stage}): {names}",
            fix="undo the edit, or pass --adopt-edits to record it in the journal and go on",
        )
    return changed


def _hashes_now(state_path: Path, settings: Settings) -> tuple[dict[str, str | None], list[Path]]:
    files = nginx_ops.config_files(settings.need("config", "to check the nginx files"))
    return nginx_ops.hashes(state_path, files), files


def _after_without_marks(settings: Settings, target: str) -> dict[str, str | None] | None:
    """The files after a change to a stage without hookshift's lines: the user's own bytes.

    None for a stage with a mirror or forward, whose bytes only the engine knows.
    """
    if nginx_ops.SHAPES[target].mode is not None:
        return None
    files = nginx_ops.config_files(settings.need("config", "to change nginx"))
    return nginx_ops.user_hashes(files)


def _adopted_since(current: journal.Journal, stage: str) -> int | None:
    """The seq of the first ``adopt`` entry after ``stage`` was last entered (None if none)."""
    entered = current.entered(stage)
    for entry in current.entries:
        if entry.action == "adopt" and (entered is None or entry.seq > entered.seq):
            return entry.seq
    return None


def _expected_files(current: journal.Journal, stage: str) -> dict[str, str | None]:
    """The sha256 of every config file as it was in ``stage`` (replaying the journal)."""
    files: dict[str, str | None] = {}
    state_of: dict[str, dict[str, str | None]] = {}
    for entry in current.entries:
        if entry.action in ("begin", "abort"):  # an intent, or one undone: no stage's files
            continue
        if entry.action == "init":
            files = dict(entry.evidence.get("files", {}))
        for change in entry.files:
            files[change.path] = change.sha256_after
        state_of[entry.to_stage] = dict(files)
    return state_of.get(stage, {})


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
@click.option("--timeout", type=float, default=10.0, show_default=True,
              help="Seconds to wait for the marker in the queue.")  # fmt: skip
@_FORMAT
def probe(
    url: str, queue: str | None, endpoint_url: str | None, region: str | None,
    resolver: str | None, ca_file: str | None, expect_target: str | None,
    execution_log: str | None, timeout: float, output_format: str,
) -> None:  # fmt: skip
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
        url, queue=spec, resolver=resolver, ca_file=ca_file, timeout=timeout,
        execution_log=execution_log, expect_target=expect_target,
    )  # fmt: skip
    result = diagnose(observation)
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
