"""Tiny recording HTTP(S) servers for the mirror's functional tests (threads, loopback only)."""

from __future__ import annotations

import ssl
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from hookshift.procs import LOOPBACK


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _record(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        server: RecordingServer = self.server  # type: ignore[assignment]
        if server.stopping.is_set():
            self.close_connection = True  # a stopped server serves no kept connection either
            return
        if server.hanging.is_set():
            with server.lock:
                server.held += 1
            while server.hanging.is_set() and not server.stopping.is_set():
                time.sleep(0.02)
            self.close_connection = True
            return  # the client gave up long ago: nothing is recorded or answered
        with server.lock:
            server.received.append(
                Received(
                    self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body
                )
            )
        payload = server.payload
        self.send_response(server.status)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_POST = _record
    do_GET = _record

    def log_message(self, format: str, *args: Any) -> None:
        return


class RecordingServer(ThreadingHTTPServer):
    """Answers everything (200 unless `status` says otherwise) and keeps what it received (and
    how many connections).

    `payload` is the answer's body; an empty one (``Content-Length: 0``) is what lets nginx
    keep a mirror's connection alive, as API Gateway's empty integration response does.
    While `hanging` is set, requests are read and never answered (counted in `held`). With
    TLS, the SNI names clients sent are in `sni`.
    """

    daemon_threads = True
    request_queue_size = 1024  # many copies may connect at once

    def __init__(
        self,
        tls: ssl.SSLContext | None = None,
        payload: bytes = b"ok",
        status: int = 200,
        host: str = LOOPBACK,
        port: int = 0,
    ) -> None:
        super().__init__((host, port), _Handler)
        self.received: list[Received] = []
        self.sni: list[str | None] = []
        self.hanging = threading.Event()
        self.stopping = threading.Event()
        self.held = 0
        self.connections = 0
        self.payload = payload
        self.status = status
        self.lock = threading.Lock()
        if tls is not None:
            tls.sni_callback = lambda _sock, name, _ctx: self.sni.append(name)  # type: ignore[assignment,misc]
            # the handshake runs in the request's thread, so a held request blocks no other
            self.socket = tls.wrap_socket(
                self.socket, server_side=True, do_handshake_on_connect=False
            )
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)

    def get_request(self) -> tuple[Any, Any]:
        accepted = super().get_request()
        with self.lock:
            self.connections += 1
        return accepted

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def start(self) -> RecordingServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.shutdown()
        self.server_close()
