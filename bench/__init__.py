"""Benchmarks: each measures against a baseline in the same run and writes its own section."""

from __future__ import annotations

import signal
import sys
from types import FrameType


def stop_on_sigterm() -> None:
    """Make SIGTERM unwind like Ctrl-C: the servers a benchmark started are stopped by the
    `with` blocks that started them, instead of outliving a killed run."""

    def _exit(signum: int, frame: FrameType | None) -> None:
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, _exit)
