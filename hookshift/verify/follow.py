"""``hookshift verify pull --follow``: drain the queue into the archive for as long as the
mirror period runs (days), and leave a state file saying when it last succeeded.

The loop is `verify.pull`'s rule kept forever: a batch is fsync'ed into the archive before it is
deleted, so a kill -9 at any point followed by a restart keeps every message exactly once (the
archive's id index recognises what comes back after the visibility timeout). What changes for a
run of days:

- a stop request (SIGTERM from systemd, Ctrl-C) lets every worker finish the batch it holds
  (archive, fsync, delete), then the process exits 0;
- an error from SQS (throttling, a network blip, expired credentials) does not end the run: the
  worker backs off and tries again, and the state file carries the error, so a watcher sees
  the pull fall silent (``last_success`` stops moving) instead of a service that exited;
- a batch that SQS delivered and the archive did not take (a full disk, a bug in hookshift) is
  not deleted, and it stops the heartbeat until a batch is archived again: its messages are
  only hidden for the visibility timeout, so the empty receives meanwhile prove neither that
  the pull works nor, until that timeout has passed, that the queue is drained;
- nothing in memory grows with the number of messages (the id index is on disk; segments rotate
  by size and age).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from hookshift.errors import InputError
from hookshift.verify.archive import SEGMENT_BYTES, Archive
from hookshift.verify.private import write_private
from hookshift.verify.pull import (
    BATCH,
    BatchNotArchived,
    SqsCallFailed,
    archive_batch,
    hidden_by_others,
    hidden_notice,
    sqs_call,
    sqs_client,
    sqs_failure,
)

STATE_NAME = "follow-state.json"
_State = TypeVar("_State")
STATE_EVERY_S = 5.0
BACKOFF_MAX_S = 60.0
VISIBILITY_MAX_S = 12 * 3600  # SQS's longest visibility timeout: when the queue's is unknown


@dataclass
class FollowState:
    """What the state file holds: the heartbeat a watcher, the metrics and a cut-over read."""

    queue_url: str
    archive: str
    pid: int
    started_at: float
    updated_at: float = 0.0
    last_success: float | None = None  # epoch seconds of the last receive that answered
    queue_lag_s: float = 0.0  # age of the oldest message of the last batch (0: queue empty)
    received: int = 0
    archived: int = 0
    already_archived: int = 0
    deleted: int = 0
    delete_failures: int = 0
    archive_total: int = 0
    errors: int = 0
    last_error: str | None = None
    retention_s: int | None = None
    running: bool = True
    stopped_at: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def state_path(archive_dir: Path, given: Path | None) -> Path:
    return given if given is not None else archive_dir / STATE_NAME


def read_state(path: Path) -> FollowState | None:
    """The follow state at `path`, or None when there is none (or it cannot be read: a
    watcher then treats the pull as never having succeeded)."""
    return read_json_state(path, FollowState)


def read_json_state(path: Path, kind: type[_State]) -> _State | None:
    """A state file written by `write_atomic` as the dataclass `kind` (fields it does not know
    are skipped, so an older reader reads a newer file), or None."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        names = kind.__dataclass_fields__  # type: ignore[attr-defined]
        return kind(**{k: v for k, v in data.items() if k in names})
    except (OSError, ValueError, TypeError):
        return None


def write_state(path: Path, state: FollowState) -> None:
    write_private(path, json.dumps(state.to_dict(), indent=2) + "\n")


@dataclass(frozen=True)
class FollowOptions:
    endpoint_url: str | None = None
    region: str | None = None
    delete: bool = True
    workers: int = 2
    wait_time_s: int = 20
    segment_bytes: int = SEGMENT_BYTES
    segment_seconds: float | None = 3600.0
    state_file: Path | None = None
    metrics_file: Path | None = None
    state_every_s: float = STATE_EVERY_S


