"""The sample callback app: the "app server" that nginx proxies the vendor's callbacks to.

It stands in for the user's application during a rehearsal. What matters about it is what
matters about a real one during a migration: it answers 200 to every POST it accepts, it writes
what it accepted to durable storage (a JSONL *ledger*, one line per callback, flushed and
fsynced before the answer goes out, so a line in the ledger means "the app has it"), and it
can be stopped and started, which is a deploy: while it is down nginx answers the vendor 502
and that callback never reaches the app. The rehearsal shows those callbacks in the queue.

Ledger line (the ``jsonl:`` app source of ``hookshift verify parity`` reads these fields)::

    {"time": 1795852500.123, "request_id": "9f1c...", "method": "POST",
     "path": "/callback/bizppurio", "content_type": "application/json", "body": "{...}"}

``body`` is the raw request body decoded as UTF-8 (``body_b64`` instead when it is not UTF-8);
``request_id`` is the request-id header nginx passes on (empty when there is none).

Run it as a process (how the stack runs it, so a deploy is a real stop and start)::

    python -m hookshift.rehearsal.app --port 8081 --ledger app-ledger.jsonl
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any, BinaryIO

from hookshift.private import make_dirs, open_private
from hookshift.procs import LOOPBACK, ManagedProcess, wait_for_port

REQUEST_ID_HEADER = "X-Request-Id"  # docs/contracts.md section 2
HEALTH_PATH = "/healthz"


class Ledger:
    """An append-only JSONL file, its owner's only (it holds whole callbacks); each line is on
    disk before `append` returns."""

    def __init__(self, path: Path, *, fsync: bool = True) -> None:
        self.path = path
        self.fsync = fsync
        self._lock = threading.Lock()
        make_dirs(path.parent)
        self._file: BinaryIO = open_private(path)

    def append(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"
        with self._lock:
            self._file.write(line.encode("utf-8"))
            self._file.flush()
            if self.fsync:
                os.fsync(self._file.fileno())

    def close(self) -> None:
        with self._lock:
            self._file.close()


def ledger_record(
    *, path: str, method: str, headers: dict[str, str], body: bytes, request_id_header: str
) -> dict[str, Any]:
    """What the app writes for one accepted request (pure: the handler supplies the parts)."""
    lowered = {k.lower(): v for k, v in headers.items()}
    record: dict[str, Any] = {
        "time": round(time.time(), 6),
        "request_id": lowered.get(request_id_header.lower(), ""),
        "method": method,
        "path": path,
        "content_type": lowered.get("content-type", ""),
    }
    try:
        record["body"] = body.decode("utf-8")
    except UnicodeDecodeError:
        record["body_b64"] = base64.b64encode(body).decode("ascii")
    return record


def read_ledger(path: Path) -> Iterator[dict[str, Any]]:
    """The ledger's records in order; a torn last line (the app killed mid-write) is skipped."""
    if not path.exists():
        return
    with path.open("rb") as handle:
        for raw in handle:
            if not raw.endswith(b"\n"):
                break
            try:
                yield json.loads(raw)
            except json.JSONDecodeError:
                continue


class CallbackApp(ThreadingHTTPServer):
    """The HTTP server; `ledger`, `delay` and the header name are read by the handler."""

    daemon_threads = True
    allow_reuse_address = True
    # socketserver's default listen backlog is 5: a burst from nginx (or a CPU-starved accept
    # loop) overflows it, SYNs are dropped and nginx logs connect timeouts that are not the app's
    request_queue_size = 511

    def __init__(
        self,
        address: tuple[str, int],
        ledger: Ledger,
        *,
        delay: float = 0.0,
        request_id_header: str = REQUEST_ID_HEADER,
    ) -> None:
        super().__init__(address, _Handler)
        self.ledger = ledger
        self.delay = delay
        self.request_id_header = request_id_header


class _Handler(BaseHTTPRequestHandler):
    server: CallbackApp
    protocol_version = "HTTP/1.1"  # keep-alive, as nginx's upstream keepalive would use

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.server.delay:
            time.sleep(self.server.delay)  # a real app does some work before it answers
        self.server.ledger.append(
            ledger_record(
                path=self.path,
                method="POST",
                headers=dict(self.headers.items()),
                body=body,
                request_id_header=self.server.request_id_header,
            )
        )
        self._answer(200, b'{"ok":true}')

    def do_GET(self) -> None:
        if self.path == HEALTH_PATH:
            self._answer(200, b'{"ok":true}')
        else:
            self._answer(404, b'{"error":"not found"}')

    def _answer(self, status: int, payload: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        return  # the ledger is the log; per-request lines would only slow the app down


def start_app(
    port: int,
    ledger: Path,
    log_path: Path,
    *,
    delay_ms: float = 0.0,
    fsync: bool = True,
    request_id_header: str = REQUEST_ID_HEADER,
) -> ManagedProcess:
    """Start the app as its own process (stopped by pid) and wait until it accepts connections."""
    argv = [
        sys.executable,
        "-m",
        "hookshift.rehearsal.app",
        "--port",
        str(port),
        "--ledger",
        str(ledger),
    ]
    argv += ["--delay-ms", str(delay_ms), "--request-id-header", request_id_header]
    if not fsync:
        argv.append("--no-fsync")
    process = ManagedProcess(name="app", argv=argv, log_path=log_path, env=_child_env())
    return process.start(ready=lambda: wait_for_port(port, timeout=15))


def _child_env() -> dict[str, str]:
    """The environment for ``python -m hookshift.rehearsal...``: importable from anywhere."""
    root = str(Path(__file__).resolve().parents[2])
    path = os.environ.get("PYTHONPATH", "")
    return {**os.environ, "PYTHONPATH": root + (os.pathsep + path if path else "")}


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until SIGTERM/SIGINT; print one ``ready`` line once the socket listens."""
    parser = argparse.ArgumentParser(
        prog="python -m hookshift.rehearsal.app",
        description="Sample callback app: records every POST to a JSONL ledger and answers 200.",
    )
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default=LOOPBACK)
    parser.add_argument("--ledger", type=Path, required=True, help="JSONL file to append to")
    parser.add_argument("--delay-ms", type=float, default=0.0, help="work per callback (ms)")
    parser.add_argument("--no-fsync", action="store_true", help="flush only, no fsync per line")
    parser.add_argument("--request-id-header", default=REQUEST_ID_HEADER)
    args = parser.parse_args(argv)

    ledger = Ledger(args.ledger, fsync=not args.no_fsync)
    server = CallbackApp(
        (args.host, args.port),
        ledger,
        delay=args.delay_ms / 1000.0,
        request_id_header=args.request_id_header,
    )

    def _stop(signum: int, frame: FrameType | None) -> None:
        # shutdown() waits for serve_forever to return, so it must run on another thread
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    print(f"app ready http://{args.host}:{args.port} ledger {args.ledger}", flush=True)
    try:
        server.serve_forever(poll_interval=0.1)
    finally:
        server.server_close()
        ledger.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
