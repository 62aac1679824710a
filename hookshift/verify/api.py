"""hookshift's verify part from Python: what the ``hookshift verify`` commands do, as calls.

- `pull(queue_url, archive, PullOptions(...))` -> `PullResult`: copy a queue into the crash-safe
  archive (archived and fsync'ed before anything is deleted);
- `parity(app, queue, ParityOptions(...))` -> `ParityReport`: match the app side against the
  queue side and give a verdict (`report.passed`, `report.to_dict()` is the JSON report);
- `heal(report_path, target, HealOptions(...))` -> `HealResult`: re-send what the mirror lost,
  marked as replays, exactly once (a dry run unless ``apply``).

Nothing here prints or exits: progress and notices go to the callbacks a caller passes, and
every failure is a `hookshift.errors.HookshiftError` carrying its exit code (`InputError`,
exit 2, for bad input, before anything is written; `OperationError` for a step that failed).
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from hookshift.errors import InputError
from hookshift.verify.heal import HealResult
from hookshift.verify.parity import ParityOptions, ParityReport
from hookshift.verify.pull import NetworkLimits, PullProgress, PullResult
from hookshift.verify.sources import SourceSpec


@dataclass(frozen=True)
class PullOptions:
    """How a pull reads the queue (``hookshift verify pull``'s options)."""

    endpoint_url: str | None = None  # an SQS endpoint other than AWS's (a local moto server)
    region: str | None = None  # default: the one in the queue URL, else the credential chain's
    delete: bool = False  # delete each message once it is durably archived
    max_messages: int | None = None  # stop after this many
    workers: int = 4
    wait_time_s: int = 20  # long poll per receive, 0..20
    idle_polls: int = 1  # a worker stops after this many empty long polls in a row
    network: NetworkLimits = field(default_factory=NetworkLimits)  # each SQS call's bound


@dataclass(frozen=True)
class HealOptions:
    """How a heal sends (``hookshift verify heal``'s options)."""

    apply: bool = False  # send; without it only say what would be sent
    ledger: Path | None = None  # sent replays (default: beside the report)
    endpoint_url: str | None = None  # for an sqs: target
    region: str | None = None
    plain_http_loopback: bool = False  # an http:// target on this machine (a local test stage)
    other_target: bool = False  # a target the report's run did not use
    resolver: str | None = None  # ADDR[:PORT]: the DNS server that knows a stage URL's host
    ca_file: str | None = None  # the CA bundle a stage URL's certificate is checked against


def pull(
    queue_url: str,
    archive: Path,
    options: PullOptions | None = None,
    *,
    progress: PullProgress | None = None,
    notice: Callable[[str], None] | None = None,
) -> PullResult:
    """Copy the queue at `queue_url` into the archive directory `archive` (created; a second
    pull continues it, and a message already there is not written twice)."""
    from hookshift.verify.pull import pull as pull_queue

    options = options or PullOptions()
    with os_errors_as_input():
        return pull_queue(
            queue_url,
            archive,
            endpoint_url=options.endpoint_url,
            region=options.region,
            delete=options.delete,
            max_messages=options.max_messages,
            workers=options.workers,
            wait_time_s=options.wait_time_s,
            idle_polls=options.idle_polls,
            progress=progress,
            notice=notice,
            limits=options.network,
        )


def parity(
    app: str | SourceSpec,
    queue: str | SourceSpec,
    options: ParityOptions | None = None,
    *,
    progress: Callable[[str], None] | None = None,
    notice: Callable[[str], None] | None = None,
) -> ParityReport:
    """Match the app side (``nginx:PATH``, ``jsonl:PATH``, ``csv:PATH``) against the queue side
    (``archive:DIR``, ``jsonl:PATH``, ``sqs:QUEUE_URL``). `progress` hears each phase as it
    starts (`hookshift.verify.parity.PHASES`); `notice` hears, as it happens, a line left out
    because nginx is still writing it (the report notes it too)."""
    from hookshift.verify.parity import run_parity

    options = options or ParityOptions()
    check_window(options)
    with os_errors_as_input():
        return run_parity(app, queue, options, progress, notice)


def check_window(options: ParityOptions) -> None:
    """Refuse a window that ends before it starts (an empty window would pass nothing)."""
    since, until = options.since_ms, options.until_ms
    if since is not None and until is not None and since >= until:
        raise InputError("--since is not before --until", fix="swap them")


def heal(report: Path, target: str, options: HealOptions | None = None) -> HealResult:
    """Re-send the missing_in_queue callbacks of the JSON parity report at `report` to
    `target` (a stage URL, or ``sqs:QUEUE_URL``)."""
    from hookshift.verify.heal import heal as heal_report

    options = options or HealOptions()
    with os_errors_as_input():
        return heal_report(
            report,
            target,
            apply=options.apply,
            ledger=options.ledger,
            endpoint_url=options.endpoint_url,
            region=options.region,
            plain_http_loopback=options.plain_http_loopback,
            other_target=options.other_target,
            resolver=options.resolver,
            ca_file=options.ca_file,
        )


def _dangling(path: str | bytes | os.PathLike[str]) -> bool:
    """Whether `path` is a symbolic link whose target is missing (mkdir then says it exists)."""
    return os.path.islink(path) and not os.path.exists(path)


@contextmanager
def os_errors_as_input() -> Iterator[None]:
    """A path the system refuses (not writable, not a directory, a full disk) as bad input with
    one line, so a caller sees a hookshift error and never the OSError underneath."""
    try:
        yield
    except OSError as exc:
        what = exc.strerror or str(exc)
        fix = "check the path: its directory must exist and be writable, with room left"
        if exc.errno == errno.EEXIST and exc.filename and _dangling(exc.filename):
            what = f"a symbolic link to {os.readlink(exc.filename)}, which does not exist"
            fix = "create the directory it points to, or give the path of a directory"
        elif exc.errno == errno.EEXIST:  # making a directory where a file is
            what = "a file is in the way of a directory"
        raise InputError(what, where=str(exc.filename) if exc.filename else None, fix=fix) from None
