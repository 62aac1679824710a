"""``hookshift verify``: pull the queue, check parity, heal what the mirror lost."""

from __future__ import annotations

import functools
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import click

from hookshift.console import apply_options, diag, emit_json, stderr_is_tty
from hookshift.console import out as print_out
from hookshift.errors import InputError
from hookshift.verify.api import os_errors_as_input
from hookshift.verify.pull import NetworkLimits, PullProgress

P = ParamSpec("P")
R = TypeVar("R")
NETWORK_TIMEOUT = click.option(
    "--network-timeout",
    type=click.FloatRange(min=0.1, max=30),
    default=NetworkLimits.read_s,
    show_default=True,
    help="Seconds an SQS call may go unanswered beyond its long poll (one retry).",
)


def _one_line_os_errors(command: Callable[P, R]) -> Callable[P, R]:
    """A path the system refuses (not writable, not a directory, a full disk) as one line."""

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        with os_errors_as_input():
            return command(*args, **kwargs)

    return run


@click.group("verify")
def verify() -> None:
    """Evidence that the new path (API Gateway -> SQS) gets every callback the old one gets.

    \b
    hookshift verify pull   --queue-url URL --archive DIR [--delete]
    hookshift verify parity --app nginx:/var/log/nginx/hookshift-parity.log* --queue archive:DIR
    hookshift verify heal   --report report.json --to https://STAGE_URL [--apply]
    hookshift verify pull   --queue-url URL --archive DIR --delete --follow   (the mirror period)
    hookshift verify watch  --app SOURCE --queue archive:DIR --state DIR
    hookshift verify units  --user hookshift --queue-url URL --archive DIR --state DIR --app SOURCE
    """


