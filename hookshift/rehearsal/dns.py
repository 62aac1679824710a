"""A tiny authoritative DNS server on loopback, so name resolution in the rehearsal is real.

nginx resolves a variable ``proxy_pass`` host at run time with its own resolver (``resolver
127.0.0.1:PORT``), probes resolve the custom domain with dnspython, and a hand-made mirror's
failures are about exactly that step (``no resolver defined``, ``could not be resolved (110:
Operation timed out)``). This server answers the names it is given (A records and CNAME chains such
as ``hooks.example.com -> d-abc.execute-api.REGION.amazonaws.com -> 127.0.0.1``), says NXDOMAIN for
every other name, and in *blackhole* mode never answers at all, which is what a resolver that cannot
reach a DNS server looks like to nginx (a timeout).

It listens on UDP and TCP on the same port (nginx uses UDP, large answers and some clients TCP),
runs in a thread (``with DnsServer(records) as dns:``) or as a process::

    python -m hookshift.rehearsal.dns --port 5353 \
        --record abc123.execute-api.ap-northeast-2.amazonaws.com=127.0.0.1 \
        --record hooks.example.com=d-xyz.execute-api.ap-northeast-2.amazonaws.com \
        --record d-xyz.execute-api.ap-northeast-2.amazonaws.com=127.0.0.1
"""

from __future__ import annotations

import argparse
import ipaddress
import signal
import socket
import sys
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from dnslib import AAAA, CNAME, QTYPE, RCODE, RR, A, DNSRecord
from dnslib.server import DNSHandler, DNSLogger, DNSServer

from hookshift.procs import LOOPBACK, ManagedProcess, free_port_pair, wait_until

DEFAULT_TTL = 5  # short, so a rehearsal that changes a record sees the change soon


def _norm(name: str) -> str:
    """DNS names compare case-insensitively and without the root dot."""
    return name.strip().rstrip(".").lower()


@dataclass(frozen=True)
class Record:
    """One resource record: ``A`` / ``AAAA`` (value is an address) or ``CNAME`` (value a name)."""

    name: str
    rtype: str
    value: str

    @classmethod
    def parse(cls, spec: str) -> Record:
        """``NAME=IP`` gives an A (or AAAA) record, ``NAME=OTHER.NAME`` a CNAME.

        ``NAME=CNAME:TARGET`` / ``NAME=A:IP`` spell the type out when it matters.
        """
        name, sep, value = spec.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise ValueError(f"record {spec!r} is not NAME=VALUE (e.g. api.example.com=127.0.0.1)")
        value = value.strip()
        rtype, colon, rest = value.partition(":")
        if colon and rtype.upper() in {"A", "AAAA", "CNAME"}:
            return cls(_norm(name), rtype.upper(), rest.strip())
        try:
            address = ipaddress.ip_address(value)
        except ValueError:
            return cls(_norm(name), "CNAME", _norm(value))
        return cls(_norm(name), "AAAA" if address.version == 6 else "A", value)


@dataclass(frozen=True)
class Answer:
    """What the zone says to one question: a response code and the answer records in order."""

    rcode: str  # "NOERROR" or "NXDOMAIN"
    records: tuple[Record, ...]


def resolve(records: Iterable[Record], qname: str, qtype: str) -> Answer:
    """Answer ``qname``/``qtype`` from ``records`` as an authoritative server would.

    CNAMEs are followed within the zone (the answer carries the chain and the final addresses);
    a known name without records of the asked type is NOERROR with no answer (NODATA), which
    matters because nginx asks for A and AAAA and must not take the empty AAAA as NXDOMAIN.
    """
    by_name: dict[str, list[Record]] = {}
    for record in records:
        by_name.setdefault(record.name, []).append(record)
    name = _norm(qname)
    if name not in by_name:
        return Answer("NXDOMAIN", ())
    chain: list[Record] = []
    seen: set[str] = set()
    while name in by_name and name not in seen:
        seen.add(name)
        here = by_name[name]
        wanted = [r for r in here if qtype in (r.rtype, "ANY")]
        if wanted:
            return Answer("NOERROR", (*chain, *wanted))
        cnames = [r for r in here if r.rtype == "CNAME"]
        if not cnames:
            break
        chain.append(cnames[0])
        name = cnames[0].value
    return Answer("NOERROR", tuple(chain))


class ZoneResolver:
    """dnslib resolver over a mutable record set; also records every question it is asked."""

    def __init__(self, records: Iterable[Record], *, ttl: int = DEFAULT_TTL) -> None:
        self._lock = threading.Lock()
        self._records = list(records)
        self.ttl = ttl
        self.blackhole = False
        self.queries: list[tuple[str, str]] = []

    def set_records(self, records: Iterable[Record]) -> None:
        with self._lock:
            self._records = list(records)

    def records(self) -> tuple[Record, ...]:
        with self._lock:
            return tuple(self._records)

    def resolve(self, request: DNSRecord, handler: Any) -> DNSRecord:
        qname = str(request.q.qname)
        qtype = QTYPE.get(request.q.qtype)
        with self._lock:
            self.queries.append((_norm(qname), str(qtype)))
            answer = resolve(self._records, qname, str(qtype))
        reply = request.reply()  # sets qr, aa, rd, ra and copies the question
        reply.header.rcode = getattr(RCODE, answer.rcode)
        for record in answer.records:
            rdata = {"A": A, "AAAA": AAAA, "CNAME": CNAME}[record.rtype](record.value)
            reply.add_answer(
                RR(record.name + ".", getattr(QTYPE, record.rtype), rdata=rdata, ttl=self.ttl)
            )
        return reply


