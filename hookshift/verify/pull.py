"""``hookshift verify pull``: copy an SQS queue into the crash-safe archive (verify.archive).

Several workers long-poll in batches of 10. Each batch is archived (fsync'ed) before it is
deleted, so with ``--delete`` a kill -9 at any point, then a rerun, leaves every message in the
archive exactly once: deleted ones are on disk, undeleted ones come back after the visibility
timeout and are recognised by MessageId. Without ``--delete`` nothing leaves the queue, but
every received message is hidden from the real consumer for the visibility timeout.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hookshift.addresses import is_http_url
from hookshift.errors import HookshiftError, InputError, OperationError
from hookshift.verify.archive import Archive

BATCH = 10  # SQS's maximum per ReceiveMessage / DeleteMessageBatch
PROGRESS_EVERY_S = 0.2

# called with the messages received so far and how many the pull expects (None: unknown)
PullProgress = Callable[[int, int | None], None]


@dataclass(frozen=True)
class PullResult:
    received: int
    archived: int  # new in the archive
    already_archived: int
    deleted: int
    delete_failures: int
    archive_total: int
    elapsed_s: float


def url_region(queue_url: str) -> str | None:
    """The region an AWS queue URL names (``https://sqs.REGION.amazonaws.com/...``); None for
    another endpoint's URL (a local emulator's ``http://127.0.0.1:5000/ACCOUNT/NAME``)."""
    match = re.match(r"https://sqs[.-]([a-z0-9-]+)\.amazonaws\.com", queue_url)
    return match.group(1) if match else None


def region_for(queue_url: str, region: str | None) -> str:
    """The explicit region, else the one in an AWS queue URL, else the credential chain's.

    An endpoint other than AWS's (``--endpoint-url``) keeps its queues per region as AWS does,
    and its queue URLs do not name one: a queue made there in another region than this one
    does not exist for the client (`sqs_failure` then says so, naming the region)."""
    if region:
        return region
    named = url_region(queue_url)
    if named:
        return named
    import boto3

    return boto3.session.Session().region_name or "us-east-1"


@dataclass(frozen=True)
class NetworkLimits:
    """How long one SQS call may take: an endpoint that accepts and never answers must not
    hang a command. The worst case of one call is `worst_s`: with the defaults, a long poll of
    20 s that never returns fails in 50 s, and the first call (the queue's attributes, no
    wait) in 10 s."""

    connect_s: float = 5.0
    read_s: float = 5.0  # beyond the long poll's wait, for a receive
    attempts: int = 2  # the first try and one retry

    def worst_s(self, wait_s: int = 0) -> float:
        """How long one call can take before it fails (a connect that hangs gets no read)."""
        return self.attempts * max(self.connect_s, self.read_s + wait_s)

    def config(self, wait_s: int = 0) -> Any:
        from botocore.config import Config

        return Config(
            connect_timeout=self.connect_s,
            read_timeout=self.read_s + wait_s,
            retries={"total_max_attempts": self.attempts, "mode": "standard"},
        )


def check_queue_url(
    queue_url: str,
    endpoint_url: str | None = None,
    *,
    option: str = "--queue-url",
    region: str | None = None,
) -> None:
    """Refuse a queue URL (or endpoint) that is not an http(s) URL, or a region AWS cannot
    name, before anything is made.

    `option` names the queue URL as the user gave it (``--queue-url``, ``--to sqs:...``)."""
    from botocore.exceptions import InvalidRegionError
    from botocore.utils import validate_region_name

    try:
        if region is not None:
            validate_region_name(region)
    except InvalidRegionError:
        raise InputError(
            f"not an AWS region: {region!r}",
            where="--region",
            fix="write a region as AWS names it, e.g. ap-northeast-2",
        ) from None
    for where, url, fix in (
        (option, queue_url, "write the queue URL as SQS shows it: " + QUEUE_URL_SHAPE),
        ("--endpoint-url", endpoint_url, "write the SQS endpoint, e.g. http://127.0.0.1:5000"),
    ):
        if url is None:
            continue
        if not is_http_url(url):
            raise InputError(f"not a URL: {url!r}", where=where, fix=fix)


QUEUE_URL_SHAPE = "https://sqs.REGION.amazonaws.com/ACCOUNT/NAME"


def sqs_client(
    queue_url: str,
    endpoint_url: str | None,
    region: str | None,
    limits: NetworkLimits | None = None,
    wait_s: int = 0,
) -> Any:
    import boto3

    check_queue_url(queue_url, endpoint_url, region=region)
    return boto3.client(
        "sqs",
        endpoint_url=endpoint_url,
        region_name=region_for(queue_url, region),
        config=(limits or NetworkLimits()).config(wait_s),
    )


# what SQS answers for a queue URL it does not know, in its query and its JSON protocol
NO_SUCH_QUEUE = frozenset({"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"})


def sqs_failure(
    queue_url: str,
    exc: BaseException,
    *,
    endpoint_url: str | None = None,
    region: str | None = None,
) -> HookshiftError:
    """One line for an SQS call that failed (no such queue, no answer in time, refused, no
    credentials). A queue that does not exist is bad input (exit 2): the line names the
    endpoint and the region it was looked for in, since a queue URL that is not AWS's does not
    name its region."""
    from botocore.exceptions import ClientError, ConnectTimeoutError, ReadTimeoutError

    code = exc.response.get("Error", {}).get("Code") if isinstance(exc, ClientError) else None
    if code in NO_SUCH_QUEUE:
        used = region_for(queue_url, region)
        if endpoint_url and region is None and url_region(queue_url) is None:
            return InputError(
                f"no such queue at --endpoint-url {endpoint_url} in the default region {used}: "
                "its URL names no region",
                where=queue_url,
                fix="add --region with the region the queue was created in, e.g. --region "
                "ap-northeast-2",
            )
        endpoint = f" --endpoint-url {endpoint_url}" if endpoint_url else ""
        return InputError(
            f"no such queue{' at' + endpoint if endpoint else ''} in region {used}",
            where=queue_url,
            fix=f"check the queue URL and the region against `aws sqs list-queues{endpoint} "
            f"--region {used}`",
        )
    if isinstance(exc, ReadTimeoutError | ConnectTimeoutError):
        return OperationError(
            f"{queue_url}: SQS did not answer in time ({exc}); check --endpoint-url, the "
            "network and the region"
        )
    return OperationError(f"{queue_url}: SQS refused or could not be reached: {exc}")


def queue_attributes(
    client: Any,
    queue_url: str,
    names: tuple[str, ...] = ("VisibilityTimeout", "ApproximateNumberOfMessages"),
    *,
    endpoint_url: str | None = None,
    region: str | None = None,
) -> dict[str, str]:
    """The queue's attributes `names`: the first call, so a queue that cannot be reached fails
    here (`sqs_failure`), before the archive is created."""
    try:
        reply = client.get_queue_attributes(QueueUrl=queue_url, AttributeNames=list(names))
    except Exception as exc:
        raise sqs_failure(queue_url, exc, endpoint_url=endpoint_url, region=region) from None
    return dict(reply.get("Attributes") or {})


def _int_or_none(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


class _Shared:
    def __init__(self, limit: int | None) -> None:
        self.lock = threading.Lock()
        self.limit = limit
        self.received = self.archived = self.already = self.deleted = self.failed = 0
        self.errors: list[BaseException] = []
        self.stop = threading.Event()

    def room(self) -> int:
        with self.lock:
            if self.limit is None:
                return BATCH
            return max(0, min(BATCH, self.limit - self.received))


class SqsCallFailed(Exception):
    """An SQS call raised `cause` (refused, no answer, no credentials): what `sqs_failure`
    reports. Kept apart from hookshift's own errors, which must never read as SQS's."""

    def __init__(self, cause: Exception) -> None:
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.cause = cause


def sqs_call(method: Callable[..., Any], **params: Any) -> Any:
    """`method(**params)` on an SQS client; whatever it raises comes out as SqsCallFailed."""
    try:
        return method(**params)
    except Exception as exc:
        raise SqsCallFailed(exc) from exc


class BatchNotArchived(Exception):
    """Messages SQS delivered that the archive did not take (`cause`: a full disk, or a bug in
    hookshift). None of them is deleted: they come back after the visibility timeout."""

    def __init__(self, messages: int, cause: Exception) -> None:
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.messages = messages
        self.cause = cause


def archive_batch(archive: Archive, messages: list[dict[str, Any]]) -> int:
    """`archive.append(messages)` (durable before any delete); a failure is BatchNotArchived."""
    if not messages:
        return 0
    try:
        return archive.append(messages)
    except Exception as exc:
        raise BatchNotArchived(len(messages), exc) from exc


def batch_failure(queue_url: str, archive_dir: Path, exc: BatchNotArchived) -> HookshiftError:
    """One line for a batch the archive did not take: the archive's fault or hookshift's,
    never SQS's, and the messages are still in the queue."""
    kept = (
        f"none of its {exc.messages} message(s) was deleted: they stay in the queue and come"
        " back after the visibility timeout"
    )
    cause = exc.cause
    if isinstance(cause, OSError):
        return OperationError(
            f"{archive_dir}: cannot write the archive ({cause.strerror or cause}); {kept}"
        )
    return OperationError(
        f"{queue_url}: a batch received from the queue could not be archived ({exc}), an error"
        f" in hookshift, not in SQS; {kept} (please report this line as a bug)"
    )


def hidden_by_others(client: Any, queue_url: str, ours: int) -> int | None:
    """Messages in the queue no receive can see now beyond the `ours` this pull keeps hidden
    (received, not deleted): another reader's, within their visibility timeout. From SQS's
    approximate count, so at worst a queue is recorded drained a pull later. None when SQS
    does not say."""
    try:
        attrs = client.get_queue_attributes(
            QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"]
        )["Attributes"]
    except Exception:  # botocore's errors: the receive went through, this one did not
        return None
    return max(0, (_int_or_none(attrs.get("ApproximateNumberOfMessagesNotVisible")) or 0) - ours)


def hidden_notice(others: int | None) -> str:
    """Why a pull that found the queue empty does not record it drained: `others` messages
    another reader hides (None: SQS did not say whether any are hidden)."""
    some = (
        "SQS did not say whether messages in the queue are hidden by another reader"
        if others is None
        else f"{others} message(s) in the queue are hidden by another reader"
    )
    return (
        f"{some} (within their visibility timeout, e.g. a `verify parity --queue sqs:` or a "
        "consumer): the queue is not recorded as drained, so parity leaves the newest callbacks "
        "in flight; pull again once they are visible"
    )


def _worker(
    client: Any,
    queue_url: str,
    archive: Archive,
    shared: _Shared,
    delete: bool,
    wait_time_s: int,
    idle_polls: int,
) -> None:
    idle = 0
    try:
        while not shared.stop.is_set():
            room = shared.room()
            if room <= 0:
                return
            reply = sqs_call(
                client.receive_message,
                QueueUrl=queue_url,
                MaxNumberOfMessages=room,
                WaitTimeSeconds=wait_time_s,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
            messages = reply.get("Messages", [])
            new = archive_batch(archive, messages)  # durable before any delete
            with shared.lock:
                shared.received += len(messages)
                shared.archived += new
                shared.already += len(messages) - new
            if delete and messages:
                _delete(client, queue_url, messages, shared)
            # without --delete, a batch of only known messages means we are going round again
            idle = idle + 1 if not messages or (not delete and new == 0) else 0
            if idle >= idle_polls:
                return
    except BaseException as exc:
        with shared.lock:
            shared.errors.append(exc)
        shared.stop.set()


def _delete(client: Any, queue_url: str, messages: list[dict[str, Any]], shared: _Shared) -> None:
    entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)]
    reply = sqs_call(client.delete_message_batch, QueueUrl=queue_url, Entries=entries)
    with shared.lock:
        shared.deleted += len(reply.get("Successful", []))
        shared.failed += len(reply.get("Failed", []))


def pull(
    queue_url: str,
    archive_dir: Path,
    *,
    endpoint_url: str | None = None,
    region: str | None = None,
    delete: bool = False,
    max_messages: int | None = None,
    workers: int = 4,
    wait_time_s: int = 20,
    idle_polls: int = 1,
    progress: PullProgress | None = None,
    notice: Callable[[str], None] | None = None,
    limits: NetworkLimits | None = None,
) -> PullResult:
    """Pull the queue into `archive_dir`; stops after `idle_polls` empty long polls per worker
    or `max_messages`. Raises OperationError when SQS refuses or a batch cannot be archived
    (`batch_failure`: it is not deleted), InputError when the queue does not exist there (the
    archive stays consistent).

    Nothing is printed: `progress` hears how far the pull got while the workers run, and
    `notice` gets the warnings a person should read."""
    if workers < 1 or not 0 <= wait_time_s <= 20:
        raise InputError(
            "bad --workers or --wait-time", fix="workers >= 1, wait time 0..20 seconds"
        )
    check_queue_url(queue_url, endpoint_url)
    started = time.monotonic()
    limits = limits or NetworkLimits()
    attrs = queue_attributes(
        sqs_client(queue_url, endpoint_url, region, limits),
        queue_url,
        endpoint_url=endpoint_url,
        region=region,
    )
    clients = [
        sqs_client(queue_url, endpoint_url, region, limits, wait_time_s) for _ in range(workers)
    ]
    depth = _int_or_none(attrs.get("ApproximateNumberOfMessages"))
    shared = _Shared(max_messages)
    begun_ms = int(time.time() * 1000)
    with Archive(archive_dir, queue_url) as archive:
        # said once the archive is open: a refused archive is the only line the user needs
        if not delete and notice is not None:
            vt = _int_or_none(attrs.get("VisibilityTimeout"))
            notice(
                "without --delete every received message stays in the queue but is hidden from"
                f" its consumers for the visibility timeout ({vt if vt is not None else '?'} s)"
            )
        threads = [
            threading.Thread(
                target=_worker,
                args=(c, queue_url, archive, shared, delete, wait_time_s, idle_polls),
                daemon=True,
            )
            for c in clients
        ]
        for t in threads:
            t.start()
        _wait(threads, shared, depth if max_messages is None else max_messages, progress)
        total = len(archive)
        if not shared.errors and (max_messages is None or shared.received < max_messages):
            # every worker ended on an empty poll; messages another reader holds hidden are not
            # gone, and a parity run on this archive would call their callbacks lost
            others = hidden_by_others(clients[0], queue_url, shared.received - shared.deleted)
            if others == 0:
                archive.mark_drained(begun_ms)
            elif notice is not None:
                notice(hidden_notice(others))
    if shared.errors:
        first = shared.errors[0]
        if isinstance(first, SqsCallFailed):
            raise sqs_failure(
                queue_url, first.cause, endpoint_url=endpoint_url, region=region
            ) from None
        if isinstance(first, BatchNotArchived):
            raise batch_failure(queue_url, archive_dir, first) from first.cause
        raise first  # a bug of hookshift's: its traceback, not a line blaming SQS
    return PullResult(
        received=shared.received,
        archived=shared.archived,
        already_archived=shared.already,
        deleted=shared.deleted,
        delete_failures=shared.failed,
        archive_total=total,
        elapsed_s=round(time.monotonic() - started, 3),
    )


def _wait(
    threads: list[threading.Thread],
    shared: _Shared,
    total: int | None,
    progress: PullProgress | None,
) -> None:
    """Join the workers, telling `progress` how many messages arrived meanwhile."""
    if not progress:  # None, or False from a caller that wants no reports
        for t in threads:
            t.join()
        return
    while any(t.is_alive() for t in threads):
        time.sleep(PROGRESS_EVERY_S)
        with shared.lock:
            now = shared.received
        progress(now, total)
    for t in threads:
        t.join()
    progress(shared.received, total)