def _follow_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The options of `pull --follow` (the run that drains the queue for the mirror period)."""
    options = [
        click.option(
            "--follow",
            is_flag=True,
            help="Keep pulling until SIGTERM/SIGINT (needs --delete); see `verify units`.",
        ),
        click.option(
            "--window",
            default=None,
            metavar="DURATION",
            help="The planned mirror period (default with --follow: 7d); warns when the queue"
            " keeps messages for less than this plus --retention-margin.",
        ),
        click.option("--retention-margin", default="1d", show_default=True, metavar="DURATION"),
        click.option(
            "--segment-mb",
            type=click.IntRange(min=1),
            default=256,
            show_default=True,
            help="With --follow: start a new archive segment past this size.",
        ),
        click.option(
            "--segment-age",
            default="1h",
            show_default=True,
            metavar="DURATION",
            help="With --follow: start a new archive segment after this long.",
        ),
        click.option(
            "--state-file",
            type=click.Path(dir_okay=False, path_type=Path),
            default=None,
            help="With --follow: the heartbeat file (default: ARCHIVE/follow-state.json).",
        ),
        click.option(
            "--metrics-file",
            type=click.Path(dir_okay=False, path_type=Path),
            default=None,
            help="With --follow: Prometheus text file for node_exporter's textfile collector.",
        ),
    ]
    return apply_options(command, options)


@verify.command("pull")
@click.option("--queue-url", required=True, help="The SQS queue URL.")
@click.option(
    "--archive",
    "archive_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Archive directory (created; a rerun continues it).",
)
@click.option("--endpoint-url", default=None, help="SQS endpoint (e.g. a local moto server).")
@click.option(
    "--region",
    default=None,
    help="AWS region (default: the one in an sqs.REGION.amazonaws.com URL, else the AWS "
    "config's); a queue URL of an --endpoint-url names none: give the queue's.",
)
@click.option("--delete", is_flag=True, help="Delete each message once it is durably archived.")
@click.option(
    "--max",
    "max_messages",
    type=click.IntRange(min=1),
    default=None,
    help="Stop after this many messages.",
)
@click.option("--workers", type=click.IntRange(1, 64), default=4, show_default=True)
@click.option(
    "--wait-time",
    type=click.IntRange(0, 20),
    default=20,
    show_default=True,
    help="Long-poll seconds per receive.",
)
@click.option(
    "--idle-polls",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="A worker stops after this many empty long polls in a row.",
)
@NETWORK_TIMEOUT
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text")
@_follow_options
@_one_line_os_errors
def pull_command(
    queue_url: str,
    archive_dir: Path,
    endpoint_url: str | None,
    region: str | None,
    delete: bool,
    max_messages: int | None,
    workers: int,
    wait_time: int,
    idle_polls: int,
    network_timeout: float,
    output_format: str,
    **follow_args: Any,
) -> None:
    """Copy a queue into a crash-safe archive (JSONL segments keyed on MessageId).

    Messages are archived and fsync'ed before they are deleted, so a crash or kill -9 at any
    point followed by a rerun leaves every message in the archive exactly once. Without
    --delete the queue keeps its messages, but each received one is hidden from the real
    consumer for the queue's visibility timeout.

    \b
    Examples:
      hookshift verify pull --queue-url https://sqs.ap-northeast-2.amazonaws.com/123/cb \\
          --archive ./archive --delete
      hookshift verify pull --queue-url http://127.0.0.1:5000/123456789012/cb --archive ./a \\
          --endpoint-url http://127.0.0.1:5000 --region ap-northeast-2
      hookshift verify pull --queue-url URL --archive /var/lib/hookshift/archive --delete \\
          --follow --window 7d
    """
    from hookshift.verify.api import PullOptions, pull
    from hookshift.verify.pull import check_queue_url

    check_queue_url(queue_url, endpoint_url)
    common = (queue_url, archive_dir, endpoint_url, region, delete, workers, wait_time)
    if _pull_follow(*common, max_messages=max_messages, output_format=output_format, **follow_args):
        return

    options = PullOptions(
        endpoint_url=endpoint_url,
        region=region,
        delete=delete,
        max_messages=max_messages,
        workers=workers,
        wait_time_s=wait_time,
        idle_polls=idle_polls,
        network=NetworkLimits(connect_s=network_timeout, read_s=network_timeout),
    )
    with _pull_bar() as progress:
        result = pull(
            queue_url,
            archive_dir,
            options,
            progress=progress,
            notice=lambda text: diag("warning", text),
        )
    if output_format == "json":
        emit_json({"archive": str(archive_dir), **result.__dict__})
        return
    print_out(
        f"received {result.received}, newly archived {result.archived}, already archived "
        f"{result.already_archived}, deleted {result.deleted}; archive holds "
        f"{result.archive_total} message(s) in {archive_dir}"
    )
    if result.delete_failures:
        diag("warning", f"{result.delete_failures} delete(s) failed: they will be received again")


@contextmanager
def _pull_bar() -> Iterator[PullProgress]:
    """A bar on stderr for the messages pulled, drawn once the pull knows how many to expect."""
    with ExitStack() as stack:
        bars: list[Any] = []

        def step(received: int, expected: int | None) -> None:
            if not bars:
                bar = click.progressbar(
                    length=max(expected or 0, 1), label="pulling", file=sys.stderr
                )
                bars.append(stack.enter_context(bar))
            bars[0].update(received - bars[0].pos)

        yield step


def _pull_follow(
    queue_url: str,
    archive_dir: Path,
    endpoint_url: str | None,
    region: str | None,
    delete: bool,
    workers: int,
    wait_time: int,
    *,
    max_messages: int | None,
    output_format: str,
    follow: bool,
    window: str | None,
    retention_margin: str,
    segment_mb: int,
    segment_age: str,
    state_file: Path | None,
    metrics_file: Path | None,
) -> bool:
    """`pull --follow` (returns True once it stopped), and the retention check of `--follow`
    and `--window` (a one-shot pull then goes on as usual: returns False)."""
    if not follow and window is None:
        return False
    import threading

    from hookshift.verify.follow import FollowOptions, stop_on_signals
    from hookshift.verify.follow import follow as follow_queue
    from hookshift.verify.pull import queue_attributes, sqs_client
    from hookshift.verify.retention import check_retention, parse_duration

    window_s = parse_duration(window or "7d", "--window")
    margin_s = parse_duration(retention_margin, "--retention-margin")
    age_s = parse_duration(segment_age, "--segment-age")
    if follow and not delete:
        raise InputError(
            "--follow needs --delete",
            fix="add --delete: a follow without it would receive the same messages forever",
        )
    if follow and max_messages is not None:
        raise InputError("--max and --follow exclude each other", fix="drop one of them")
    if follow:
        _check_follow_outputs(archive_dir, state_file, metrics_file)
    # the first call: a queue that cannot be reached fails here, in one line (sqs_failure)
    attrs = queue_attributes(
        sqs_client(queue_url, endpoint_url, region),
        queue_url,
        ("MessageRetentionPeriod",),
        endpoint_url=endpoint_url,
        region=region,
    )
    period = attrs.get("MessageRetentionPeriod")
    retention = int(period) if period and period.isdigit() else None
    finding = check_retention(retention, window_s, margin_s, queue=queue_url)
    if finding is not None:
        diag("warning", finding.line())
    if not follow:
        return False
    options = FollowOptions(
        endpoint_url=endpoint_url,
        region=region,
        delete=delete,
        workers=workers,
        wait_time_s=wait_time,
        segment_bytes=segment_mb * 1024 * 1024,
        segment_seconds=float(age_s),
        state_file=state_file,
        metrics_file=metrics_file,
    )
    stop = threading.Event()
    with stop_on_signals(stop, lambda text: diag("info", text)):
        state = follow_queue(
            queue_url,
            archive_dir,
            stop,
            options,
            notice=lambda text: diag("info", text),
            retention_s=retention,
        )
    if output_format == "json":
        emit_json(state.to_dict())
    else:
        click.echo(
            f"stopped: received {state.received}, newly archived {state.archived}, deleted "
            f"{state.deleted}; archive holds {state.archive_total} message(s) in {archive_dir}"
        )
    return True


def _check_follow_outputs(
    archive_dir: Path, state_file: Path | None, metrics_file: Path | None
) -> None:
    """The heartbeat and the metrics file are rewritten all the time: never over the archive's
    segments or index, and only in a directory that exists (the archive, which the pull
    creates, counts as one)."""
    import os

    from hookshift.verify.outputs import check_not_input, check_output
    from hookshift.verify.sources import SourceSpec

    archive = [SourceSpec("queue", "archive", str(archive_dir))]
    for option, path in (("--state-file", state_file), ("--metrics-file", metrics_file)):
        if path is None:
            continue
        if os.path.abspath(path.parent) == os.path.abspath(archive_dir):
            check_not_input(path, option, archive)
        else:
            check_output(path, option, archive)


def _comparison_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The key and window options `parity` and `watch` share: one declaration, so the two
    commands cannot drift apart in what they accept."""
    options = [
        click.option(
            "--key",
            default=None,
            help="request_id | json:FIELD[.SUB] | form:FIELD | sha256, joined with +.",
        ),
        click.option(
            "--profile",
            type=click.Choice(["bizppurio"]),
            default=None,
            help="A named key: bizppurio = json:MSGID+json:RESULT.",
        ),
        click.option("--since", default=None, help="Window start (ISO 8601 or epoch seconds)."),
        click.option("--until", default=None, help="Window end (ISO 8601 or epoch seconds)."),
        click.option(
            "--grace",
            type=click.FloatRange(min=0),
            default=30.0,
            show_default=True,
            help="Seconds before the window's end in which a missing message is in flight.",
        ),
        click.option(
            "--min-events",
            type=click.IntRange(min=0),
            default=1,
            show_default=True,
            help="Fail unless at least this many callbacks were compared.",
        ),
    ]
    return apply_options(command, options)


