"""Whether the queue keeps messages long enough for the mirror period, and whether anything is
still pulling them: pure checks over numbers (the caller reads the queue and the follow state).

SQS deletes a message nobody read once it is older than the queue's MessageRetentionPeriod (4
days unless set). A mirror period that runs over a weekend with the pull stopped then shows
every callback of the gap as missing_in_queue, although the mirror delivered it. So the queue
must keep messages for the planned window plus a margin, and a stopped pull must be noticed
long before the retention runs out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from hookshift.errors import InputError

SQS_MAX_RETENTION_S = 1_209_600  # 14 days: the most SQS allows
SQS_DEFAULT_RETENTION_S = 345_600  # 4 days: what a queue gets when nobody sets it
DEFAULT_WINDOW_S = 7 * 86_400  # a full weekday/weekend cycle
DEFAULT_MARGIN_S = 86_400  # a day to notice a stopped pull and restart it
DEFAULT_STALE_S = 15 * 60

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 7 * 86_400}


def parse_duration(text: str, option: str) -> int:
    """``90``, ``90s``, ``15m``, ``12h``, ``7d``, ``2w`` -> seconds."""
    match = re.fullmatch(r"\s*(\d+)\s*([smhdw]?)\s*", text)
    if not match or int(match.group(1)) <= 0:
        raise InputError(
            f"cannot read duration {text!r}", where=option, fix="write e.g. 90s, 15m, 12h, 7d"
        )
    seconds = int(match.group(1)) * _UNITS[match.group(2) or "s"]
    if seconds > DURATION_MAX_S:
        raise InputError(
            f"duration {text!r} is longer than {human(DURATION_MAX_S)}",
            where=option,
            fix="write e.g. 90s, 15m, 12h, 7d",
        )
    return seconds


# longer than any mirror period or interval, and short enough for every timer to wait for
DURATION_MAX_S = 3650 * 86_400


def human(seconds: float) -> str:
    """12 d, 5 h, 3 min, 40 s: the largest unit that divides it, for messages."""
    s = int(seconds)
    for unit, size in (("d", 86_400), ("h", 3600), ("min", 60)):
        if s >= size and s % size == 0:
            return f"{s // size} {unit}"
    return f"{s} s"


@dataclass(frozen=True)
class Finding:
    """A problem with the mirror period's safety; `blocking` findings stop a cut-over."""

    what: str
    fix: str
    blocking: bool = True

    def line(self) -> str:
        return f"{self.what} (fix: {self.fix})"


def check_retention(
    retention_s: int | None,
    window_s: int = DEFAULT_WINDOW_S,
    margin_s: int = DEFAULT_MARGIN_S,
    queue: str = "the queue",
) -> Finding | None:
    """A finding when the queue forgets messages before the window plus the margin is over."""
    if retention_s is None:
        return Finding(
            f"cannot read MessageRetentionPeriod of {queue}",
            "allow sqs:GetQueueAttributes, or check the retention by hand",
            blocking=False,
        )
    need = window_s + margin_s
    if retention_s >= need:
        return None
    fix = (
        f"set MessageRetentionPeriod to {SQS_MAX_RETENTION_S} (14 d, the maximum): "
        "`hookshift apigw render` writes it"
    )
    if need > SQS_MAX_RETENTION_S:
        fix += f", and plan a window of at most {human(SQS_MAX_RETENTION_S - margin_s)}"
    return Finding(
        f"{queue} keeps messages {human(retention_s)}, less than the planned window of "
        f"{human(window_s)} plus {human(margin_s)} of margin: a pull stopped for that long "
        "turns every callback of the gap into missing_in_queue",
        fix,
    )


def check_heartbeat(
    last_success: float | None,
    now: float,
    stale_s: int = DEFAULT_STALE_S,
    started_at: float | None = None,
) -> Finding | None:
    """A finding when the follow mode has not completed a receive for longer than `stale_s`
    (counted from its start when it has not succeeded yet: a pull just started is not late)."""
    since = last_success if last_success is not None else started_at
    if since is None:
        return Finding(
            "no pull has run yet",
            "start `hookshift verify pull --follow` (see `hookshift verify units`)",
        )
    quiet = now - since
    if quiet <= stale_s:
        return None
    what = "nothing has pulled from the queue" if last_success else "no pull has succeeded"
    return Finding(
        f"{what} for {human(round(quiet))} (more than {human(stale_s)})",
        "check the `hookshift verify pull --follow` service and its log",
    )


def queue_retention_s(client: Any, queue_url: str) -> int | None:
    """The queue's MessageRetentionPeriod in seconds, None when SQS does not say."""
    try:
        attrs = client.get_queue_attributes(
            QueueUrl=queue_url, AttributeNames=["MessageRetentionPeriod"]
        )["Attributes"]
        return int(attrs["MessageRetentionPeriod"])
    except Exception:
        return None