class _Handler(DNSHandler):  # type: ignore[misc]
    """dnslib's handler, except that in blackhole mode a question is read and dropped."""

    def handle(self) -> None:
        resolver = self.server.resolver
        if getattr(resolver, "blackhole", False):
            if self.server.socket_type == socket.SOCK_DGRAM:
                try:
                    question = DNSRecord.parse(self.request[0]).q
                    resolver.queries.append((_norm(str(question.qname)), "blackholed"))
                except Exception:  # a malformed datagram is dropped like any other
                    pass
            return
        super().handle()


class _QuietLogger(DNSLogger):  # type: ignore[misc]
    def __init__(self) -> None:
        super().__init__(log="-request,-reply,-truncated,-error,-recv,-send,-data", prefix=False)


class DnsServer:
    """Authoritative DNS on ``127.0.0.1:port`` over UDP and TCP, in background threads.

    ``blackhole`` can be switched on and off while it runs; ``queries`` lists every question
    (name, type) so a test can check that nginx really asked.
    """

    def __init__(
        self,
        records: Iterable[Record | str] = (),
        *,
        port: int | None = None,
        blackhole: bool = False,
        ttl: int = DEFAULT_TTL,
    ) -> None:
        parsed = [r if isinstance(r, Record) else Record.parse(r) for r in records]
        self.resolver = ZoneResolver(parsed, ttl=ttl)
        self.resolver.blackhole = blackhole
        self.port = port or free_port_pair()
        self.host = LOOPBACK
        self._servers: list[DNSServer] = []

    @property
    def address(self) -> str:
        """``127.0.0.1:PORT``, as nginx's ``resolver`` directive takes it."""
        return f"{self.host}:{self.port}"

    @property
    def blackhole(self) -> bool:
        return bool(self.resolver.blackhole)

    @blackhole.setter
    def blackhole(self, value: bool) -> None:
        self.resolver.blackhole = value

    @property
    def queries(self) -> list[tuple[str, str]]:
        return self.resolver.queries

    def set_records(self, records: Iterable[Record | str]) -> None:
        self.resolver.set_records(r if isinstance(r, Record) else Record.parse(r) for r in records)

    def start(self) -> DnsServer:
        logger = _QuietLogger()
        for tcp in (False, True):
            server = DNSServer(
                self.resolver,
                port=self.port,
                address=self.host,
                tcp=tcp,
                logger=logger,
                handler=_Handler,
            )
            server.server.daemon_threads = True
            # serve_forever checks for shutdown every poll_interval (0.5 s by default, which
            # every stop would wait out once per server)
            server.thread = threading.Thread(
                target=server.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
            )
            server.thread.start()
            self._servers.append(server)
        return self

    def stop(self) -> None:
        for server in self._servers:
            server.stop()
            server.server.server_close()
        self._servers.clear()

    def __enter__(self) -> DnsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the server until SIGTERM/SIGINT; print one ``ready`` line once both sockets listen."""
    parser = argparse.ArgumentParser(
        prog="python -m hookshift.rehearsal.dns",
        description="Authoritative DNS on loopback for the rehearsal (UDP and TCP, one port).",
    )
    parser.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    parser.add_argument(
        "--record",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="NAME=IP (A/AAAA) or NAME=OTHER.NAME (CNAME); repeatable",
    )
    parser.add_argument("--blackhole", action="store_true", help="never answer (a DNS timeout)")
    parser.add_argument("--ttl", type=int, default=DEFAULT_TTL)
    args = parser.parse_args(argv)
    try:
        records = [Record.parse(spec) for spec in args.record]
    except ValueError as exc:
        print(f"hookshift.rehearsal.dns: error: {exc}", file=sys.stderr)
        return 2
    server = DnsServer(records, port=args.port or None, blackhole=args.blackhole, ttl=args.ttl)
    stopping = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    with server:
        print(f"dns ready udp+tcp {server.address}", flush=True)
        stopping.wait()
    return 0


def start_dns_process(
    workdir: Path,
    records: Iterable[Record | str],
    *,
    blackhole: bool = False,
    port: int | None = None,
    timeout: float = 15.0,
) -> tuple[ManagedProcess, int]:
    """Run ``python -m hookshift.rehearsal.dns`` as a managed process; return it and its port
    once ready.

    Readiness is the ``dns ready`` line in its log, so a blackholed server (which never answers)
    is waited for the same way. Stop it with ``process.stop()`` (by pid).
    """
    port = port or free_port_pair()
    specs = [f"{r.name}={r.rtype}:{r.value}" if isinstance(r, Record) else r for r in records]
    argv = [sys.executable, "-m", "hookshift.rehearsal.dns", "--port", str(port)]
    for spec in specs:
        argv += ["--record", spec]
    if blackhole:
        argv.append("--blackhole")
    log_path = workdir / f"dns-{port}.log"
    process = ManagedProcess(name="dns", argv=argv, log_path=log_path)

    def ready() -> None:
        wait_until(
            lambda: "dns ready" in process.log_text(),
            f"'dns ready' in {log_path}",
            timeout=timeout,
            process=process,
        )

    process.start(ready=ready)
    return process, port


if __name__ == "__main__":
    sys.exit(main())
