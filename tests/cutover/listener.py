"""A loopback port that takes connections and never answers: a test knows whether anything
connected (the kernel completes a connection into the backlog) without answering it."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from hookshift.procs import LOOPBACK


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    with socket.create_server((LOOPBACK, 0)) as server:
        server.setblocking(False)
        yield server


def connected(server: socket.socket) -> bool:
    """Whether something connected to `server` since the last look."""
    try:
        conn, _ = server.accept()
    except BlockingIOError:
        return False
    conn.close()
    return True