@dataclass
class _Loop:
    """Shared between the workers and the thread that writes the state."""

    state: FollowState
    stop: threading.Event
    notice: Callable[[str], None]
    lock: threading.Lock = field(default_factory=threading.Lock)
    failing: bool = False  # in an incident of SQS errors (noticed once, until one succeeds)
    told_hidden: bool = False  # another reader's hidden messages were noticed
    # a batch SQS delivered was not archived: its messages are hidden for the visibility
    # timeout, not gone, so an empty receive meanwhile is no heartbeat; a batch archived and
    # deleted after it is
    unhandled: bool = False
    visibility_s: float = VISIBILITY_MAX_S
    # until when (monotonic) a failed round may keep messages hidden, neither archived nor
    # deleted: an empty receive begun before then does not show the queue drained
    hidden_until: float = 0.0

    def answered(self, now: float, lag_s: float, messages: int) -> bool:
        """Record a round that went through (receive, archive, delete); False when it does not
        count as the heartbeat: an empty one while a batch is unhandled."""
        with self.lock:
            if self.failing:
                self.failing = False
                self.notice("the queue answers again")
            if self.unhandled and not messages:
                return False
            self.state.last_success = now
            self.state.queue_lag_s = lag_s
            if self.unhandled:
                self.unhandled = False
                self.notice("batches are archived again")
            return True

    def drained(self, asked_at: float) -> bool:
        """Whether an empty receive begun at `asked_at` (monotonic) shows the queue drained:
        no failed round can still hide a message from it."""
        with self.lock:
            return asked_at >= self.hidden_until

    def none_hidden(self, others: int | None) -> bool:
        """Whether an empty receive may record the queue drained: no message hidden by another
        reader (`others`, None: not known), said once while they stay hidden."""
        with self.lock:
            first = not self.told_hidden
            self.told_hidden = others != 0
        if others != 0 and first:
            self.notice(hidden_notice(others))
        return others == 0

    def failed(self, exc: SqsCallFailed) -> None:
        with self.lock:
            self._count(str(exc))
            first = not self.failing
            self.failing = True
        if first:
            self.notice(f"receiving from the queue failed, retrying with back-off: {exc}")

    def mishandled(self, exc: Exception, what: str) -> None:
        """A batch SQS delivered that hookshift (or its archive) did not finish: `what` says
        what became of its messages."""
        with self.lock:
            self._count(f"{type(exc).__name__}: {exc}")
            first = not self.unhandled
            self.unhandled = True
        if first:
            self.notice(
                f"{what}, an error in hookshift or the archive, not in SQS; retrying with"
                f" back-off: {type(exc).__name__}: {exc}"
            )

    def _count(self, text: str) -> None:
        # a receive that timed out may have been served, hiding its batch like one not archived
        self.hidden_until = time.monotonic() + self.visibility_s
        self.state.errors += 1
        self.state.last_error = text


def _lag_s(messages: list[dict[str, Any]], now: float) -> float:
    sent = [
        int(m["Attributes"]["SentTimestamp"])
        for m in messages
        if str(m.get("Attributes", {}).get("SentTimestamp", "")).isdigit()
    ]
    return max(0.0, now - min(sent) / 1000) if sent else 0.0