@verify.command("parity")
@click.option(
    "--app",
    "app_source",
    required=True,
    metavar="SOURCE",
    help="nginx:PATH (parity log, globs, .gz), jsonl:PATH or csv:PATH.",
)
@click.option(
    "--queue",
    "queue_source",
    required=True,
    metavar="SOURCE",
    help="sqs:QUEUE_URL, archive:DIR or jsonl:PATH (AWS CLI Message objects).",
)
@_comparison_options
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "json", "md", "html"]),
    default="text",
    show_default=True,
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the report to this file (atomically) instead of stdout.",
)
@click.option(
    "--redact/--no-redact", default=True, show_default=True, help="Mask phone numbers in samples."
)
@click.option("--strict", is_flag=True, help="A malformed record is an error (exit 2).")
@click.option("--samples", type=click.IntRange(min=0), default=5, show_default=True)
@click.option("--app-body-field", default="body", show_default=True)
@click.option("--app-id-field", default="request_id", show_default=True)
@click.option("--app-time-field", default="time", show_default=True)
@click.option(
    "--stage-url",
    "stage_urls",
    multiple=True,
    metavar="URL",
    help="The stage (or domain) URL the mirror sends to; the report names it, and "
    "`verify heal` sends only there (repeatable).",
)
@click.option("--endpoint-url", default=None, help="SQS endpoint for sqs: sources.")
@click.option("--region", default=None, help="AWS region for sqs: sources.")
@NETWORK_TIMEOUT
@click.option("--memory-limit", default="1GB", show_default=True, help="DuckDB memory limit.")
@click.option("--threads", type=click.IntRange(min=1), default=None)
@click.option(
    "--temp-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Where DuckDB spills (default: the system temp directory).",
)
@click.pass_context
@_one_line_os_errors
def parity_command(
    ctx: click.Context,
    app_source: str,
    queue_source: str,
    key: str | None,
    profile: str | None,
    since: str | None,
    until: str | None,
    grace: float,
    min_events: int,
    output_format: str,
    out: Path | None,
    redact: bool,
    strict: bool,
    samples: int,
    app_body_field: str,
    app_id_field: str,
    app_time_field: str,
    stage_urls: tuple[str, ...],
    endpoint_url: str | None,
    region: str | None,
    network_timeout: float,
    memory_limit: str,
    threads: int | None,
    temp_dir: str | None,
) -> None:
    """Match what nginx passed to the app against what reached the queue; give a verdict.

    PASS when nothing nginx passed to the app (accepted or rejected) is missing in the queue,
    nothing arrived with another body, and at least --min-events callbacks were compared. Exit
    0 pass, 1 fail, 2 bad input.

    \b
    Examples:
      hookshift verify parity --app 'nginx:/var/log/nginx/hookshift-parity.log*' \\
          --queue archive:./archive --profile bizppurio
      hookshift verify parity --app nginx:parity.log --queue sqs:URL --format html --out r.html
      hookshift verify parity --app jsonl:app-export.jsonl --app-body-field payload \\
          --queue jsonl:messages.json --key json:MSGID --since 2026-11-28T09:00Z
    """
    from hookshift.verify.api import check_window, parity
    from hookshift.verify.parity import ParityOptions, parse_time
    from hookshift.verify.report import check_report_path, render, write_report
    from hookshift.verify.sources import AppFields

    options = ParityOptions(
        key=key,
        profile=profile,
        since_ms=parse_time(since, "--since") if since else None,
        until_ms=parse_time(until, "--until") if until else None,
        grace_s=grace,
        min_events=min_events,
        samples=samples,
        strict=strict,
        redact=redact,
        app_fields=AppFields(app_body_field, app_id_field, app_time_field),
        memory_limit=memory_limit,
        threads=threads,
        temp_dir=temp_dir,
        endpoint_url=endpoint_url,
        region=region,
        network=NetworkLimits(connect_s=network_timeout, read_s=network_timeout),
        stage_urls=stage_urls,
    )
    check_window(options)
    if out is not None:
        # before the run: a long run must not end in a refusal, nor in overwriting its input
        from hookshift.verify.outputs import check_output
        from hookshift.verify.sources import parse_source

        check_report_path(out)
        check_output(
            out, "--out", [parse_source(app_source, "app"), parse_source(queue_source, "queue")]
        )
    with _sigterm_as_interrupt(), _phase_bar() as progress:
        report = parity(
            app_source,
            queue_source,
            options,
            progress=progress,
            notice=lambda text: diag("warning", text),
        )
    if report.counts["malformed"]:
        diag("warning", f"{report.counts['malformed']} malformed record(s) skipped")
    text = render(report, output_format, tty=out is None and sys.stdout.isatty())
    if out is not None:
        write_report(out, text)
        diag("ok" if report.passed else "warning", f"parity {report.verdict}: {report.reason}")
        diag("info", f"report written to {out}")
    else:
        print_out(text, nl=False)
    ctx.exit(report.exit_code)


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (a stopped service, `timeout`) unwinds the run as Ctrl-C does: the temporary
    directory, which holds the messages an sqs: source pulled and what DuckDB spilled, is
    removed instead of left behind, and no report is written."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def _phase_bar() -> Iterator[Callable[[str], None] | None]:
    """A bar on stderr through verify/parity.py's PHASES, on a terminal only (a pipe or a log
    gets nothing: the report and one-line diagnostics stay what they are)."""
    if not stderr_is_tty():
        yield None
        return
    from hookshift.verify.parity import PHASES

    with click.progressbar(
        length=len(PHASES),
        label="parity",
        file=sys.stderr,
        show_eta=False,
        item_show_func=lambda phase: phase,
    ) as bar:
        started: list[str] = []

        def step(phase: str) -> None:
            bar.update(1 if started else 0, phase)
            if not started:
                bar.render_progress()  # a step of 0 draws nothing: show the first phase now
            started.append(phase)

        yield step
        bar.update(1, "done")


