"""Starting and stopping local processes: free loopback ports, readiness, stop by pid.

Every server the stage emulator, the rehearsal, the tests and the benchmarks start goes
through `ManagedProcess`, so each one is on a port nobody else holds, is known to be ready
before it is used (`wait_until`), and is stopped by its pid (its whole process group) even when
the caller is interrupted. It sits below both `apigw` and `rehearsal` so neither imports the
other for it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from hookshift.errors import OperationError

LOOPBACK = "127.0.0.1"


T = TypeVar("T")


class NotReady(OperationError):
    """A process exited, or a condition did not hold in time, while it was waited for."""


def wait_until(
    condition: Callable[[], T],
    what: str,
    *,
    timeout: float = 15.0,
    interval: float = 0.05,
    process: ManagedProcess | None = None,
) -> T:
    """Poll `condition` until it returns something truthy, and return that.

    Raises `NotReady` naming `what` after `timeout` seconds, or as soon as `process` (the one
    expected to make the condition true) has exited, with the log to read.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if process is not None and not process.running():
            raise NotReady(f"{process.name} exited before {what}; see {process.log_path}")
        if time.monotonic() > deadline:
            raise NotReady(f"no {what} after {timeout:g}s")
        time.sleep(interval)


def free_port(host: str = LOOPBACK, kind: int = socket.SOCK_STREAM) -> int:
    """A port that is free on `host` now (the kernel picks it; bind it soon after)."""
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def free_port_pair(host: str = LOOPBACK) -> int:
    """A port free for both TCP and UDP (a DNS server listens on both)."""
    for _ in range(50):
        port = free_port(host)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            try:
                udp.bind((host, port))
            except OSError:
                continue
            return port
    raise OperationError("no port free for both TCP and UDP on loopback")


def wait_for_port(port: int, host: str = LOOPBACK, timeout: float = 15.0) -> None:
    """Block until something accepts TCP connections on host:port."""

    def accepts() -> bool:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            return False

    wait_until(accepts, f"listener on {host}:{port}", timeout=timeout)


@dataclass
class ManagedProcess:
    """A child process in its own process group, stopped by pid (group) on `stop()`."""

    name: str
    argv: Sequence[str]
    log_path: Path
    env: dict[str, str] | None = None
    cwd: Path | None = None
    popen: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def start(self, ready: Callable[[], None] | None = None) -> ManagedProcess:
        """Start the process; call `ready()` (which should block until it serves) if given."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        try:
            self.popen = subprocess.Popen(
                list(self.argv),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
            )
        finally:
            log.close()
        if ready is not None:
            try:
                ready()
            except BaseException:
                self.stop()
                raise
            if self.popen.poll() is not None:
                raise NotReady(
                    f"{self.name} exited with {self.popen.returncode}; see {self.log_path}"
                )
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None, "not started"
        return self.popen.pid

    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def log_text(self) -> str:
        """What the process has written so far (stdout and stderr)."""
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM the process group, SIGKILL it after `timeout`; idempotent."""
        if self.popen is None or self.popen.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout)

    def __enter__(self) -> ManagedProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
