"""A batch SQS delivered that hookshift cannot archive (a bug in its own handling of a batch,
here the TypeError json.dumps raises on bytes): it stays in the queue, the error never reads
as SQS's, and `--follow` does not call itself healthy, nor the queue drained, while the batch
is only hidden for the visibility timeout."""

from __future__ import annotations

import errno
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from hookshift.errors import OperationError
from hookshift.rehearsal.sqs import CREDENTIALS, REGION, MotoServer
from hookshift.verify.archive import Archive, archive_drained_at, iter_archive
from hookshift.verify.follow import FollowOptions, FollowState, follow, read_state
from hookshift.verify.pull import pull
from tests.verify.test_pull import _visible_and_hidden

pytestmark = pytest.mark.e2e
POISON = "a body hookshift fails on"


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", CREDENTIALS["aws_access_key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", CREDENTIALS["aws_secret_access_key"])
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)


@dataclass
class Fault:
    """Archiving a batch that holds POISON raises: `times` more times (None: always)."""

    times: int | None = None
    error: Exception = field(
        default_factory=lambda: TypeError("Object of type bytes is not JSON serializable")
    )
    fired: int = 0
    fired_ms: int = 0  # when it last fired (epoch ms)


@pytest.fixture(autouse=True)
def fault(monkeypatch: pytest.MonkeyPatch) -> Fault:
    fault = Fault()
    append = Archive.append

    def failing(self: Archive, messages: Any) -> int:
        batch = list(messages)
        if any(m.get("Body") == POISON for m in batch) and fault.times != 0:
            fault.fired += 1
            fault.fired_ms = int(time.time() * 1000)
            fault.times = None if fault.times is None else fault.times - 1
            raise fault.error
        return append(self, batch)

    monkeypatch.setattr(Archive, "append", failing)
    return fault


def _poisoned_queue(moto: MotoServer, visibility_s: int = 120) -> str:
    """A queue holding the poison, hidden for `visibility_s` each time it is received."""
    url = moto.create_queue(f"poison-{uuid.uuid4().hex[:10]}", VisibilityTimeout=str(visibility_s))
    moto.client().send_message(QueueUrl=url, MessageBody=POISON)
    return url


def test_a_pull_that_cannot_archive_a_batch_keeps_it_and_does_not_blame_sqs(
    moto: MotoServer, tmp_path: Path
) -> None:
    url = _poisoned_queue(moto)
    with pytest.raises(OperationError) as raised:
        pull(url, tmp_path / "a", endpoint_url=moto.endpoint, region=REGION, delete=True,
             workers=1, wait_time_s=0, progress=None)  # fmt: skip
    assert raised.value.line() == (
        f"{url}: a batch received from the queue could not be archived (TypeError: Object of "
        "type bytes is not JSON serializable), an error in hookshift, not in SQS; none of its 1 "
        "message(s) was deleted: they stay in the queue and come back after the visibility "
        "timeout (please report this line as a bug)"
    )
    assert _visible_and_hidden(moto, url) == (0, 1)  # received, not deleted
    assert archive_drained_at(tmp_path / "a") is None


def test_an_archive_that_cannot_be_written_is_named_with_the_batch_kept_in_the_queue(
    moto: MotoServer, tmp_path: Path, fault: Fault
) -> None:
    fault.error = OSError(errno.ENOSPC, "No space left on device")
    url = _poisoned_queue(moto)
    with pytest.raises(OperationError) as raised:
        pull(url, tmp_path / "a", endpoint_url=moto.endpoint, region=REGION, delete=True,
             workers=1, wait_time_s=0, progress=None)  # fmt: skip
    assert raised.value.line() == (
        f"{tmp_path / 'a'}: cannot write the archive (No space left on device); none of its 1 "
        "message(s) was deleted: they stay in the queue and come back after the visibility "
        "timeout"
    )
    assert _visible_and_hidden(moto, url) == (0, 1)


@contextmanager
def _following(
    moto: MotoServer, url: str, archive: Path, notices: list[str]
) -> Iterator[list[FollowState]]:
    """`follow` in a thread for the block (one worker, no long poll); its final state after."""
    stop, result = threading.Event(), list[FollowState]()
    options = FollowOptions(
        endpoint_url=moto.endpoint, region=REGION, workers=1, wait_time_s=0, state_every_s=0.1
    )
    runner = threading.Thread(
        target=lambda: result.append(follow(url, archive, stop, options, notice=notices.append))
    )
    runner.start()
    try:
        yield result
    finally:
        stop.set()
        runner.join(30)


def _state(archive: Path) -> FollowState | None:
    return read_state(archive / "follow-state.json")


def _until(check: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_follow_keeps_no_heartbeat_while_a_batch_it_could_not_archive_is_hidden(
    moto: MotoServer, tmp_path: Path
) -> None:
    """After the failed batch every receive comes back empty (its message is hidden, not
    gone): that is neither a heartbeat, nor "the queue answers again", nor a drained queue.
    The heartbeat resumes with the next batch that is archived and deleted."""
    url = _poisoned_queue(moto)
    archive, notices = tmp_path / "a", list[str]()
    with _following(moto, url, archive, notices) as result:
        _until(lambda: (s := _state(archive)) is not None and s.errors == 1, "the failed batch")
        time.sleep(3)  # the back-off (1 s), then empty receives of a queue that looks drained
        held = _state(archive)
        assert held is not None and held.last_success is None and held.errors == 1
        assert held.last_error == "TypeError: Object of type bytes is not JSON serializable"
        assert not any("answers again" in n for n in notices), notices
        assert archive_drained_at(archive) is None
        assert _visible_and_hidden(moto, url) == (0, 1)

        moto.client().send_message(QueueUrl=url, MessageBody="a callback")
        _until(lambda: (s := _state(archive)) is not None and s.last_success is not None, "beat")
        time.sleep(1)
        assert archive_drained_at(archive) is None  # the poison is still hidden, not archived
    assert notices[0].startswith(
        "a batch of 1 message(s) could not be archived and none was deleted: they come back"
        " after the visibility timeout, an error in hookshift or the archive, not in SQS;"
        " retrying with back-off: TypeError"
    )
    assert notices[1:] == ["batches are archived again"]
    assert [m["Body"] for m in iter_archive(archive)] == ["a callback"]
    assert result[0].deleted == 1 and _visible_and_hidden(moto, url) == (0, 1)


def test_a_batch_that_failed_once_is_archived_when_it_comes_back_and_only_then_drained(
    moto: MotoServer, tmp_path: Path, fault: Fault
) -> None:
    """A passing fault (a full disk that was cleared): the batch comes back after the
    visibility timeout and is archived. The queue counts as drained only from a receive begun
    after that, since before it the batch was in neither the queue's view nor the archive."""
    fault.times = 1
    url = _poisoned_queue(moto, visibility_s=3)
    archive, notices = tmp_path / "a", list[str]()
    with _following(moto, url, archive, notices) as result:
        _until(lambda: fault.fired == 1, "the failed batch")
        time.sleep(2)
        assert archive_drained_at(archive) is None
        _until(lambda: [m["Body"] for m in iter_archive(archive)] == [POISON], "the poison back")
        _until(lambda: archive_drained_at(archive) is not None, "the drain mark")
    drained = archive_drained_at(archive)
    assert drained is not None and drained >= fault.fired_ms + 3000
    assert notices[1:] == ["batches are archived again"]
    assert result[0].deleted == 1 and _visible_and_hidden(moto, url) == (0, 0)