@verify.command("watch")
@click.option(
    "--app", "app_source", required=True, metavar="SOURCE", help="nginx:PATH or jsonl:PATH."
)
@click.option(
    "--queue",
    "queue_source",
    required=True,
    metavar="SOURCE",
    help="archive:DIR (what `pull --follow` fills) or jsonl:PATH.",
)
@click.option(
    "--state",
    "state_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="State directory (created; a restart continues it).",
)
@click.option("--interval", default="30s", show_default=True, metavar="DURATION")
@click.option("--once", is_flag=True, help="One update, then exit 0 on pass, 1 on fail.")
@_comparison_options
@click.option(
    "--follow-state",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="pull --follow's state file (default for archive:DIR: DIR/follow-state.json).",
)
@click.option(
    "--stale-after",
    default="15m",
    show_default=True,
    metavar="DURATION",
    help="Alert when the pull has not succeeded for this long.",
)
@click.option(
    "--metrics-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Prometheus text file (e.g. /var/lib/node_exporter/textfile/hookshift.prom).",
)
@click.option("--metrics-listen", default=None, metavar="HOST:PORT", help="Serve /metrics.")
@click.option(
    "--html",
    "html_path",
    type=click.Path(path_type=Path),  # checked by _check_html_path: one line, the user's words
    default=None,
    help="HTML report rewritten at each update (owner-only); the page reloads every --interval.",
)
@click.option(
    "--alert-cmd",
    default=None,
    metavar="COMMAND",
    help="Shell command run once per incident (env HOOKSHIFT_ALERT, HOOKSHIFT_ALERT_MESSAGE).",
)
@click.option(
    "--rearm-after",
    default="10m",
    show_default=True,
    metavar="DURATION",
    help="A loss incident ends when missing_in_queue has not grown for this long.",
)
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text")
@click.pass_context
def watch_command(
    ctx: click.Context,
    app_source: str,
    queue_source: str,
    state_dir: Path,
    interval: str,
    once: bool,
    key: str | None,
    profile: str | None,
    since: str | None,
    until: str | None,
    grace: float,
    min_events: int,
    follow_state: Path | None,
    stale_after: str,
    metrics_file: Path | None,
    metrics_listen: str | None,
    html_path: Path | None,
    alert_cmd: str | None,
    rearm_after: str,
    output_format: str,
) -> None:
    """Keep the parity result current as the parity log and the archive grow.

    Each update reads only the lines added since the last one (rotated and compressed logs are
    followed) and gives the classes and verdict `verify parity` gives over the same files. The
    result is in STATE/watch-state.json; metrics and alerts as asked. Runs until SIGTERM/SIGINT.

    \b
    Examples:
      hookshift verify watch --app 'nginx:/var/log/nginx/hookshift-parity.log*' \\
          --queue archive:/var/lib/hookshift/archive --state /var/lib/hookshift/watch \\
          --profile bizppurio --metrics-file /var/lib/node_exporter/textfile/hookshift.prom \\
          --alert-cmd 'notify-team "$HOOKSHIFT_ALERT_MESSAGE"'
      hookshift verify watch --app nginx:parity.log --queue archive:./a --state ./w --once
      hookshift verify watch --app nginx:parity.log --queue archive:./a --state ./w \\
          --html ./w/parity.html --interval 10s
    """
    import sqlite3
    import threading

    from hookshift.errors import OperationError
    from hookshift.verify.follow import stop_on_signals
    from hookshift.verify.metrics import Family, MetricsServer
    from hookshift.verify.parity import ParityOptions, parse_time
    from hookshift.verify.report import render_html, write_report
    from hookshift.verify.retention import parse_duration
    from hookshift.verify.watch import (
        Outputs,
        Watcher,
        missing_dirs,
        publish,
        remove_if_empty,
        system_refusal,
    )

    every = parse_duration(interval, "--interval")
    if queue_source.startswith("archive:"):
        from hookshift.verify.units import check_state_apart

        archive = queue_source.partition(":")[2]
        check_state_apart(Path(archive), state_dir, f"--queue {queue_source}")
    inside_state = [p for p in (html_path, metrics_file) if p is not None]
    made = missing_dirs(state_dir)  # taken back when the watch is refused before a result
    if any(p.absolute().parent == state_dir.absolute() for p in inside_state):
        _make_state_dir(state_dir, metrics_file)
    try:
        if html_path is not None:
            html_path = html_path.absolute()  # the page is rewritten long after a cwd could change
            _check_html_path(html_path)
        _check_watch_outputs(app_source, queue_source, html_path, metrics_file)
        listen = _host_port(metrics_listen) if metrics_listen else None
        beside = follow_state is None and queue_source.startswith("archive:")
        if beside:
            # checked once it exists (Outputs.follow_state_if_there): the pull started with
            # the watch (the units start both at once) writes it a moment after the watch's
            # start; pulls by hand or by timer leave none, and then there is no check
            follow_state = Path(queue_source.partition(":")[2]) / "follow-state.json"
        outputs = Outputs(
            follow_state=follow_state,
            follow_state_if_there=beside,
            stale_s=parse_duration(stale_after, "--stale-after"),
            metrics_file=metrics_file,
            alert_cmd=alert_cmd,
            rearm_s=parse_duration(rearm_after, "--rearm-after"),
        )
        options = ParityOptions(
            key=key,
            profile=profile,
            since_ms=parse_time(since, "--since") if since else None,
            until_ms=parse_time(until, "--until") if until else None,
            grace_s=grace,
            min_events=min_events,
            memory_limit="512MB",
        )
        stop = threading.Event()
        latest: list[list[Family]] = [[]]
        server = MetricsServer(*listen, lambda: latest[0]) if listen else None
        shown: dict[str, int] | None = None
        trouble = _Trouble()
        with Watcher(app_source, queue_source, state_dir, options) as watcher:
            if server is not None:
                server.start()
            try:
                with stop_on_signals(stop, lambda text: diag("info", text)):
                    while True:
                        try:
                            state = watcher.update()
                            latest[0] = publish(state, state_dir, outputs, trouble.notice)
                            if html_path is not None:
                                page = render_html(watcher.report(state), refresh_s=every)
                                write_report(html_path, page)
                        except (OSError, sqlite3.OperationalError) as exc:
                            line = system_refusal(state_dir, exc)
                            if line is None:
                                raise
                            if once:
                                raise OperationError(line) from None
                            trouble.warn(line)  # a service keeps watching, and says it once
                            if stop.wait(every):
                                break
                            continue
                        trouble.round_done()
                        changed = once or state.counts != shown
                        if changed:
                            for line in state.warnings:  # records without the key, clocks
                                diag("warning", line)
                        if changed and output_format == "json":
                            emit_json(state.to_dict())
                        elif changed:
                            click.echo(_watch_line(state.verdict, state.reason, state.counts))
                        shown = state.counts
                        if once or stop.wait(every):
                            break
            finally:
                if server is not None:
                    server.stop()
    except InputError:
        remove_if_empty(made)  # a refused watch leaves no state directory behind
        raise
    ctx.exit((0 if state.passed else 1) if once else 0)


