"""Metrics in Prometheus' text exposition format, for the signals people already collect:
a file for node_exporter's textfile collector (replaced atomically, so the collector never
reads half of one) or an HTTP endpoint on loopback.

Only counts and times go out: no key, body or phone number of a callback, so the file may be
world-readable like any other textfile-collector file.
"""

from __future__ import annotations

import math
import socket
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING

from hookshift.durable import write_atomic
from hookshift.errors import InputError

if TYPE_CHECKING:
    from hookshift.verify.follow import FollowState

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass(frozen=True)
class Family:
    """One metric family: a name, its help and type, and its samples (labels -> value)."""

    name: str
    help: str
    type: str  # "gauge" | "counter"
    samples: list[tuple[Mapping[str, str], float]] = field(default_factory=list)


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(int(value)) if float(value).is_integer() else repr(float(value))


def render(families: list[Family]) -> str:
    """The text format: HELP and TYPE per family, one line per sample. A counter is named
    ``<name>_total`` in all three, as node_exporter and the format's parsers expect."""
    lines: list[str] = []
    for fam in families:
        name = fam.name
        if fam.type == "counter" and not name.endswith("_total"):
            name += "_total"
        lines.append(f"# HELP {name} {fam.help.replace(chr(92), chr(92) * 2)}")
        lines.append(f"# TYPE {name} {fam.type}")
        for labels, value in fam.samples:
            text = ",".join(f'{k}="{_escape_label(v)}"' for k, v in sorted(labels.items()))
            lines.append(
                f"{name}{{{text}}} {_number(value)}" if text else f"{name} {_number(value)}"
            )
    return "\n".join(lines) + "\n"


def write_textfile(path: Path, families: list[Family]) -> None:
    """Replace `path` atomically (node_exporter skips files not ending in .prom)."""
    write_atomic(path, render(families), default_mode=0o644)


def pull_families(state: FollowState) -> list[Family]:
    """What `pull --follow` reports: when it last succeeded, the queue's lag, its totals."""
    return [
        Family(
            "hookshift_pull_last_success_timestamp_seconds",
            "Unix time of the last receive from the queue that answered.",
            "gauge",
            [({}, state.last_success if state.last_success is not None else 0.0)],
        ),
        Family(
            "hookshift_queue_lag_seconds",
            "Age of the oldest message of the last batch received (0 when the queue was empty).",
            "gauge",
            [({}, round(state.queue_lag_s, 3))],
        ),
        Family(
            "hookshift_pull_messages_total",
            "Messages received from the queue by this run, by what became of them.",
            "counter",
            [
                ({"outcome": "archived"}, state.archived),
                ({"outcome": "already_archived"}, state.already_archived),
                ({"outcome": "deleted"}, state.deleted),
                ({"outcome": "delete_failed"}, state.delete_failures),
            ],
        ),
        Family(
            "hookshift_pull_errors_total",
            "Receives or deletes that failed (retried with back-off).",
            "counter",
            [({}, state.errors)],
        ),
        Family(
            "hookshift_archive_messages",
            "Messages held by the archive.",
            "gauge",
            [({}, state.archive_total)],
        ),
    ]


def parity_families(
    counts: Mapping[str, int], classes: tuple[str, ...], passed: bool, updated_at: float
) -> list[Family]:
    """What `verify watch` reports: callbacks per parity class and the verdict."""
    return [
        # a gauge although named _total (the name people query): a class's count also falls,
        # as in_flight callbacks become matched or a heal turns missing ones into replayed
        Family(
            "hookshift_parity_callbacks_total",
            "Callbacks per parity class over the watched window.",
            "gauge",
            [({"class": name}, counts.get(name, 0)) for name in classes],
        ),
        Family(
            "hookshift_parity_pass",
            "1 when the parity verdict is pass, 0 when it is fail.",
            "gauge",
            [({}, 1 if passed else 0)],
        ),
        Family(
            "hookshift_parity_updated_timestamp_seconds",
            "Unix time of the last parity update.",
            "gauge",
            [({}, round(updated_at, 3))],
        ),
    ]


class MetricsServer:
    """``--metrics-listen 127.0.0.1:PORT``: serves the latest families at /metrics."""

    def __init__(self, host: str, port: int, current: Callable[[], list[Family]]) -> None:
        body_of = current

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?")[0] not in ("/metrics", "/"):
                    self.send_error(404)
                    return
                data = render(body_of()).encode("utf-8")
                self.send_response(200)
                self.send_header("Content-Type", CONTENT_TYPE)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                return

        family = socket.AF_INET6 if ":" in host else socket.AF_INET

        class Server(ThreadingHTTPServer):
            address_family = family

        try:
            self.server = Server((host, port), Handler)
        except OSError as exc:
            raise InputError(
                f"cannot listen on {host}:{port} ({exc.strerror or exc})",
                where="--metrics-listen",
                fix="choose a free port on a loopback address, e.g. 127.0.0.1:9464",
            ) from None
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def start(self) -> MetricsServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
