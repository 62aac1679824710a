"""The probe's network side: DNS, TLS, one POST, and a search of the queue for its marker.

Thin on purpose: every step records what it saw in a `diagnosis` observation and never decides
anything; `cutover.diagnosis.diagnose` does. A step that cannot run because an earlier one
failed (no address, so no handshake) is simply not observed.

DNS is asked with dnspython against the resolver given (``--resolver 127.0.0.1:5353`` in the
rehearsal), and the HTTP request then goes to the address that resolver gave, with the host name
kept for SNI, certificate checks and the Host header: so the probe tests the name the vendor will
use, exactly as the vendor's resolver would see it. Two kinds of host are not DNS's to answer:
an address in the URL, and ``localhost`` (with its ``*.localhost`` names, RFC 6761), which this
machine resolves itself (its hosts file) and no DNS server knows. Those steps are
`hookshift.stagehttp`'s, which `verify heal` uses to send replays the same way; this module turns
what each one saw into an observation.

Every network step waits at most ``--timeout`` seconds (and no more than its own cap, `STEP_CAPS`),
so a port that accepts TCP and never speaks TLS costs one timeout, not minutes. What a step saw
is kept in the user's words: no OpenSSL source positions (``_ssl.c:989``) and no exception names.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import ssl
import stat
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

from hookshift.addresses import dns_host
from hookshift.console import diag
from hookshift.cutover.diagnosis import (
    DnsObservation,
    HttpObservation,
    ProbeObservation,
    QueueObservation,
    TlsObservation,
)
from hookshift.errors import InputError
from hookshift.nginx.values import parse_resolver
from hookshift.stagehttp import (
    NoConnection,
    Silent,
    StageClient,
    StageUnreachable,
    handshake,
    ignored_proxies,
    plain_words,
    resolve,
    tls_context,
)
from hookshift.stagehttp import check_ca_file as check_ca_file  # the cut-over's settings use it
from hookshift.verify.pull import check_queue_url, region_for, sqs_failure

PROBE_FIELD = "hookshift_probe"
# Special characters and Korean text, after the marker: a template without $util.urlEncode
# cuts the body at the first '&' (or SQS refuses it), which the probe then sees and names.
PROBE_TEXT = "hookshift probe: a=1&b=2+3 100% 한글"
#: The most each network step waits, in seconds; ``--timeout`` shortens them, never lengthens.
STEP_CAPS = {"dns": 3.0, "tls": 5.0, "http": 10.0}
URL_EXAMPLE = "e.g. https://abc123.execute-api.ap-northeast-2.amazonaws.com/prod/callback"


@dataclass(frozen=True)
class QueueSpec:
    """Where to look for the marker: ``sqs:URL`` (live), ``archive:DIR`` or ``jsonl:FILE``."""

    kind: str
    target: str
    endpoint_url: str | None = None
    region: str | None = None

    @classmethod
    def parse(
        cls, spec: str, *, endpoint_url: str | None = None, region: str | None = None
    ) -> QueueSpec:
        kind, sep, target = spec.partition(":")
        if spec.startswith(("https://", "http://")):
            kind, target = "sqs", spec
        elif not (sep and kind in ("sqs", "archive", "jsonl") and target):
            raise InputError(
                f"queue source {spec!r} is not sqs:QUEUE_URL, archive:DIR or jsonl:FILE",
                fix="e.g. --queue sqs:https://sqs.ap-northeast-2.amazonaws.com/123456789012/results",
            )
        if kind == "sqs":
            check_queue_url(target, endpoint_url, option="--queue", region=region)
        return cls(kind, target, endpoint_url, region)


def check_queue_path(spec: QueueSpec) -> None:
    """An ``archive:DIR`` or ``jsonl:FILE`` queue that can be searched, checked before the
    probe is sent: searched afterwards, a typo would read as a probe that did not land (and
    the synthetic callback would be in the real queue by then)."""
    if spec.kind == "sqs":
        return
    where = f"--queue {spec.kind}:{spec.target}"
    path = Path(spec.target)
    if spec.kind == "archive":
        fix = (
            "pass the --archive directory of `hookshift verify pull` (the one holding its "
            "*.jsonl segments), or --queue jsonl:FILE for one file of messages"
        )
        if not path.exists():
            raise InputError("archive directory not found", where=where, fix=fix)
        if not path.is_dir():
            raise InputError("is a file, not the archive directory", where=where, fix=fix)
        try:
            with contextlib.closing(os.scandir(path)) as entries:
                next(entries, None)
        except OSError as exc:
            raise InputError(f"cannot be read ({exc.strerror})", where=where, fix=fix) from None
        return
    _check_readable_file(path, where, "pass a file of SQS messages (JSON lines, as the AWS CLI "
                         "prints them), or --queue archive:DIR for `hookshift verify pull`'s "
                         "archive")  # fmt: skip


def check_execution_log(source: str) -> None:
    """``--execution-log``, checked before the probe is sent: it is read only when the probe
    fails, where a wrong path would silently leave out the very answer it was given for."""
    where = f"--execution-log {source}"
    if source.startswith("cloudwatch:"):
        if not source.removeprefix("cloudwatch:").strip():
            raise InputError(
                "names no log group",
                where=where,
                fix="e.g. --execution-log cloudwatch:API-Gateway-Execution-Logs_APIID/STAGE",
            )
        return
    _check_readable_file(Path(source), where, "pass the stage's execution log file (the stage "
                         "emulator's --log), or cloudwatch:LOG_GROUP")  # fmt: skip


def _check_readable_file(path: Path, where: str, fix: str) -> None:
    if not path.exists():
        raise InputError("no such file", where=where, fix=fix)
    if not path.is_file():  # a directory, or a FIFO whose read would block
        raise InputError("not a regular file", where=where, fix=fix)
    try:
        path.open("rb").close()
    except OSError as exc:
        raise InputError(f"cannot be read ({exc.strerror})", where=where, fix=fix) from None


def make_marker() -> str:
    return f"hs-probe-{uuid.uuid4().hex}"


def probe_body(marker: str) -> str:
    """A JSON callback whose first field is the marker (it survives a truncated body)."""
    return json.dumps(
        {PROBE_FIELD: marker, "RESULT": "probe", "USERDATA": PROBE_TEXT}, ensure_ascii=False
    )


def shown_url(url: str) -> str:
    """`url` as it may be printed: its user and password (``https://user:pass@host``) as
    ``***`` (a user name alone may be a token)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    ends = [i for i in (rest.find(c) for c in "/?#") if i >= 0]
    end = min(ends) if ends else len(rest)
    _, at, host_port = rest[:end].rpartition("@")
    return f"{scheme}{sep}***@{host_port}{rest[end:]}" if at else url


def check_url(url: str, name: str = "probe URL") -> str:
    """``url`` as the probe (or a cut-over setting) takes it: http(s), a host DNS can hold, a
    port that exists, and no user name or password. The refusal says which of these is wrong,
    the port by its number, and never shows a password."""
    shown = shown_url(url)
    try:
        parts = urlsplit(url)  # an unclosed [IPv6 is a ValueError here
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("https", "http") or not parts.hostname:
        raise InputError(f"{name} {shown!r} is not an https URL", fix=URL_EXAMPLE)
    if "@" in parts.netloc:
        # API Gateway takes no credentials in the URL, nginx's proxy_pass none either: the
        # probe would test a URL the mirror and the stage never see
        raise InputError(
            f"{name} {shown!r} holds a user name or password, which API Gateway does not take",
            fix="give the URL without the user:password@ part",
        )
    host_port = parts.netloc
    port = host_port.rpartition("]")[2] if host_port.startswith("[") else host_port
    _, colon, number = port.partition(":")
    if colon and number:
        if not (number.isascii() and number.isdigit()):
            raise InputError(
                f"{name} {shown!r}: the port {number!r} is not a number", fix=URL_EXAMPLE
            )
        if not 0 < int(number) < 65536:
            raise InputError(
                f"{name} {shown!r}: the port {number} is out of range (1-65535)",
                fix="give the port the endpoint listens on, or none for 443",
            )
    try:
        dns_host(parts.hostname)  # dnspython, ssl and httpx would each fail on it their way
    except ValueError as exc:
        raise InputError(f"{name} {shown!r}: its host is {exc}", fix=URL_EXAMPLE) from None
    return url


def url_host(url: str) -> str:
    """The host of a `check_url`-checked ``url`` as DNS, SNI and the ``Host`` header carry it
    (`dns_host`: lowercase, ``xn--`` for letters outside ASCII, no trailing dot)."""
    return dns_host(urlsplit(url).hostname or "")


def observe_dns(
    host: str, resolver: tuple[str, int] | None, timeout: float = 3.0
) -> DnsObservation:
    """Ask for ``host``'s A records (AAAA when it has none); collect the CNAME chain and the
    addresses (`stagehttp.resolve`:
    an address needs no DNS, ``localhost`` is this machine's, and a name DNS does not know is
    also looked up the system's way, so the diagnosis can say when only this machine's hosts
    file has it)."""
    answer = resolve(host, resolver, timeout)
    return DnsObservation(
        answer.rcode,
        answer.chain,
        answer.addresses,
        answer.resolver,
        error=answer.error,
        source=answer.source,
        local_addresses=answer.local_addresses,
    )


def _cert_facts(der: bytes) -> tuple[tuple[str, ...], float | None]:
    from cryptography import x509

    cert = x509.load_der_x509_certificate(der)
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        sans = tuple(str(n) for n in ext.value.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        sans = ()
    return sans, cert.not_valid_after_utc.timestamp()


def observe_tls(
    host: str, address: str, port: int, ca_file: str | None, timeout: float = 5.0
) -> TlsObservation:
    """Handshake without SNI, then with it, to learn whether SNI is needed; then with SNI and
    verification.

    SNI is needed only when the handshake without it fails and the one with it does not: a
    server no handshake reaches (TLS 1.0 only, not TLS at all) needs something else. When
    the first handshake cannot connect, or connects and hears nothing, the others would only
    wait the same way: the observation says so at once.
    """
    lax = ssl.create_default_context()
    lax.check_hostname = False
    lax.verify_mode = ssl.CERT_NONE
    sni_required: bool | None = None
    refused_without_sni = False
    try:
        handshake(address, port, None, lax, timeout)
        sni_required = False
    except NoConnection as exc:
        return TlsObservation("connect", str(exc), address=address)
    except Silent as exc:
        return TlsObservation("silent", str(exc), address=address)
    except ssl.SSLError:
        refused_without_sni = True
    except OSError:
        pass
    sans: tuple[str, ...] = ()
    not_after: float | None = None
    try:
        der = handshake(address, port, host, lax, timeout)
        sans, not_after = _cert_facts(der)
        if refused_without_sni:
            sni_required = True
    except (NoConnection, Silent, ssl.SSLError, OSError):
        pass
    seen = TlsObservation(
        sans=sans, not_after=not_after, sni_required=sni_required, address=address
    )
    try:
        handshake(address, port, host, tls_context(ca_file), timeout)
    except ssl.SSLCertVerificationError as exc:
        message = exc.verify_message or plain_words(exc)
        if "Hostname mismatch" in message or "hostname" in message.lower():
            kind = "hostname"
        elif "expired" in message.lower():
            kind = "expired"
        else:
            kind = "untrusted"
            message += _ca_environment(ca_file)
        return replace(seen, error_kind=kind, error=message)
    except NoConnection as exc:
        return replace(seen, error_kind="connect", error=str(exc))
    except Silent as exc:
        return replace(seen, error_kind="silent", error=str(exc))
    except (ssl.SSLError, OSError) as exc:  # an SSLError is an OSError: the handshake failed
        return replace(seen, error_kind="handshake", error=plain_words(exc))
    return seen


def _ca_environment(ca_file: str | None) -> str:
    """What the environment did to the CAs a certificate was checked against, for a refused
    one: OpenSSL reads the system's CAs from SSL_CERT_FILE / SSL_CERT_DIR when set (as nginx
    does not), and other tools' CA variables are not read at all."""
    if ca_file is not None:
        return ""
    said = [
        f"; the system's CAs were read from {name}={os.environ[name]} (set in the environment)"
        for name in ("SSL_CERT_FILE", "SSL_CERT_DIR")
        if os.environ.get(name)
    ]
    said += [
        f"; {name}={os.environ[name]} is set in the environment, which the probe does not "
        "read: pass that bundle with --ca-file"
        for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "AWS_CA_BUNDLE")
        if os.environ.get(name)
    ]
    return "".join(said)


def post(
    url: str, address: str, body: str, ca_file: str | None, timeout: float = 10.0
) -> HttpObservation:
    """POST ``body`` to ``url`` at ``address`` (Host and SNI stay the URL's host). A redirect
    is not followed, and ``error`` says where it points: a callback sent there would reach
    something nobody checked."""
    try:
        with StageClient(
            url, address, ca_file=ca_file, timeout=timeout, user_agent="hookshift-probe"
        ) as stage:
            response = stage.post(body.encode("utf-8"), {"Content-Type": "application/json"})
    except StageUnreachable as exc:
        return HttpObservation(error=exc.words)
    error = ""
    if 300 <= response.status_code < 400:
        location = response.headers.get("location", "")
        where = f"to {shown_url(location)}" if location else "without a Location"
        error = f"it redirects {where}; not followed: a callback must reach the stage itself"
    return HttpObservation(
        response.status_code,
        response.text[:2000],
        response.headers.get("content-type", ""),
        error=error,
        request_id=response.headers.get("x-amzn-requestid", ""),
    )


def execution_lines(
    source: str,
    request_id: str,
    wait: float = 3.0,
    *,
    endpoint_url: str | None = None,
    region: str | None = None,
) -> str:
    """The stage's execution log entries for ``request_id`` (empty when none appear in time).

    ``source`` is ``cloudwatch:LOG_GROUP`` (API Gateway's execution logging:
    ``API-Gateway-Execution-Logs_APIID/STAGE``, read with FilterLogEvents; CloudWatch delivers
    within seconds, so give it ``wait``), or a file: JSON lines with ``request_id`` (the stage
    emulator's ``--log``) or API Gateway's text lines, each starting ``(REQUEST_ID)``.
    """
    if not request_id:
        return ""
    deadline = time.monotonic() + wait
    while True:
        if source.startswith("cloudwatch:"):
            found = _cloudwatch_lines(source.removeprefix("cloudwatch:"), request_id,
                                      endpoint_url, region)  # fmt: skip
        else:
            found = _file_lines(Path(source), request_id)
        text = "\n".join(t for t in found if t)
        if text or time.monotonic() > deadline:
            return text
        time.sleep(0.2)


def _file_lines(log: Path, request_id: str) -> list[str]:
    if not log.exists():
        return []
    with log.open(encoding="utf-8", errors="replace") as handle:
        return [_execution_text(line, request_id) for line in handle if request_id in line]


def _cloudwatch_lines(
    group: str, request_id: str, endpoint_url: str | None, region: str | None
) -> list[str]:
    import boto3

    client = boto3.client(
        "logs", endpoint_url=endpoint_url, region_name=region or "us-east-1", config=aws_config()
    )
    start_ms = int((time.time() - 3600) * 1000)
    lines: list[str] = []
    kwargs: dict[str, Any] = {
        "logGroupName": group,
        "filterPattern": f'"{request_id}"',
        "startTime": start_ms,
    }
    try:
        while True:
            page = client.filter_log_events(**kwargs)
            lines += [str(e.get("message", "")).strip() for e in page.get("events", [])]
            if not page.get("nextToken"):
                break
            kwargs["nextToken"] = page["nextToken"]
    except Exception as exc:  # botocore's errors: the log is optional evidence
        return [f"(execution log unreadable: {type(exc).__name__}: {exc})"]
    return [line for line in lines if request_id in line]


def _execution_text(line: str, request_id: str) -> str:
    try:
        data = json.loads(line)
    except json.JSONDecodeError:
        return line.strip()
    if not isinstance(data, dict) or data.get("request_id") != request_id:
        return line.strip() if not isinstance(data, dict) else ""
    parts = [
        f"{key}: {data[key]}"
        for key in ("gateway_response", "integration_status", "integration_response", "error")
        if data.get(key) not in (None, "")
    ]
    return "; ".join(parts)


def _open_segment(path: Path) -> TextIO | None:
    """`path` opened for reading when it is a regular file; None when it is gone (renamed or
    removed since it was listed) or is something else. A FIFO named like a segment would
    block the search for ever: opened without blocking, and passed over once seen for what it
    is."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    return os.fdopen(fd, encoding="utf-8", errors="replace")


def messages_in_files(paths: list[Path]) -> Iterator[dict[str, Any]]:
    """The SQS messages in `paths`, read as they are being written: a line that is not (yet)
    a JSON message is passed over, and so is a byte that is not UTF-8 (the marker is ASCII,
    and one bad byte must not end the search in a traceback after the probe was sent)."""
    for path in paths:
        handle = _open_segment(path)
        if handle is None:
            continue
        with handle:
            for line in handle:
                try:
                    data = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(data, dict) and isinstance(data.get("Messages"), list):
                    yield from (m for m in data["Messages"] if isinstance(m, dict))
                elif isinstance(data, dict):
                    yield data


def aws_config() -> Any:
    """Bounded AWS calls: an endpoint that accepts a connection and never answers fails the
    probe within seconds (botocore's defaults wait 60 s per attempt, over several attempts).
    The read timeout stays above the probe's long poll (2 s)."""
    from botocore.config import Config

    return Config(
        connect_timeout=5, read_timeout=5, retries={"max_attempts": 2, "mode": "standard"}
    )


def sqs_client(spec: QueueSpec) -> Any:
    """A client in the region ``verify pull`` would use for the same options (`region_for`),
    so that both find the same queue and name the same region when it is not there."""
    import boto3

    return boto3.client(
        "sqs",
        endpoint_url=spec.endpoint_url,
        region_name=region_for(spec.target, spec.region),
        config=aws_config(),
    )


def check_queue(spec: QueueSpec | None) -> QueueObservation | None:
    """Read the live queue's attributes before the probe is sent: None when it can be read.

    The stage enqueues the probe whatever queue the probe reads, and only the probe deletes
    it; a probe that cannot read its queue would leave a synthetic callback there for the
    consumer. A queue that does not exist where it was looked for (a wrong URL or region) is
    bad input, in ``verify pull``'s words; any other failure comes back as an observation, and
    nothing is sent.
    """
    if spec is None or spec.kind != "sqs":
        return None
    try:
        sqs_client(spec).get_queue_attributes(QueueUrl=spec.target, AttributeNames=["QueueArn"])
    except Exception as exc:  # botocore's errors
        failure = sqs_failure(spec.target, exc, endpoint_url=spec.endpoint_url, region=spec.region)
        if isinstance(failure, InputError):
            raise failure from None
        return QueueObservation(False, error=f"{type(exc).__name__}: {exc}")
    return None


def _release(client: Any, queue_url: str, handles: list[str]) -> None:
    """Make the messages the search received visible again, ten to a call (SQS's batch)."""
    for start in range(0, len(handles), 10):
        entries = [
            {"Id": str(i), "ReceiptHandle": handle, "VisibilityTimeout": 0}
            for i, handle in enumerate(handles[start : start + 10])
        ]
        with contextlib.suppress(Exception):  # SQS shows them again after their timeout anyway
            client.change_message_visibility_batch(QueueUrl=queue_url, Entries=entries)


def find_marker(spec: QueueSpec, marker: str, timeout: float) -> QueueObservation:
    """Look for ``marker`` in message bodies until found or ``timeout`` seconds passed.

    In a live queue the probe message is deleted once found (it is synthetic: no consumer must
    process it). The other messages received stay hidden until the search ends, then are made
    visible again: a queue holding the mirror period's copies returns them ten at a time, and
    each shown again at once would come back before the marker does.
    """
    deadline = time.monotonic() + timeout
    searched = 0
    if spec.kind in ("archive", "jsonl"):
        root = Path(spec.target)
        while True:
            paths = sorted(root.rglob("*.jsonl")) if root.is_dir() else [root]
            if not root.exists():
                return QueueObservation(False, error=f"{root} does not exist")
            searched = 0
            for message in messages_in_files(paths):
                searched += 1
                body = str(message.get("Body", ""))
                if marker in body:
                    return QueueObservation(True, searched, body)
            if time.monotonic() > deadline:
                return QueueObservation(False, searched)
            time.sleep(0.5)
    try:
        client = sqs_client(spec)
        seen: list[str] = []  # receipt handles of the other messages, hidden while searching
        try:
            while True:
                left = deadline - time.monotonic()
                wait = max(0, min(2, int(left)))
                reply = client.receive_message(
                    QueueUrl=spec.target,
                    MaxNumberOfMessages=10,
                    WaitTimeSeconds=wait,
                    # hidden until the search ends, so that the next receive gets other
                    # messages (made visible again at once below; by SQS after this at worst)
                    VisibilityTimeout=int(max(left, 0)) + 10,
                    MessageAttributeNames=["All"],
                )
                for message in reply.get("Messages", []):
                    searched += 1
                    body = str(message.get("Body", ""))
                    if marker in body:
                        client.delete_message(
                            QueueUrl=spec.target, ReceiptHandle=message["ReceiptHandle"]
                        )
                        return QueueObservation(True, searched, body)
                    seen.append(message["ReceiptHandle"])
                if time.monotonic() > deadline:
                    return QueueObservation(False, searched)
        finally:
            _release(client, spec.target, seen)
    except Exception as exc:  # botocore's errors: all reported as an observation
        return QueueObservation(False, searched, error=f"{type(exc).__name__}: {exc}")


def run_probe(
    url: str,
    *,
    queue: QueueSpec | None,
    resolver: str | None = None,
    ca_file: str | None = None,
    timeout: float = 10.0,
    execution_log: str | None = None,
    expect_target: str | None = None,
) -> ProbeObservation:
    """Observe every step for one probe of ``url`` (the steps a failure makes moot are skipped).

    The input is checked before anything is sent: the URL, ``--timeout``, the resolver, the
    CA bundle, the queue's and execution log's paths, and that the live queue can be read
    (`check_queue`). Each network step waits at
    most ``timeout`` seconds (within `STEP_CAPS`); the queue is searched for ``timeout``
    seconds.
    """
    check_url(url)
    if not (math.isfinite(timeout) and timeout > 0):
        raise InputError(
            f"not a number of seconds above 0: {timeout:g}",
            where="--timeout",
            fix="e.g. --timeout 10",
        )
    host = url_host(url)
    server = parse_resolver(resolver) if resolver else None
    if ca_file is not None:
        check_ca_file(ca_file)
    if queue is not None:
        check_queue_path(queue)
    if execution_log is not None:
        check_execution_log(execution_log)
    proxies = ignored_proxies()
    if proxies:  # said, so that an operator behind a proxy knows what the probe tested
        are = "is" if len(proxies) == 1 else "are"
        diag(
            "info",
            f"{', '.join(proxies)} in the environment {are} not used: the probe connects to the "
            "stage directly, as nginx and the vendor do (through a proxy it would test the "
            "proxy, not the stage)",
        )
    step = {name: min(cap, timeout) for name, cap in STEP_CAPS.items()}
    parts = urlsplit(url)
    marker = make_marker()
    body = probe_body(marker)
    now = time.time()
    observation = ProbeObservation(url, body, now, queue_given=queue is not None)
    unreadable = check_queue(queue)
    if unreadable is not None:
        return replace(observation, queue=unreadable)
    dns_obs = observe_dns(host, server, step["dns"])
    if expect_target:
        expected = observe_dns(expect_target, server, step["dns"])
        dns_obs = replace(
            dns_obs, expected_target=expect_target.lower(), target_addresses=expected.addresses
        )
    observation = replace(observation, dns=dns_obs)
    if not dns_obs.addresses:
        return observation
    address = dns_obs.addresses[0]
    port = parts.port or (443 if parts.scheme == "https" else 80)
    tls_obs = None
    if parts.scheme == "https":
        tls_obs = observe_tls(host, address, port, ca_file, step["tls"])
        observation = replace(observation, tls=tls_obs)
        if tls_obs.error_kind:
            return observation
    http_obs = post(url, address, body, ca_file, step["http"])
    accepted = 200 <= http_obs.status < 300
    queue_obs = None
    if queue is not None and accepted:
        queue_obs = find_marker(queue, marker, timeout)
    # SQS's own answer: behind a 5xx, and behind a 200 that did not land (default responses)
    missing = not accepted or (queue_obs is not None and not queue_obs.found)
    if execution_log is not None and http_obs.status and missing:
        text = execution_lines(
            execution_log,
            http_obs.request_id,
            endpoint_url=queue.endpoint_url if queue else None,
            region=queue.region if queue else None,
        )
        http_obs = replace(http_obs, execution=text)
    return replace(observation, http=http_obs, queue=queue_obs)