class _Trouble:
    """What keeps a running watch from writing its files (a full disk, a directory it may not
    write): each line said once while the trouble lasts, and its end said too, so that a
    service's journal holds a line per incident, not one per --interval."""

    def __init__(self) -> None:
        self.said: set[str] = set()
        self.this_round = False

    def warn(self, line: str) -> None:
        self.this_round = True
        if line not in self.said:
            self.said.add(line)
            diag("warning", line)

    def notice(self, level: str, text: str) -> None:
        """publish's notices: an output it could not write is trouble; the alerts and what
        became of their command pass as they come."""
        from hookshift.verify.watch import UNWRITABLE

        if level == "warning" and text.startswith(UNWRITABLE):
            self.warn(text)
        else:
            diag(level, text)

    def round_done(self) -> None:
        if not self.this_round and self.said:
            diag("ok", "the watch writes its files again")
            self.said.clear()
        self.this_round = False


def _make_state_dir(state_dir: Path, metrics_file: Path | None) -> None:
    """The state directory, made before the watch makes it because a page or the metrics file
    goes in it: the owner's only (verify.private), unless node_exporter, which runs as a user
    of its own, must read the metrics file in it."""
    from hookshift.verify.private import PRIVATE_DIR, make_dirs

    shared = metrics_file is not None and metrics_file.absolute().parent == state_dir.absolute()
    make_dirs(state_dir, 0o755 if shared else PRIVATE_DIR)


