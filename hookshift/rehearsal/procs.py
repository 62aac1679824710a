"""Starting and stopping the stack's processes: free loopback ports, readiness, stop by pid.

Every server the rehearsal, the tests and the benchmarks start goes through `ManagedProcess`,
so each one is on a port nobody else holds, is known to be ready before it is used, and is
stopped by its pid (its whole process group) even when the caller is interrupted.
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

LOOPBACK = "127.0.0.1"


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
    raise RuntimeError("no port free for both TCP and UDP on loopback")


def wait_for_port(port: int, host: str = LOOPBACK, timeout: float = 15.0) -> None:
    """Block until something accepts TCP connections on host:port."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"nothing listening on {host}:{port} after {timeout:.0f}s"
                ) from None
            time.sleep(0.05)


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
                raise RuntimeError(
                    f"{self.name} exited with {self.popen.returncode}; see {self.log_path}"
                )
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None, "not started"
        return self.popen.pid

    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

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