def _worker(
    client: Any, queue_url: str, archive: Archive, loop: _Loop, opts: FollowOptions
) -> None:
    backoff = 1.0
    while not loop.stop.is_set():
        messages: list[dict[str, Any]] = []
        try:
            asked_ms, asked_at = int(time.time() * 1000), time.monotonic()
            reply = sqs_call(
                client.receive_message,
                QueueUrl=queue_url,
                MaxNumberOfMessages=BATCH,
                WaitTimeSeconds=opts.wait_time_s,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
            messages = reply.get("Messages", [])
            # the batch in hand is finished even when a stop was asked meanwhile
            new = archive_batch(archive, messages)  # durable before any delete
            deleted = failed = 0
            if opts.delete and messages:
                entries = [
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                    for i, m in enumerate(messages)
                ]
                answer = sqs_call(client.delete_message_batch, QueueUrl=queue_url, Entries=entries)
                deleted = len(answer.get("Successful", []))
                failed = len(answer.get("Failed", []))
            now = time.time()
            with loop.lock:
                s = loop.state
                s.received += len(messages)
                s.archived += new
                s.already_archived += len(messages) - new
                s.deleted += deleted
                s.delete_failures += failed
                s.archive_total = len(archive)
            counted = loop.answered(now, _lag_s(messages, now), len(messages))
            if counted and not messages and loop.drained(asked_at):
                # with --delete, a message still hidden is another reader's; without it, this
                # pull's own receipts hide messages, and an empty receive decides as before
                others = hidden_by_others(client, queue_url, 0) if opts.delete else 0
                if loop.none_hidden(others):
                    archive.mark_drained(asked_ms)
            backoff = 1.0
        except Exception as exc:
            if isinstance(exc, SqsCallFailed):
                loop.failed(exc)
            elif isinstance(exc, BatchNotArchived):
                loop.mishandled(
                    exc.cause,
                    f"a batch of {exc.messages} message(s) could not be archived and none was"
                    " deleted: they come back after the visibility timeout",
                )
            else:
                loop.mishandled(
                    exc,
                    f"a batch of {len(messages)} message(s) was not finished: what was not"
                    " deleted comes back after the visibility timeout"
                    if messages
                    else "an empty receive was not finished",
                )
            loop.stop.wait(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX_S)


def follow(
    queue_url: str,
    archive_dir: Path,
    stop: threading.Event,
    options: FollowOptions = FollowOptions(),
    *,
    notice: Callable[[str], None] = lambda text: None,
    retention_s: int | None = None,
) -> FollowState:
    """Pull until `stop` is set; returns the final state (also written to the state file).

    Raises OperationError when the queue cannot be reached at the start, InputError when it
    does not exist there (a wrong URL, region or credentials should fail at once, not be
    retried for days)."""
    if options.workers < 1 or not 0 <= options.wait_time_s <= 20:
        raise InputError(
            "bad --workers or --wait-time", fix="workers >= 1, wait time 0..20 seconds"
        )
    clients = [
        sqs_client(queue_url, options.endpoint_url, options.region, wait_s=options.wait_time_s)
        for _ in range(options.workers)
    ]
    try:
        attrs = clients[0].get_queue_attributes(
            QueueUrl=queue_url, AttributeNames=["VisibilityTimeout"]
        )
    except Exception as exc:
        raise sqs_failure(
            queue_url, exc, endpoint_url=options.endpoint_url, region=options.region
        ) from None
    visibility = str((attrs.get("Attributes") or {}).get("VisibilityTimeout", ""))
    path = state_path(archive_dir, options.state_file)
    previous = read_state(path)
    state = FollowState(
        queue_url=queue_url,
        archive=str(archive_dir),
        pid=os.getpid(),
        started_at=time.time(),
        retention_s=retention_s,
    )
    if previous is not None and previous.queue_url == queue_url:
        # the heartbeat survives a restart: a watcher measures the gap, not this process
        state.last_success = previous.last_success
    loop = _Loop(state, stop, notice)
    if visibility.isdigit():
        loop.visibility_s = float(visibility)
    with Archive(
        archive_dir,
        queue_url,
        segment_bytes=options.segment_bytes,
        segment_seconds=options.segment_seconds,
    ) as archive:
        state.archive_total = len(archive)
        threads = [
            threading.Thread(
                target=_worker, args=(c, queue_url, archive, loop, options), daemon=True
            )
            for c in clients
        ]
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            _save(path, loop, options.metrics_file)
            stop.wait(options.state_every_s)
            if stop.is_set():
                break
        for t in threads:
            t.join()
    with loop.lock:
        state.running = False
        state.stopped_at = time.time()
    _save(path, loop, options.metrics_file)
    return state


@contextlib.contextmanager
def stop_on_signals(stop: threading.Event, notice: Callable[[str], None]) -> Iterator[None]:
    """SIGTERM and SIGINT set `stop` while in the block (main thread only): systemd's stop and
    Ctrl-C both end `follow` with the batches in hand archived and deleted."""

    def on_signal(signum: int, frame: object) -> None:
        if not stop.is_set():
            notice(f"{signal.Signals(signum).name}: finishing the batches in hand, then stopping")
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _save(path: Path, loop: _Loop, metrics_file: Path | None) -> None:
    with loop.lock:
        loop.state.updated_at = time.time()
        snapshot = FollowState(**loop.state.to_dict())
    try:
        write_state(path, snapshot)
        if metrics_file is not None:
            from hookshift.verify.metrics import pull_families, write_textfile

            write_textfile(metrics_file, pull_families(snapshot))
    except OSError as exc:  # a full disk must not stop the drain: the archive is what matters
        loop.notice(f"cannot write {exc.filename or path}: {exc.strerror or exc}")
