"""The load driver: plays the vendor, sending Bizppurio-shaped delivery results at a set rate.

Each callback is built from the shipped samples (``rehearsal/samples/bizppurio-results.jsonl``)
with unique keys (``CMSGID``, ``MSGID``, ``REFKEY`` carry the run id and a sequence number), so
every callback can be found again in the app's ledger and in the queue. Values keep what breaks
a careless integration: Korean text and ``&``, ``+``, ``%``, ``=``. Bodies are compact JSON,
UTF-8, ``Content-Type: application/json``, as Bizppurio posts them.

The driver records what it sent and what it got back (one JSONL line per callback) and never
retries: a callback that failed at the app is exactly what the rehearsal wants to show.
Building callbacks is pure (`make_callbacks`); sending is the shell (`send_callbacks`).
"""

from __future__ import annotations

import json
import ssl
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx

from hookshift.private import open_private

SAMPLES_FILE = "bizppurio-results.jsonl"
CONTENT_TYPE = "application/json"

# Values that break an integration without $util.urlEncode, or a charset-naive one.
TRICKY_USERDATA = (
    "order=A-{seq}&coupon=50%+off",
    "배송 안내: 주문 #{seq} 출고 완료",
    "a=b=c; x+y; 100% #{seq}",
    "환불 요청 {seq} & 재발송=Y + 50%",
    "plain-{seq}",
)


def load_samples() -> list[dict[str, str]]:
    """The sample callbacks shipped in the package (one JSON object per line)."""
    text = resources.files("hookshift.rehearsal.samples").joinpath(SAMPLES_FILE).read_text("utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@dataclass(frozen=True)
class Callback:
    """One callback to send: its sequence number, unique key (``CMSGID``) and exact body."""

    seq: int
    key: str
    body: bytes
    content_type: str = CONTENT_TYPE

    @property
    def fields(self) -> dict[str, str]:
        return dict(json.loads(self.body))


def make_callbacks(
    count: int,
    *,
    run_id: str,
    samples: Sequence[Mapping[str, str]] | None = None,
    start: int = 0,
    unixtime: int | None = None,
) -> list[Callback]:
    """`count` callbacks numbered from `start`, cycling through the samples, keys unique per run.

    `run_id` (letters and digits) makes keys unique across runs that share a queue.
    """
    base = list(samples) if samples is not None else load_samples()
    if not base:
        raise ValueError("no sample callbacks to build from")
    now = int(time.time()) if unixtime is None else unixtime
    out = []
    for seq in range(start, start + count):
        fields = dict(base[seq % len(base)])
        key = f"hs{run_id}{seq:07d}"
        fields["CMSGID"] = key
        fields["MSGID"] = f"{fields.get('MSGID', 'msg')[:12]}{run_id}{seq:07d}"
        fields["PHONE"] = f"010{(seq * 7919) % 100_000_000:08d}"
        fields["UNIXTIME"] = str(now)
        fields["USERDATA"] = TRICKY_USERDATA[seq % len(TRICKY_USERDATA)].format(seq=seq)
        if "REFKEY" in fields:
            fields["REFKEY"] = f"ref-{run_id}-{seq}"
        body = json.dumps(fields, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        out.append(Callback(seq=seq, key=key, body=body))
    return out


@dataclass(frozen=True)
class SendResult:
    """What happened to one callback: the HTTP status, or the transport error."""

    seq: int
    key: str
    time: float
    status: int | None
    error: str
    elapsed_ms: float
    url: str
    body: str

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def _connect_to(url: str, connect_to: Mapping[str, str]) -> tuple[str, dict[str, str], str | None]:
    """Rewrite `url` to an address from `connect_to` (host -> IP), keeping Host and SNI.

    How the driver reaches a name that only the rehearsal's DNS knows (a custom domain) with the
    certificate still checked against the name, like curl's ``--connect-to``.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    if host not in connect_to:
        return url, {}, None
    netloc = connect_to[host] + (f":{parts.port}" if parts.port else "")
    host_header = host + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc)), {"Host": host_header}, host


def send_callbacks(
    url: str,
    callbacks: Sequence[Callback],
    *,
    rate: float = 50.0,
    concurrency: int = 8,
    record: Path | None = None,
    on_result: Callable[[SendResult], None] | None = None,
    before_send: Callable[[Callback], None] | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 10.0,
    verify: bool | str = True,
    connect_to: Mapping[str, str] | None = None,
) -> list[SendResult]:
    """POST each callback to `url` at `rate` per second; return the results in sequence order.

    Sends are scheduled at ``i / rate`` seconds from the start, by up to `concurrency` workers
    (so a slow answer does not slow the schedule). `record` gets one JSONL line per callback
    (`SendResult` fields) as each completes; `on_result` is called from the worker threads (a
    progress bar); `before_send` runs just before a callback goes out (a scenario hook, e.g.
    "stop the app at callback 80"). `verify` is a CA bundle path for TLS targets.
    """
    if rate <= 0:
        raise ValueError("rate must be positive")
    target, extra_headers, sni = _connect_to(url, connect_to or {})
    base_headers = {**extra_headers, **(headers or {})}
    extensions = {"sni_hostname": sni} if sni else {}
    tls: bool | ssl.SSLContext = (
        ssl.create_default_context(cafile=verify) if isinstance(verify, str) else verify
    )
    results: dict[int, SendResult] = {}
    lock = threading.Lock()
    sink = open_private(record) if record is not None else None  # bodies: the owner's only
    started = time.monotonic()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    try:
        with httpx.Client(timeout=timeout, verify=tls, limits=limits) as client:

            def send(index: int, callback: Callback) -> None:
                delay = started + index / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                if before_send is not None:
                    before_send(callback)
                sent_at = time.time()
                t0 = time.monotonic()
                status: int | None = None
                error = ""
                try:
                    response = client.post(
                        target,
                        content=callback.body,
                        headers={"Content-Type": callback.content_type, **base_headers},
                        extensions=extensions,
                    )
                    status = response.status_code
                except httpx.HTTPError as exc:
                    error = f"{type(exc).__name__}: {exc}"
                result = SendResult(
                    seq=callback.seq,
                    key=callback.key,
                    time=round(sent_at, 6),
                    status=status,
                    error=error,
                    elapsed_ms=round((time.monotonic() - t0) * 1000, 3),
                    url=url,
                    body=callback.body.decode("utf-8"),
                )
                with lock:
                    results[callback.seq] = result
                    if sink is not None:
                        line = json.dumps(asdict(result), ensure_ascii=False) + "\n"
                        sink.write(line.encode("utf-8"))
                        sink.flush()
                if on_result is not None:
                    on_result(result)

            pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="load")
            try:
                futures = [pool.submit(send, i, cb) for i, cb in enumerate(callbacks)]
                for future in futures:
                    future.result()
            finally:  # on Ctrl-C, drop what has not started instead of sending it all first
                pool.shutdown(wait=True, cancel_futures=True)
    finally:
        if sink is not None:
            sink.close()
    return [results[cb.seq] for cb in callbacks]
