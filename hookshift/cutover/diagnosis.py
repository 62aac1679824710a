"""From what a probe observed to what is wrong and how to fix it (pure).

A probe walks the path a vendor's callback takes: DNS for the host, the TLS handshake, the HTTP
POST to API Gateway, and SQS. Each step leaves an observation; `diagnose` turns them into
findings, each with the cause and the fix, most important first. The knowledge is the failures
people meet with an nginx mirror to API Gateway (UnknownOperationException, AccessDenied, a
resolver that does not answer) plus what API Gateway does around a custom domain (base path
mappings, regional ``d-...`` targets, ACM certificates, SNI) and the trap of the default
integration response (200 even when SQS refused).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

EXPIRY_WARNING_DAYS = 30
_EXECUTE_API = re.compile(r"^[a-z0-9]+\.execute-api\.([a-z0-9-]+)\.amazonaws\.com$")
_REGIONAL_TARGET = re.compile(r"^d-[a-z0-9]+\.execute-api\.([a-z0-9-]+)\.amazonaws\.com$")
_CLOUDFRONT_TARGET = re.compile(r"^[a-z0-9]+\.cloudfront\.net$")


@dataclass(frozen=True)
class DnsObservation:
    """The answer for the host: ``rcode`` is NOERROR, NXDOMAIN, NODATA, TIMEOUT or ERROR.

    ``source`` is ``system`` for a name this machine answers itself (``localhost``): no DNS
    was asked, so there is nothing about DNS records to judge.
    """

    rcode: str
    chain: tuple[str, ...] = ()  # CNAME targets in order
    addresses: tuple[str, ...] = ()
    resolver: str = "system"
    error: str = ""
    expected_target: str = ""  # the custom domain's d-... name, when the operator gave it
    target_addresses: tuple[str, ...] = ()  # what the same resolver says for it
    source: str = "dns"  # "dns" | "system"
    # what this machine's own lookup (hosts file) gives for a name DNS does not know
    local_addresses: tuple[str, ...] = ()


@dataclass(frozen=True)
class TlsObservation:
    """The handshake with SNI = host (``error_kind`` empty on success) and without SNI.

    ``silent``: the TCP connection was made and the handshake got no answer in time.
    """

    error_kind: str = ""  # "", "hostname", "expired", "untrusted", "handshake", "connect", "silent"
    error: str = ""
    sans: tuple[str, ...] = ()
    not_after: float | None = None  # epoch seconds
    sni_required: bool | None = None  # True when a handshake without SNI is refused
    address: str = ""  # the address connected to


@dataclass(frozen=True)
class HttpObservation:
    """The POST's answer (``status`` 0 when there was none: see ``error``)."""

    status: int = 0
    body: str = ""
    content_type: str = ""
    error: str = ""
    request_id: str = ""  # x-amzn-RequestId: the key into the stage's execution log
    execution: str = ""  # the execution log's lines for that request (SQS's own answer)


@dataclass(frozen=True)
class QueueObservation:
    """Whether the marker was found in the queue, and the body that carried it."""

    found: bool
    searched: int = 0
    body: str | None = None
    error: str = ""


@dataclass(frozen=True)
class ProbeObservation:
    url: str
    sent_body: str
    now: float  # epoch seconds, for the certificate's expiry
    dns: DnsObservation | None = None
    tls: TlsObservation | None = None
    http: HttpObservation | None = None
    queue: QueueObservation | None = None
    # a queue to search was given: a probe stopped before the search did not land
    queue_given: bool = False


@dataclass(frozen=True)
class Finding:
    """One diagnosis: a stable ``code``, severity (error/warning/info), the cause and the fix."""

    code: str
    severity: str
    cause: str
    fix: str

    def line(self) -> str:
        return f"{self.code}: {self.cause}"


