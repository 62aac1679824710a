"""An HTTPS stage on loopback for the tests that send to one (`verify heal`, `probe`): it records
each POST with the SNI it came with, and its headers as sent (decoded as latin-1, so a value
outside ASCII keeps its bytes: ``value.encode("latin-1")`` gives them back). The fixtures below
serve it as STAGE_HOST, named by a DNS server on loopback; a test module takes them with
``from tests.verify.tls_stage import dns as dns`` (and ``stage``, ``stage_context``)."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
import trustme

from hookshift.procs import LOOPBACK
from hookshift.rehearsal.dns import DnsServer

STAGE_HOST = "abc123.execute-api.ap-northeast-2.amazonaws.com"


@dataclass
class Received:
    sni: str | None
    headers: dict[str, str]
    body: bytes


@dataclass
class TlsStage:
    """An HTTPS stage named `name`, listening on `address` (an IPv6 one for a stage with only
    an AAAA record), that takes only `connections` connections (the last one included) before
    it stops listening, like a stage that goes away part-way."""

    context: ssl.SSLContext
    name: str
    connections: int | None = None
    port: int = 0
    address: str = LOOPBACK
    received: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        family = socket.AF_INET6 if ":" in self.address else socket.AF_INET
        self._listener = socket.socket(family)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((self.address, self.port))
        self._listener.listen(16)
        self._listener.settimeout(0.1)
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def url(self, host: str | None = None) -> str:
        return f"https://{host or self.name}:{self.port}/prod/callback"

    def _serve(self) -> None:
        taken = 0
        with self._listener:
            while not self._stop.is_set() and self._listener.fileno() != -1:
                try:
                    conn, _ = self._listener.accept()
                except TimeoutError:
                    continue
                taken += 1
                if taken == self.connections:
                    self._listener.close()  # before answering: the next connect is refused
                with conn:
                    self._answer(conn)

    def _answer(self, conn: socket.socket) -> None:
        names: list[str | None] = []
        self.context.sni_callback = lambda _sock, name, _ctx: names.append(name)
        conn.settimeout(5)
        try:
            with self.context.wrap_socket(conn, server_side=True) as tls:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = tls.recv(65536)
                    if not chunk:
                        return  # a handshake only (the check before sending)
                    data += chunk
                head, _, rest = data.partition(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")[1:]
                headers = dict(line.split(": ", 1) for line in lines)
                length = int(headers.get("Content-Length", "0"))
                while len(rest) < length:
                    rest += tls.recv(65536)
                received = Received(names[0] if names else None, headers, rest)
                self.received.append(received)
                if self.answers(received):
                    tls.sendall(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"
                    )
        except (ssl.SSLError, OSError):
            return  # a client that refused the certificate

    def answers(self, received: Received) -> bool:
        """Whether the stage answers this request (a stage that holds one overrides it)."""
        return True

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


@pytest.fixture(scope="module")
def stage_context(ca: trustme.CA) -> ssl.SSLContext:
    """A server context with STAGE_HOST's certificate, from the suite's CA."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(STAGE_HOST).configure_cert(context)
    return context


@pytest.fixture
def stage(stage_context: ssl.SSLContext) -> Iterator[TlsStage]:
    running = TlsStage(stage_context, STAGE_HOST)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def dns() -> Iterator[DnsServer]:
    """A DNS server on loopback that answers STAGE_HOST with the loopback address."""
    with DnsServer([f"{STAGE_HOST}={LOOPBACK}"]) as server:
        yield server