def _check_html_path(path: Path) -> None:
    """Refuse, before the first update, a page the watch could not replace at every update."""
    from hookshift.verify.report import check_report_path

    problem = None if path.parent.is_dir() else f"no directory {path.parent}"
    try:
        check_report_path(path)
    except InputError:
        problem = "not a regular file"
    if problem:
        raise InputError(
            problem, where=f"--html {path}", fix="give the path of a file in an existing directory"
        )


def _check_watch_outputs(
    app_source: str, queue_source: str, html_path: Path | None, metrics_file: Path | None
) -> None:
    """The page and the metrics file are rewritten at every update: never over an input,
    and only in a directory that exists."""
    from hookshift.verify.outputs import check_output
    from hookshift.verify.sources import parse_source

    sources = [parse_source(app_source, "app"), parse_source(queue_source, "queue")]
    for option, path in (("--html", html_path), ("--metrics-file", metrics_file)):
        if path is not None:
            check_output(path, option, sources)


def _watch_line(verdict: str, reason: str, counts: dict[str, int]) -> str:
    named = ("app", "queue", "matched", "missing_in_queue", "missing_in_app", "in_flight")
    return f"parity {verdict}: {reason} (" + ", ".join(f"{n} {counts[n]}" for n in named) + ")"


def _host_port(text: str) -> tuple[str, int]:
    """``--metrics-listen``: a loopback address (``127.0.0.1:9464``, ``[::1]:9464``,
    ``localhost:9464``): the endpoint has no authentication, so only this host reaches it (a
    local scraper, or a proxy the operator puts in front of it, publishes it further)."""
    from hookshift.addresses import is_loopback

    host, sep, port = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InputError(
            f"cannot read {text!r} as HOST:PORT",
            where="--metrics-listen",
            fix="e.g. 127.0.0.1:9464",
        )
    if not is_loopback(host):
        raise InputError(
            f"{host} is not a loopback address: the metrics would be open to other hosts",
            where=f"--metrics-listen {text}",
            fix="listen on 127.0.0.1 or [::1] and scrape there, or use --metrics-file",
        )
    return host, int(port)


