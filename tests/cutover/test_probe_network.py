"""The probe's network steps against hostile but real servers on loopback: a proxy named in
the environment, a stage that redirects, one whose answer never ends or never stops, one that
speaks only TLS 1.0, a resolver whose reply is no DNS answer or is cut short over UDP. Each
ends in what the stage (or resolver) really did, in one line, without a traceback or a hang."""

from __future__ import annotations

import socket
import ssl
import struct
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import trustme
from dnslib import QTYPE, RCODE, RR, A, DNSError, DNSRecord

from hookshift.cutover.diagnosis import diagnose
from hookshift.cutover.probe import observe_tls, post, run_probe
from hookshift.procs import LOOPBACK
from hookshift.rehearsal.dns import DnsServer
from hookshift.stagehttp import ANSWER_LIMIT, StageClient, resolve
from tests.cutover.listener import connected as _connected
from tests.cutover.listener import listener as listener  # a fixture, as named
from tests.in_process import run_captured
from tests.verify.tls_stage import STAGE_HOST, TlsStage
from tests.verify.tls_stage import dns as dns  # fixtures, as named
from tests.verify.tls_stage import stage as stage
from tests.verify.tls_stage import stage_context as stage_context

pytestmark = pytest.mark.e2e  # servers on loopback, and real timeouts waited out


# --------------------------------------------------------------------------- proxies


@pytest.mark.parametrize("variable", ["HTTPS_PROXY", "https_proxy", "ALL_PROXY"])
def test_a_proxy_in_the_environment_is_not_used_and_the_probe_says_so(
    stage: TlsStage,
    dns: DnsServer,
    ca_file: Path,
    listener: socket.socket,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    variable: str,
) -> None:
    """nginx and the vendor reach the stage directly: a probe that went through the proxy
    would report what the proxy answered, for a stage it never reached."""
    proxy = f"http://ops:s3cret@{LOOPBACK}:{listener.getsockname()[1]}"
    monkeypatch.setenv(variable, proxy)
    monkeypatch.setenv("NO_PROXY", "")
    code, out, err = run_captured(capsys, "probe", stage.url(), "--resolver", dns.address,
                                  "--ca-file", str(ca_file), "--timeout", "2")  # fmt: skip
    assert code == 0, out + err
    assert out.startswith(f"accepted: {stage.url()} took the probe")
    assert len(stage.received) == 1 and stage.received[0].sni == STAGE_HOST
    assert not _connected(listener), "the probe went through the proxy"
    assert err == (
        f"info: {variable} in the environment is not used: the probe connects to the stage "
        "directly, as nginx and the vendor do (through a proxy it would test the proxy, not "
        "the stage)\n"
    )
    assert "s3cret" not in out + err


# --------------------------------------------------------------------------- answers


@dataclass
class RawStage:
    """A stage on loopback (HTTPS with `context`, else HTTP) that reads each request and
    answers with `respond(connection)`: a redirect, a body that never ends, a huge one."""

    respond: Callable[[socket.socket], None]
    context: ssl.SSLContext | None = None
    requests: list[bytes] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._listener = socket.create_server((LOOPBACK, 0))
        self._listener.settimeout(0.1)
        self.port = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def url(self, path: str = "/prod/callback") -> str:
        scheme = "https" if self.context else "http"
        return f"{scheme}://{LOOPBACK}:{self.port}{path}"

    def _serve(self) -> None:
        with self._listener:
            while not self._stop.is_set():
                try:
                    conn, _ = self._listener.accept()
                except TimeoutError:
                    continue
                threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, raw: socket.socket) -> None:
        raw.settimeout(10)
        try:
            conn = self.context.wrap_socket(raw, server_side=True) if self.context else raw
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return  # a handshake only
                    data += chunk
                self.requests.append(data)
                self.respond(conn)
        except OSError:  # the client went away (it read what it wanted), or refused TLS
            return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


@pytest.fixture
def raw_stage() -> Iterator[Callable[..., RawStage]]:
    started: list[RawStage] = []

    def start(
        respond: Callable[[socket.socket], None], context: ssl.SSLContext | None = None
    ) -> RawStage:
        started.append(RawStage(respond, context))
        return started[-1]

    yield start
    for running in started:
        running.stop()