@dataclass(frozen=True)
class Diagnosis:
    """``landed`` is None when no queue was given (the probe then judges HTTP only); with a
    queue it is False unless the marker was found there, also when an earlier step (DNS, TLS,
    the POST, reading the queue) stopped the probe before the search."""

    url: str
    landed: bool | None
    findings: tuple[Finding, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return self.landed is not False and not any(f.severity == "error" for f in self.findings)

    def to_json(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "landed": self.landed,
            "ok": self.ok,
            "findings": [asdict(f) for f in self.findings],
        }


def _is_address(host: str) -> bool:
    """A literal IP in the URL: nothing to resolve, so nothing DNS can have got wrong."""
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def is_execute_api_host(host: str) -> bool:
    """``abc123.execute-api.REGION.amazonaws.com``: a stage URL, not a custom domain."""
    return _EXECUTE_API.match(host.lower()) is not None


def _local_only(dns: DnsObservation) -> str:
    """The words for a name only this machine's hosts file knows (else nothing)."""
    if not dns.local_addresses:
        return ""
    return (
        f"; only this machine's hosts file gives it an address ({', '.join(dns.local_addresses)}),"
        " which the vendor's resolver never reads"
    )


def _dns_findings(host: str, dns: DnsObservation) -> list[Finding]:
    if dns.source == "system":
        if dns.addresses:
            return []
        return [
            Finding(
                "dns-no-address",
                "error",
                f"{host} has no address: {dns.error or 'this machine does not resolve it'}",
                "add it to this machine's hosts file (127.0.0.1 localhost), or probe the "
                "address itself: https://127.0.0.1:PORT/PATH",
            )
        ]
    custom = not is_execute_api_host(host)
    if dns.rcode == "NXDOMAIN":
        if custom:
            return [
                Finding(
                    "dns-nxdomain",
                    "error",
                    f"{host} does not exist in DNS (NXDOMAIN from {dns.resolver}): the custom "
                    f"domain's record was not created or has not propagated yet{_local_only(dns)}",
                    "create the API Gateway custom domain name (regional), then a CNAME or alias "
                    f"record {host} -> its d-XXXX.execute-api.REGION.amazonaws.com target; "
                    "wait for the TTL and retry",
                )
            ]
        return [
            Finding(
                "dns-nxdomain",
                "error",
                f"{host} does not exist in DNS (NXDOMAIN from {dns.resolver}): wrong API id or "
                f"region, or the API was deleted{_local_only(dns)}",
                "copy the invoke URL from the API Gateway console (Stages -> Invoke URL)",
            )
        ]
    if dns.rcode == "TIMEOUT":
        return [
            Finding(
                "dns-timeout",
                "error",
                f"the resolver {dns.resolver} did not answer for {host} (nginx logs `could not be "
                "resolved (110: Operation timed out)`)",
                "use a resolver that answers for the name (internal/VPC resolver, or 1.1.1.1 / "
                "8.8.8.8), in nginx's `resolver` and here with --resolver",
            )
        ]
    if dns.rcode in ("NODATA", "ERROR") or not dns.addresses:
        # NODATA: the name exists with no address; any other code is the resolver's failure
        # (SERVFAIL, REFUSED, a reply that is not DNS), which says nothing about the name
        fix = (
            "point the name at API Gateway: a CNAME/alias to the custom domain's "
            "d-XXXX.execute-api.REGION.amazonaws.com target"
            if dns.rcode == "NODATA"
            else f"check the resolver {dns.resolver}, or pass --resolver with one that answers "
            "for this name (e.g. the first nameserver in /etc/resolv.conf)"
        )
        return [
            Finding(
                "dns-no-address",
                "error",
                f"{host} has no address ({dns.rcode}{': ' + dns.error if dns.error else ''})"
                f"{_local_only(dns)}",
                fix,
            )
        ]
    if custom:
        regional = [t for t in dns.chain if _REGIONAL_TARGET.match(t)]
        if regional:
            return []
        if any(_CLOUDFRONT_TARGET.match(t) for t in dns.chain):
            return [
                Finding(
                    "dns-edge-target",
                    "warning",
                    f"{host} points at CloudFront ({' -> '.join(dns.chain)}): an edge-optimized "
                    "custom domain",
                    "fine if you chose edge-optimized; for a regional API use the regional "
                    "domain's d-XXXX.execute-api.REGION.amazonaws.com target",
                )
            ]
        if not dns.chain:  # plain A records: a Route 53 alias looks exactly like this
            if dns.expected_target and set(dns.addresses) & set(dns.target_addresses):
                return []
            if not dns.expected_target:
                return [
                    Finding(
                        "dns-alias-unverified",
                        "warning",
                        f"{host} has A records ({', '.join(dns.addresses)}) and no CNAME: a "
                        "Route 53 alias to the custom domain's target looks like this, and so "
                        "does a record pointing elsewhere",
                        "pass --expect-target d-XXXX.execute-api.REGION.amazonaws.com (the "
                        "custom domain's 'API Gateway domain name') to compare the addresses",
                    )
                ]
            target = (
                f"{', '.join(dns.addresses)}, none of them an address of {dns.expected_target} "
                f"({', '.join(dns.target_addresses) or 'no address'})"
            )
        else:
            target = " -> ".join(dns.chain)
        return [
            Finding(
                "dns-wrong-target",
                "error",
                f"{host} resolves to {target}, not to an API Gateway custom domain target "
                "(d-XXXX.execute-api.REGION.amazonaws.com); callbacks go elsewhere",
                "set the CNAME (or Route 53 alias A record) to the 'API Gateway domain name' shown "
                "on the custom domain's page",
            )
        ]
    return []


def _port(url: str) -> int:
    """The port the probe connects to (443 when the URL names none)."""
    try:
        return urlsplit(url).port or 443
    except ValueError:
        return 443


def _endpoint(host: str, port: int, address: str) -> str:
    """``host:port``, and the address connected to when the host is a name."""
    shown = f"[{host}]" if ":" in host else host
    via = f" ({address})" if address and address != host else ""
    return f"{shown}:{port}{via}"


def _days(seconds: float) -> str:
    return f"{seconds / 86400:.0f} day(s)"


def _tls_findings(host: str, port: int, tls: TlsObservation, now: float) -> list[Finding]:
    findings: list[Finding] = []
    sans = ", ".join(tls.sans) if tls.sans else "none"
    if tls.error_kind == "hostname":
        findings.append(
            Finding(
                "tls-hostname",
                "error",
                f"the certificate does not cover {host} (SANs: {sans})",
                f"attach an ACM certificate whose SANs include {host} "
                f"(or *.{host.split('.', 1)[-1]}) to the custom domain; a regional domain "
                "needs it in the API's region",
            )
        )
    elif tls.error_kind == "expired":
        findings.append(
            Finding(
                "tls-expired",
                "error",
                f"the certificate for {host} has expired ({tls.error})",
                "renew the certificate (ACM renews DNS-validated certificates automatically when "
                "the validation CNAME is still in place) and re-attach it to the custom domain",
            )
        )
    elif tls.error_kind == "untrusted":
        findings.append(
            Finding(
                "tls-untrusted",
                "error",
                f"the certificate for {host} is not trusted: {tls.error}",
                "use a publicly trusted certificate (ACM); for a private CA pass --ca-file, and "
                "give nginx the same bundle in proxy_ssl_trusted_certificate",
            )
        )
    elif tls.error_kind == "handshake":
        sni = " (the server refuses clients without SNI)" if tls.sni_required else ""
        fix = (
            "check that the name is the custom domain or stage host API Gateway serves; "
            "nginx needs `proxy_ssl_server_name on` and `proxy_ssl_name` set to it"
        )
        if "no TLS version both sides accept" in tls.error:
            fix = (
                "the endpoint must accept TLS 1.2 or later, as API Gateway does: check what "
                "answers at this address (an old load balancer or proxy in front of it?)"
            )
        findings.append(
            Finding("tls-handshake", "error", f"the TLS handshake with {host} failed: "
                    f"{tls.error}{sni}", fix)
        )  # fmt: skip
    elif tls.error_kind == "connect":
        findings.append(
            Finding(
                "tls-connect",
                "error",
                f"no TCP connection to {_endpoint(host, port, tls.address)}: {tls.error}",
                f"check the address DNS gives and that port {port} is reachable (security "
                "groups, proxies)",
            )
        )
    elif tls.error_kind == "silent":
        findings.append(
            Finding(
                "tls-no-answer",
                "error",
                f"the TCP connection to {_endpoint(host, port, tls.address)} was made but the TLS "
                f"handshake got {tls.error}: something that is not HTTPS listens there",
                f"check the URL's port ({port}) and the address DNS gives: API Gateway answers "
                "TLS on 443; a plain HTTP or other service never answers a TLS handshake",
            )
        )
    if tls.not_after is not None and not tls.error_kind:
        left = tls.not_after - now
        if left < EXPIRY_WARNING_DAYS * 86400:
            findings.append(
                Finding(
                    "tls-expiring",
                    "warning",
                    f"the certificate for {host} expires in {_days(max(left, 0))} "
                    f"(< {EXPIRY_WARNING_DAYS})",
                    "renew it now: check ACM's renewal status and the DNS validation record",
                )
            )
    if tls.sni_required and tls.error_kind != "handshake":
        findings.append(
            Finding(
                "tls-sni-required",
                "info",
                f"{host} refuses a TLS handshake without SNI, as API Gateway does",
                "nginx's mirror/forward location needs `proxy_ssl_server_name on` (hookshift's "
                "config sets it); without it nginx fails the handshake",
            )
        )
    return findings


def _sqs_error_findings(body: str) -> list[Finding]:
    """SQS's own error, read from a response body or the execution log."""
    if "UnknownOperationException" in body:
        return [
            Finding(
                "unknown-operation",
                "error",
                "SQS did not recognise the request (UnknownOperationException): the integration "
                "request's Content-Type is not application/x-www-form-urlencoded, or the mapping "
                "template lacks Action=SendMessage",
                "in the integration request set the header Content-Type to "
                "'application/x-www-form-urlencoded' and the template to "
                "Action=SendMessage&MessageBody=$util.urlEncode($input.body)",
            )
        ]
    if "KMS" in body and ("AccessDenied" in body or "KmsAccess" in body or "kms:" in body):
        return [
            Finding(
                "kms-denied",
                "error",
                "SQS could not use the queue's KMS key for the execution role",
                "allow the execution role kms:GenerateDataKey and kms:Decrypt on the key in its "
                "policy and in the key policy (a customer-managed key)",
            )
        ]
    if "AccessDenied" in body:
        return [
            Finding(
                "access-denied",
                "error",
                "SQS refused the message (AccessDenied): the execution role lacks sqs:SendMessage "
                "on the queue (role policy or the queue's access policy), the queue's KMS key "
                "policy denies it, or a body with special characters (&, +, %) was sent without "
                "$util.urlEncode",
                "grant sqs:SendMessage on the queue ARN to the integration's execution role (and "
                "in the queue's access policy if it has one), kms:GenerateDataKey for a "
                "customer-managed key, and use MessageBody=$util.urlEncode($input.body)",
            )
        ]
    return []


def _http_findings(host: str, path: str, http: HttpObservation) -> list[Finding]:
    # SQS's answer is in the response only with the default integration response (and not
    # even there when it maps to an empty 200); the execution log always has it
    body = f"{http.body}\n{http.execution}".strip()
    if 200 <= http.status < 300:
        return []  # accepted: whether it landed is the queue's finding
    custom = not is_execute_api_host(host)
    if http.status == 0:
        return [
            Finding(
                "http-no-answer",
                "error",
                f"no HTTP answer from {host}: {http.error}",
                "check that the endpoint is reachable and answers HTTPS",
            )
        ]
    if 300 <= http.status < 400:
        return [
            Finding(
                "http-redirect",
                "error",
                f"{host} answered {http.status} to POST {path}: {http.error or 'a redirect'}; "
                "a vendor that follows it sends the callback somewhere nobody checked (after a "
                "301 or 302 as a GET, without its body), one that does not loses it",
                "give the probe, nginx and the vendor the URL the stage answers itself: the "
                "invoke URL (https://ID.execute-api.REGION.amazonaws.com/STAGE/RESOURCE) or the "
                "custom domain with its base path, exactly as the redirect's target if that is "
                "the stage",
            )
        ]
    if http.status == 403 and "Missing Authentication Token" in body:
        if custom:
            cause = (
                f"API Gateway has no route for POST {path} on {host}: no base path mapping for "
                "this path, a mapping to the wrong stage, or a wrong resource path"
            )
            fix = (
                "map the custom domain to the API and stage (API mappings / base path "
                "mappings) and POST to /BASEPATH/RESOURCE; check the resource exists and has "
                "a POST method, and that the API is deployed to the stage"
            )
        else:
            cause = (
                f"API Gateway has no route for POST {path}: wrong stage name or resource path "
                "(or the API was not deployed after adding the method)"
            )
            fix = (
                "use https://ID.execute-api.REGION.amazonaws.com/STAGE/RESOURCE with the stage "
                "and resource shown in the console; deploy the API to the stage"
            )
        return [Finding("missing-auth-token", "error", cause, fix)]
    if http.status == 403 and '"Forbidden"' in body:
        if custom:
            return [Finding(
                "no-base-path-mapping", "error",
                f"API Gateway answered 403 Forbidden for {path} on {host}: the custom domain has "
                "no base path (API) mapping for this path, or it maps another API",
                "add an API mapping on the custom domain: API, stage and the base path the "
                "vendor's URL starts with (empty for the root)",
            )]  # fmt: skip
        return [Finding(
            "forbidden", "error",
            f"API Gateway answered 403 Forbidden for {path}: a resource policy denies the "
            "caller, the API is private, or the method requires an API key",
            "check the API's resource policy and the method's authorization and API key "
            "settings; the vendor calls without credentials",
        )]  # fmt: skip
    if http.status == 415:
        return [
            Finding(
                "unsupported-media-type",
                "error",
                "API Gateway answered 415: no mapping template for the request's Content-Type and "
                "passthrough behaviour NEVER",
                "add the mapping template for the Content-Type the vendor sends (application/json "
                "for Bizppurio), or send that Content-Type",
            )
        ]
    sqs_errors = _sqs_error_findings(body)
    if sqs_errors:
        return sqs_errors
    if http.status >= 500 and not http.execution:
        rid = f" for request {http.request_id}" if http.request_id else ""
        return [Finding(
            "integration-failed", "error",
            f"API Gateway answered {http.status} ({body[:120] or 'empty body'}): the "
            "integration failed and the integration response hides SQS's answer. Usually SQS "
            "refused: AccessDenied (execution role or queue policy lacks sqs:SendMessage, KMS "
            "key policy, special characters without $util.urlEncode) or "
            "UnknownOperationException (integration Content-Type not "
            "application/x-www-form-urlencoded, no Action=SendMessage in the template)",
            f"read the stage's execution log{rid} (pass it with --execution-log to have the "
            "probe name the cause), or run the method's Test in the console",
        )]  # fmt: skip
    if http.status >= 400:
        return [
            Finding(
                "http-error",
                "error",
                f"API Gateway answered {http.status}: {body[:200].strip() or '(empty body)'}",
                "enable execution logging on the stage and read the integration's response",
            )
        ]
    return []


def _queue_findings(
    http: HttpObservation | None, queue: QueueObservation, sent: str
) -> tuple[bool, list[Finding]]:
    if queue.error:
        # no POST yet: the queue is read before the probe is sent (`probe.check_queue`)
        unsent = ", so the probe was not sent" if http is None else ""
        return False, [
            Finding(
                "queue-unreadable",
                "error",
                f"could not read the queue{unsent}: {queue.error}",
                "check --queue (sqs:QUEUE_URL, archive:PATH or jsonl:PATH), --endpoint-url and "
                "the credentials",
            )
        ]
    if queue.found:
        if queue.body is not None and queue.body != sent:
            return True, [
                Finding(
                    "body-altered",
                    "error",
                    "the message arrived but its body differs from what was sent (special "
                    "characters &, +, % or non-ASCII text were cut or changed): the mapping "
                    "template does not use $util.urlEncode",
                    "use MessageBody=$util.urlEncode($input.body) in the mapping template",
                )
            ]
        return True, []
    if http is not None and 200 <= http.status < 300:
        return False, [
            Finding(
                "accepted-not-queued",
                "error",
                f"API Gateway answered {http.status} but the message is not in the queue "
                f"(searched {queue.searched}): the default integration response maps every SQS "
                "answer, errors included, to 200, so the vendor never learns of a failure",
                "map SQS 4xx/5xx to a 5xx method response (integration responses with a selection "
                "pattern) so the vendor retries; check the integration's queue path override "
                "(ACCOUNT/QUEUE) points at this queue; read the stage's execution logs",
            ),
            # what SQS really said, when the execution log was read
            *_sqs_error_findings(http.execution),
        ]
    return False, []


def diagnose(obs: ProbeObservation) -> Diagnosis:
    """Every finding for one probe, errors first; ``landed`` says whether the marker arrived."""
    parts = urlsplit(obs.url)
    host = (parts.hostname or "").lower().removesuffix(".")  # the name as DNS and TLS see it
    path = parts.path or "/"
    findings: list[Finding] = []
    if obs.dns is not None and not _is_address(host):
        findings += _dns_findings(host, obs.dns)
    if obs.tls is not None:
        findings += _tls_findings(host, _port(obs.url), obs.tls, obs.now)
    if obs.http is not None:
        findings += _http_findings(host, path, obs.http)
    landed: bool | None = False if obs.queue_given else None
    if obs.queue is not None:
        landed, more = _queue_findings(obs.http, obs.queue, obs.sent_body)
        findings += more
    order = {"error": 0, "warning": 1, "info": 2}
    findings.sort(key=lambda f: order.get(f.severity, 3))
    return Diagnosis(url=obs.url, landed=landed, findings=tuple(findings))