@verify.command("units")
@click.option("--user", required=True, help="The dedicated system user both services run as.")
@click.option("--group", default=None, help="Its group (default: the user's name).")
@click.option("--queue-url", required=True, help="The SQS queue URL.")
@click.option("--region", default=None, help="AWS region (default: from the URL).")
@click.option(
    "--archive",
    required=True,
    type=click.Path(path_type=Path),
    help="Absolute archive directory (pull writes, watch reads).",
)
@click.option(
    "--state",
    required=True,
    type=click.Path(path_type=Path),
    help="Absolute state directory of the watch.",
)
@click.option("--app", "app_source", required=True, metavar="SOURCE", help="As for watch.")
@click.option("--profile", type=click.Choice(["bizppurio"]), default=None)
@click.option("--key", default=None)
@click.option("--window", default="7d", show_default=True, metavar="DURATION")
@click.option("--metrics-file", type=click.Path(path_type=Path), default=None)
@click.option("--alert-cmd", default=None, metavar="COMMAND")
@click.option("--log-group", default="adm", show_default=True, help="Group that reads nginx logs.")
@click.option(
    "--env-file",
    type=click.Path(path_type=Path),
    default=Path("/etc/hookshift/aws.env"),
    show_default=True,
    help="Optional file of AWS_* variables for the pull.",
)
@click.option(
    "--hookshift-bin",
    type=click.Path(path_type=Path),
    default=None,
    help="Absolute path of the hookshift the units run, outside home directories (default: "
    "the one running); one not on this machine yet is written with a warning.",
)
@click.option(
    "--out-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
)
def units_command(
    user: str,
    group: str | None,
    queue_url: str,
    region: str | None,
    archive: Path,
    state: Path,
    app_source: str,
    profile: str | None,
    key: str | None,
    window: str,
    metrics_file: Path | None,
    alert_cmd: str | None,
    log_group: str,
    env_file: Path,
    hookshift_bin: Path | None,
    out_dir: Path,
) -> None:
    """Write systemd units for the mirror period: pull --follow and watch, sandboxed.

    Both run as a dedicated user with NoNewPrivileges, ProtectSystem=strict and PrivateTmp;
    they may write only the archive, the state directory and the metrics file's directory.

    \b
    Example (hookshift installed for the services in /opt/hookshift, outside home directories):
      hookshift verify units --user hookshift \\
          --queue-url https://sqs.ap-northeast-2.amazonaws.com/123456789012/cb \\
          --archive /var/lib/hookshift/archive --state /var/lib/hookshift/watch \\
          --app 'nginx:/var/log/nginx/hookshift-parity.log*' --profile bizppurio \\
          --metrics-file /var/lib/node_exporter/textfile/hookshift.prom \\
          --hookshift-bin /opt/hookshift/bin/hookshift --out-dir /etc/systemd/system
    """
    from hookshift.systemd import write_units
    from hookshift.verify.retention import parse_duration
    from hookshift.verify.units import UnitSpec, render_units

    parse_duration(window, "--window")
    spec = UnitSpec(
        hookshift_bin=hookshift_bin,
        user=user,
        group=group,
        queue_url=queue_url,
        region=region,
        archive=archive,
        state=state,
        app_source=app_source,
        profile=profile,
        key=key,
        window=window,
        metrics_file=metrics_file,
        alert_cmd=alert_cmd,
        log_group=log_group,
        env_file=env_file,
    )
    units = render_units(spec)
    if not out_dir.is_dir():  # a mistyped path must not grow a tree of directories
        raise InputError(
            "no such directory",
            where=f"--out-dir {out_dir}",
            fix="give an existing directory, e.g. --out-dir /etc/systemd/system",
        )
    missing = spec.missing_here()
    if missing is not None:
        diag("warning", missing)
    for path in write_units(units, out_dir):
        diag("ok", f"wrote {path}")
    click.echo(_units_setup(user, archive, state, metrics_file, list(units)))


def _units_setup(
    user: str, archive: Path, state: Path, metrics_file: Path | None, units: list[str]
) -> str:
    """The commands that let the units start: systemd refuses to start a service whose
    ReadWritePaths names a directory that does not exist (status 226/NAMESPACE), and the
    sandbox lets the service write only where its user may: the archive and the state are the
    user's only (they hold callbacks); the metrics file's directory is the user's too and
    stays readable, for node_exporter."""
    import shlex

    readable = [] if metrics_file is None else [metrics_file.parent]
    private = [p for p in (archive, state) if p not in readable]
    line = f"then, as root: useradd --system --no-create-home {user}; "
    for mode, dirs in (("0700", private), ("0755", readable)):
        if dirs:
            line += (
                f"install -d -o {user} -m {mode} {' '.join(shlex.quote(str(d)) for d in dirs)}; "
            )
    return line + f"systemctl daemon-reload; systemctl enable --now {' '.join(units)}"