def _ok(conn: socket.socket) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")


def test_a_plain_http_probe_is_not_sent_through_http_proxy_either(
    raw_stage: Callable[..., RawStage],
    listener: socket.socket,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("HTTP_PROXY", f"http://{LOOPBACK}:{listener.getsockname()[1]}")
    stage = raw_stage(_ok)
    code, out, err = run_captured(capsys, "probe", stage.url(), "--timeout", "2")
    assert code == 0, out + err
    assert len(stage.requests) == 1 and not _connected(listener)
    assert err.startswith("info: HTTP_PROXY in the environment is not used")


def test_a_redirect_is_not_followed_and_says_where_it_points_without_its_password(
    raw_stage: Callable[..., RawStage], listener: socket.socket
) -> None:
    elsewhere = f"https://ops:s3cret@{LOOPBACK}:{listener.getsockname()[1]}/cb"

    def redirect(conn: socket.socket) -> None:
        conn.sendall(
            f"HTTP/1.1 307 Temporary Redirect\r\nLocation: {elsewhere}\r\n"
            "Content-Length: 0\r\n\r\n".encode()
        )

    stage = raw_stage(redirect)
    seen = post(stage.url(), LOOPBACK, '{"a": 1}', None, timeout=2)
    assert seen.status == 307
    assert seen.error == (
        f"it redirects to https://***@{LOOPBACK}:{listener.getsockname()[1]}/cb; not followed: "
        "a callback must reach the stage itself"
    )
    assert not _connected(listener), "the redirect was followed with the callback"


def _trickle(conn: socket.socket) -> None:
    """A 200 whose body is announced and never ends: a byte now and then, for ever."""
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n{")
    while True:
        conn.sendall(b" ")
        threading.Event().wait(0.2)


@pytest.mark.timeout(60)  # before the body was bounded, this read went on for ever
def test_a_body_that_never_ends_keeps_the_status_and_ends_the_read(
    raw_stage: Callable[..., RawStage],
) -> None:
    stage = raw_stage(_trickle)
    seen = post(stage.url(), LOOPBACK, '{"a": 1}', None, timeout=1)
    assert seen.status == 200 and seen.body.startswith("{")


def test_a_huge_body_is_read_only_up_to_the_limit(raw_stage: Callable[..., RawStage]) -> None:
    size = 8 * 1024 * 1024

    def huge(conn: socket.socket) -> None:
        conn.sendall(f"HTTP/1.1 200 OK\r\nContent-Length: {size}\r\n\r\n".encode())
        conn.sendall(b"x" * size)

    stage = raw_stage(huge)
    with StageClient(stage.url(), LOOPBACK, timeout=5) as client:
        response = client.post(b"{}", {"Content-Type": "application/json"})
    assert response.status_code == 200
    assert len(response.content) == ANSWER_LIMIT


# --------------------------------------------------------------------------- TLS


@pytest.fixture(scope="module")
def tls10_context(ca: trustme.CA) -> ssl.SSLContext:
    """A server that speaks TLS 1.0 only (an old load balancer's policy)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert(STAGE_HOST).configure_cert(context)
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    with warnings.catch_warnings():  # Python deprecates the old versions it can still set
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = ssl.TLSVersion.TLSv1
        context.maximum_version = ssl.TLSVersion.TLSv1
    return context


def test_a_tls_1_0_only_stage_is_named_for_its_version_not_for_sni(
    raw_stage: Callable[..., RawStage], tls10_context: ssl.SSLContext, ca_file: Path
) -> None:
    """Every handshake fails there, with SNI or without: the server does not need SNI, it
    needs a TLS version this machine (and API Gateway's clients) still speak."""
    stage = raw_stage(lambda conn: None, context=tls10_context)
    seen = observe_tls(STAGE_HOST, LOOPBACK, stage.port, str(ca_file), timeout=2)
    assert seen.error_kind == "handshake"
    assert seen.sni_required is not True
    assert seen.error.startswith("no TLS version both sides accept: the server offers only")
    assert stage.requests == []


def test_plain_http_on_an_https_url_is_named_as_not_tls_not_as_sni() -> None:
    """Something that is not TLS fails every handshake, with SNI or without: it is the wrong
    port or service, and SNI would not help."""
    with socket.create_server((LOOPBACK, 0)) as server:

        def answer_400() -> None:  # as nginx answers a ClientHello on a plain HTTP port
            conn, _ = server.accept()
            with conn:
                conn.recv(4096)
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")

        threads = [threading.Thread(target=answer_400, daemon=True) for _ in range(3)]
        for thread in threads:
            thread.start()
        seen = observe_tls(STAGE_HOST, LOOPBACK, server.getsockname()[1], None, timeout=2)
    assert seen.error_kind == "handshake" and seen.sni_required is not True
    assert seen.error.startswith("the answer is not TLS: something other than HTTPS")


def test_a_private_ca_given_to_other_tools_is_named_with_the_option_that_takes_it(
    stage: TlsStage, dns: DnsServer, ca_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca_file))
    result = diagnose(run_probe(stage.url(), queue=None, resolver=dns.address, timeout=2))
    assert [f.code for f in result.findings] == ["tls-untrusted"]
    assert (
        f"; REQUESTS_CA_BUNDLE={ca_file} is set in the environment, which the probe does not "
        "read: pass that bundle with --ca-file"
    ) in result.findings[0].cause
    assert stage.received == []


def test_ssl_cert_file_is_the_system_s_cas_for_every_step(
    stage: TlsStage, dns: DnsServer, ca_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OpenSSL reads the system's CAs from SSL_CERT_FILE: the handshake the probe checks and
    the POST it sends trust the same CAs."""
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
    result = diagnose(run_probe(stage.url(), queue=None, resolver=dns.address, timeout=2))
    assert result.ok and result.findings == (), result.findings
    assert len(stage.received) == 1


def test_a_host_written_with_its_trailing_dot_is_sent_without_it(
    stage: TlsStage, dns: DnsServer, ca_file: Path
) -> None:
    """``name.`` is the same name to DNS; as SNI or Host it would match no certificate or
    route."""
    url = stage.url(f"{STAGE_HOST.upper()}.")
    result = diagnose(
        run_probe(url, queue=None, resolver=dns.address, ca_file=str(ca_file), timeout=2)
    )
    assert result.ok, result.findings
    assert result.findings == ()  # a stage host with its dot is still a stage host
    [received] = stage.received
    assert received.sni == STAGE_HOST
    assert received.headers["Host"] == f"{STAGE_HOST}:{stage.port}"


# --------------------------------------------------------------------------- DNS


@contextmanager
def _udp_answering(answer: Callable[[bytes], bytes]) -> Iterator[str]:
    """A UDP port on loopback that answers each datagram with ``answer(datagram)``."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as server:
        server.bind((LOOPBACK, 0))

        def serve() -> None:
            while True:
                try:
                    data, peer = server.recvfrom(4096)
                    if peer is None:  # the socket was closed under the wait: the test is over
                        return
                    server.sendto(answer(data), peer)
                except OSError:
                    return
                except DNSError:  # a datagram the stand-in cannot answer: wait for the next
                    continue

        threading.Thread(target=serve, daemon=True).start()
        yield f"{LOOPBACK}:{server.getsockname()[1]}"


@pytest.fixture(params=["echo", "short"])
def not_dns(request: pytest.FixtureRequest) -> Iterator[str]:
    """A UDP port where something other than a DNS server answers: it echoes the query back
    (a query, not a reply), or sends a few bytes that are no DNS message."""
    with _udp_answering(lambda data: data if request.param == "echo" else b"\x00\x01") as at:
        yield at


def test_a_resolver_whose_reply_is_not_dns_is_one_finding_not_a_traceback(
    not_dns: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_captured(capsys, "probe", f"https://{STAGE_HOST}/prod/callback",
                                  "--resolver", not_dns, "--timeout", "1")  # fmt: skip
    assert code == 1 and err == "", err
    assert (
        f"{STAGE_HOST} has no address (ERROR: its reply is not a DNS answer to the question: "
        "is a DNS server listening there?)"
    ) in out


def test_an_answer_truncated_over_udp_is_asked_again_over_tcp() -> None:
    """A resolver whose answer does not fit a UDP datagram sets TC and sends it over TCP."""
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp,
        socket.create_server((LOOPBACK, 0)) as tcp,
    ):
        port = tcp.getsockname()[1]
        udp.bind((LOOPBACK, port))

        def over_udp() -> None:
            data, peer = udp.recvfrom(4096)
            reply = DNSRecord.parse(data).reply()
            reply.header.tc = 1
            udp.sendto(reply.pack(), peer)

        def over_tcp() -> None:
            conn, _ = tcp.accept()
            with conn:
                (length,) = struct.unpack("!H", conn.recv(2))
                query = DNSRecord.parse(conn.recv(length))
                reply = query.reply()
                reply.add_answer(RR(STAGE_HOST, QTYPE.A, rdata=A("127.0.0.9"), ttl=5))
                packed = reply.pack()
                conn.sendall(struct.pack("!H", len(packed)) + packed)

        for serve in (over_udp, over_tcp):
            threading.Thread(target=serve, daemon=True).start()
        answer = resolve(STAGE_HOST, (LOOPBACK, port), timeout=2)
    assert (answer.rcode, answer.addresses) == ("NOERROR", ("127.0.0.9",))


@pytest.mark.parametrize(
    ("rcode", "says"), [("SERVFAIL", "could not resolve it"), ("REFUSED", "refuses to answer it")]
)
def test_a_resolver_that_fails_or_refuses_is_named_with_what_that_means(
    rcode: str, says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    def fail(data: bytes) -> bytes:
        reply = DNSRecord.parse(data).reply()
        reply.header.rcode = getattr(RCODE, rcode)
        return bytes(reply.pack())

    with _udp_answering(fail) as resolver:
        code, out, err = run_captured(capsys, "probe", f"https://{STAGE_HOST}/prod/callback",
                                      "--resolver", resolver, "--timeout", "1")  # fmt: skip
    assert code == 1 and err == "", err
    assert f"{STAGE_HOST} has no address ({rcode}: {resolver} {says} (" in out
    assert f"check the resolver {resolver}, or pass --resolver" in out  # not the name's fault
    assert "point the name at API Gateway" not in out


def test_a_custom_domain_whose_cname_chain_ends_in_ipv6_only_is_reached_there(
    ca: trustme.CA, ca_file: Path
) -> None:
    """hooks -> the regional d-... target -> AAAA only: the probe follows the chain, asks for
    AAAA when there is no A, and connects over IPv6 with the custom domain as SNI."""
    domain, target = "hooks.example.test", "d-xyz789.execute-api.ap-northeast-2.amazonaws.com"
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(domain).configure_cert(context)
    stage = TlsStage(context, domain, address="::1")
    try:
        with DnsServer([f"{domain}={target}", f"{target}=::1"]) as dns:
            result = diagnose(
                run_probe(stage.url(), queue=None, resolver=dns.address, ca_file=str(ca_file),
                          timeout=2)
            )  # fmt: skip
    finally:
        stage.stop()
    assert result.ok and result.findings == (), result.findings
    [received] = stage.received
    assert received.sni == domain and received.headers["Host"] == f"{domain}:{stage.port}"


def test_a_stage_that_redirects_fails_the_probe_saying_where_it_points(
    raw_stage: Callable[..., RawStage],
    listener: socket.socket,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A redirect is not the stage's acceptance: a vendor that follows it sends the callback
    somewhere nobody checked, one that does not loses it."""
    port = listener.getsockname()[1]

    def redirect(conn: socket.socket) -> None:
        conn.sendall(
            f"HTTP/1.1 307 Temporary Redirect\r\nLocation: https://ops:s3cret@{LOOPBACK}:{port}/cb"
            "\r\nContent-Length: 0\r\n\r\n".encode()
        )

    stage = raw_stage(redirect)
    code, out, err = run_captured(capsys, "probe", stage.url(), "--timeout", "2")
    assert code == 1, out + err
    assert out.startswith(f"NOT LANDED: the probe through {stage.url()}")
    assert (
        f"error: http-redirect: {LOOPBACK} answered 307 to POST /prod/callback: it redirects to "
        f"https://***@{LOOPBACK}:{port}/cb; not followed"
    ) in out
    assert "s3cret" not in out + err
    assert not _connected(listener)