@verify.command("heal")
@click.option(
    "--report",
    "report_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="A JSON report of verify parity (--format json --out FILE).",
)
@click.option(
    "--to",
    "target",
    required=True,
    help="The stage URL the mirror sends to (https://.../prod; each replay goes to it + its "
    "callback's request path, as the mirror's copy did), or sqs:QUEUE_URL.",
)
@click.option("--apply", is_flag=True, help="Send (default: dry run, says what it would send).")
@click.option(
    "--ledger",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Ledger of sent replays (default: beside the report).",
)
@click.option(
    "--allow-plain-http-loopback",
    is_flag=True,
    help="Allow an http:// target on this machine (a local test stage); never elsewhere.",
)
@click.option(
    "--i-mean-this-target",
    "other_target",
    is_flag=True,
    help="Send to a target the report's run did not use (its heal_targets).",
)
@click.option(
    "--resolver",
    default=None,
    metavar="ADDR[:PORT]",
    help="DNS server to resolve a stage URL's host with (a private resolver).",
)
@click.option(
    "--ca-file",
    default=None,
    metavar="PATH",
    help="CA bundle to verify a stage URL's certificate with (a private CA).",
)
@click.option("--endpoint-url", default=None, help="SQS endpoint for sqs: targets.")
@click.option("--region", default=None)
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text")
@click.pass_context
@_one_line_os_errors
def heal_command(
    ctx: click.Context,
    report_path: Path,
    target: str,
    apply: bool,
    ledger: Path | None,
    allow_plain_http_loopback: bool,
    other_target: bool,
    resolver: str | None,
    ca_file: str | None,
    endpoint_url: str | None,
    region: str | None,
    output_format: str,
) -> None:
    """Re-send the callbacks the mirror lost (missing_in_queue), marked as replays.

    Bodies come from the app source the report names. To a stage URL each is POSTed with
    `X-Hookshift-Replay: <original request id>`, where the mirror sent its copy: the stage URL
    + the callback's request URI from the parity log (a --to that already ends with that path
    is not given it twice; for an app source without URIs, --to is the full URL). To sqs:URL
    it is sent with the `hookshift_replay` attribute. A ledger, keyed on the place each was
    sent to however the URL is written, makes a second run send nothing twice, and one --apply
    at a time may use it.

    The bodies are sent as the vendor sent them (phone numbers included): only over https,
    and only to a target the report's run used (`heal_targets`: the --stage-url given to
    verify parity, the queue it read) unless --i-mean-this-target.

    With --apply, a stage URL is resolved (at --resolver when given) and its certificate
    checked (against --ca-file when given) before anything is sent: a stage that cannot be
    reached is one line, with nothing sent. A stage that stops answering part-way, or refuses
    3 replays in a row the same way (e.g. 403), stops the run with one line; what was sent is
    in the ledger, and a rerun sends the rest.

    \b
    Examples:
      hookshift verify heal --report report.json --to https://abc.execute-api.../prod
      hookshift verify heal --report report.json --to sqs:https://sqs.../cb --apply
      hookshift verify heal --report report.json --to https://abc.execute-api.../prod \\
          --resolver 10.0.0.2 --ca-file /etc/ssl/private-ca.pem --apply
    """
    from hookshift.verify.api import HealOptions, heal

    options = HealOptions(
        apply=apply,
        ledger=ledger,
        endpoint_url=endpoint_url,
        region=region,
        plain_http_loopback=allow_plain_http_loopback,
        other_target=other_target,
        resolver=resolver,
        ca_file=ca_file,
    )
    result = heal(report_path, target, options)
    if output_format == "json":
        emit_json(result.to_dict())
    else:
        verb = "sent" if apply else "would send"
        listed = result.sent_items if apply else result.to_send
        places = result.places
        where = places[0] if len(places) == 1 else target
        if len(places) > 1:
            where += " + each callback's path"
        print_out(
            f"{verb} {len(listed)} replay(s) to {where}; {result.already_sent} already sent "
            f"earlier (ledger), {len(result.not_found)} not found in the app source"
        )
        for item in listed[:20]:  # only what was sent (or would be): a refused one is no replay
            print_out(f"  {item.shown}  replay of {item.replay_id}")
        if not apply and result.to_send:
            diag("info", "dry run: add --apply to send")
    if result.in_doubt:
        shown = ", ".join(result.in_doubt[:5]) + (" ..." if len(result.in_doubt) > 5 else "")
        diag(
            "warning",
            f"{len(result.in_doubt)} replay(s) held back ({shown}): an earlier run stopped while "
            "sending them, so they may have reached the target; they are sent once a parity "
            "report over the queue read a minute or more after that still lists them missing "
            "(fix: pull the queue, run verify parity again, and heal with that report)",
        )
    for failure in result.failed:
        diag("error", f"not sent: {failure}")
    if result.failed:
        ctx.exit(1)
