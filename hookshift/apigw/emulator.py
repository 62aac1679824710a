"""A REST API stage with an AWS SQS integration, on loopback over TLS, for rehearsals and tests.

It behaves like API Gateway as far as a client (nginx, the vendor, a probe) and SQS can tell:

* routing: ``https://API.execute-api.REGION.amazonaws.com/STAGE/RESOURCE`` and custom domains
  with a base path mapping (``https://DOMAIN/BASE/RESOURCE``); TLS picks the certificate by SNI
  and refuses a handshake without a server name (see ``apigw.tls``);
* gateway responses API Gateway gives before any integration runs (modelled, AWS's defaults):
  403 ``Missing Authentication Token`` for an unknown stage, resource or method (also behind a
  custom domain's base path mapping, e.g. ``/STAGE/RESOURCE`` on a root mapping); 403
  ``Forbidden`` for a host the API does not serve or a custom-domain path that no base path
  mapping matches; 413 for a body over 10 MB; 415 when the
  request's content type has no mapping template and passthrough is NEVER or
  WHEN_NO_TEMPLATES; 400 ``Could not parse request body into json`` when the template reads a
  JSON path from a body that is not JSON; 500 ``Internal server error`` when the template fails
  or SQS cannot be reached; 504 ``Endpoint request timed out`` when SQS does not answer within
  the integration timeout (29 s);
* the integration: the mapping template (``templates/apigw``) rendered with airspeed, sent to
  SQS (moto) as API Gateway sends it (see ``apigw.sqs`` for which SQS answers come from moto
  and which are modelled), and the integration responses (default or recommended) applied to
  SQS's status; an integration response without a template (or an empty one, which API Gateway
  stores as none) passes SQS's answer through as the body.

Every request is recorded as an ``Execution`` (what API Gateway's execution log would show:
the rendered integration request, SQS's status and body) so tests and the rehearsal can say
*why* a callback did not land.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import ssl
import sys
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from hookshift.apigw import integration
from hookshift.apigw.integration import IntegrationResponse, ResponseMode, TemplateOptions
from hookshift.apigw.sqs import IntegrationFailure, IntegrationTimeout, SqsIntegration, SqsReply
from hookshift.apigw.tls import CertPaths, CertSpec, make_certs, sni_context
from hookshift.apigw.vtl import BodyNotJson, MethodRequest, VtlError, render

MAX_REQUEST_BYTES = 10 * 1024 * 1024  # API Gateway REST API payload limit
INTEGRATION_TIMEOUT_S = 29.0  # a REST API integration's default timeout
DEFAULT_ACCOUNT = "123456789012"


@dataclass(frozen=True)
class CustomDomain:
    """A regional custom domain name; ``base_path`` "" maps the root, None means no mapping."""

    name: str
    base_path: str | None = ""


@dataclass(frozen=True)
class StageConfig:
    """Everything the emulated stage does; defaults are what hookshift deploys."""

    sqs_endpoint: str
    queue_url: str
    api_id: str = "abc123"
    region: str = "ap-northeast-2"
    account_id: str = DEFAULT_ACCOUNT
    stage: str = "prod"
    resource_path: str = "/callback"
    http_method: str = "POST"
    custom_domains: tuple[CustomDomain, ...] = ()
    template: TemplateOptions = field(default_factory=TemplateOptions)
    template_text: str | None = None  # a mapping template file's text, instead of hookshift's
    integration_content_type: str = field(default_factory=integration.integration_content_type)
    response_mode: ResponseMode = "recommended"
    # integration responses of the caller's own (e.g. a console setup), instead of response_mode's
    integration_responses: tuple[IntegrationResponse, ...] | None = None
    request_content_types: tuple[str, ...] = field(
        default_factory=integration.request_content_types
    )
    passthrough_behavior: str = field(default_factory=integration.passthrough_behavior)
    request_model: Mapping[str, Any] | None = None  # JSON Schema draft 4: the request validator
    deny_send: bool = False
    host: str = "127.0.0.1"
    port: int = 0
    cert_dir: Path | None = None
    cert_overrides: tuple[tuple[str, CertSpec], ...] = ()  # (served host, what its cert says)
    require_sni: bool = True
    max_request_bytes: int = MAX_REQUEST_BYTES
    integration_timeout: float = INTEGRATION_TIMEOUT_S

    @property
    def stage_host(self) -> str:
        return f"{self.api_id}.execute-api.{self.region}.amazonaws.com"

    @property
    def hosts(self) -> tuple[str, ...]:
        return (self.stage_host, *(d.name.lower() for d in self.custom_domains))

    def mapping_template(self) -> str:
        return (
            self.template_text
            if self.template_text is not None
            else (integration.mapping_template(self.template))
        )


@dataclass(frozen=True)
class GatewayResponse:
    """An answer API Gateway gives itself (no integration involved)."""

    status: int
    message: str
    error_type: str

    def body(self) -> bytes:
        return json.dumps({"message": self.message}, separators=(",", ":")).encode()


MISSING_AUTH_TOKEN = GatewayResponse(
    403, "Missing Authentication Token", "MissingAuthenticationTokenException"
)
FORBIDDEN = GatewayResponse(403, "Forbidden", "ForbiddenException")
TOO_LARGE = GatewayResponse(413, "Request Too Long", "RequestTooLargeException")
UNSUPPORTED_MEDIA = GatewayResponse(415, "Unsupported Media Type", "UnsupportedMediaTypeException")
MISSING_CONTENT_TYPE = GatewayResponse(
    400, "Missing required request parameters: [Content-Type]", "BadRequestException"
)
INVALID_BODY = GatewayResponse(400, "Invalid request body", "BadRequestException")
INTERNAL_ERROR = GatewayResponse(500, "Internal server error", "InternalServerErrorException")
# INTEGRATION_TIMEOUT in API Gateway's gateway responses: the vendor gets a 504 it can retry
INTEGRATION_TIMEOUT = GatewayResponse(504, "Endpoint request timed out", "")
# The stage always has mapping templates, so WHEN_NO_TEMPLATES refuses an unmapped content type
# with 415 just as NEVER does; only WHEN_NO_MATCH passes the body through.
_REFUSE_UNMAPPED = frozenset({"NEVER", "WHEN_NO_TEMPLATES"})


def validate_request(
    model: Mapping[str, Any], content_type: str | None, body: str, content_types: tuple[str, ...]
) -> GatewayResponse | None:
    """The request validator hookshift deploys (body and parameters): 400 as API Gateway gives.

    The Content-Type header is a required parameter; a body whose content type has the model
    must be JSON that satisfies it (draft 4).
    """
    import jsonschema  # only stages with a model need it

    if not content_type:
        return MISSING_CONTENT_TYPE
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type not in (t.lower() for t in content_types):
        return None
    try:
        # an empty body is validated as {}, the same body the mapping template sees
        document = json.loads(body or "{}")
    except ValueError:
        return INVALID_BODY
    if not jsonschema.Draft4Validator(model).is_valid(document):
        return INVALID_BODY
    return None


@dataclass(frozen=True)
class Route:
    """A request matched to the stage's method: the resource path and the path as requested."""

    stage: str
    resource_path: str


def _normalise(path: str) -> str:
    stripped = "/" + path.strip("/")
    return stripped


def route(config: StageConfig, host_header: str, method: str, path: str) -> Route | GatewayResponse:
    """Match host, path and method the way API Gateway does (pure)."""
    host = host_header.rsplit(":", 1)[0].lower() if host_header else ""
    path = urlsplit(path).path or "/"
    if host == config.stage_host:
        segments = path.lstrip("/").split("/", 1)
        stage, rest = segments[0], "/" + (segments[1] if len(segments) > 1 else "")
    else:
        domain = next((d for d in config.custom_domains if d.name.lower() == host), None)
        if domain is None or domain.base_path is None:
            return FORBIDDEN
        base = domain.base_path.strip("/")
        if base:
            head, _, tail = path.lstrip("/").partition("/")
            if head != base:
                return FORBIDDEN  # no API mapping matches the path
            rest = "/" + tail
        else:
            rest = path
        stage = config.stage
    if stage != config.stage or _normalise(rest) != _normalise(config.resource_path):
        return MISSING_AUTH_TOKEN
    if method.upper() != config.http_method.upper():
        return MISSING_AUTH_TOKEN  # a REST API answers this for a method it does not define
    return Route(stage=stage, resource_path=_normalise(config.resource_path))


@dataclass(frozen=True)
class Execution:
    """One request as API Gateway's execution log would describe it."""

    request_id: str
    time: float
    method: str
    host: str
    path: str
    status: int
    gateway_response: str | None = None
    integration_request: str | None = None
    integration_status: int | None = None
    integration_response: str | None = None
    integration_source: str | None = None
    error: str | None = None

    def log_line(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...]


class Stage:
    """The request pipeline, independent of the HTTP server that feeds it."""

    def __init__(self, config: StageConfig, sqs: SqsIntegration) -> None:
        self.config = config
        self.sqs = sqs
        self.template = config.mapping_template()
        self.responses = (
            config.integration_responses
            if config.integration_responses is not None
            else integration.integration_responses(config.response_mode)
        )
        self.executions: deque[Execution] = deque(maxlen=10_000)
        self.on_execution: Callable[[Execution], None] | None = None

    def _context(
        self,
        request_id: str,
        method: str,
        host: str,
        path: str,
        headers: list[tuple[str, str]],
        source_ip: str,
    ) -> dict[str, Any]:
        now = datetime.now(UTC)
        user_agent = next((v for k, v in headers if k.lower() == "user-agent"), "")
        return {
            "requestId": request_id,
            "extendedRequestId": uuid.uuid4().hex[:16],
            "accountId": self.config.account_id,
            "apiId": self.config.api_id,
            "stage": self.config.stage,
            "resourcePath": _normalise(self.config.resource_path),
            "httpMethod": method,
            "path": path,
            "domainName": host.rsplit(":", 1)[0],
            "domainPrefix": host.split(".", 1)[0],
            "protocol": "HTTP/1.1",
            "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "requestTimeEpoch": int(now.timestamp() * 1000),
            "identity": {"sourceIp": source_ip, "userAgent": user_agent},
        }

    def _record(self, execution: Execution) -> None:
        self.executions.append(execution)
        if self.on_execution is not None:
            self.on_execution(execution)

    def _gateway(self, response: GatewayResponse, request_id: str) -> Reply:
        return Reply(
            response.status,
            response.body(),
            (
                ("Content-Type", "application/json"),
                ("x-amzn-RequestId", request_id),
                *((("x-amzn-ErrorType", response.error_type),) if response.error_type else ()),
            ),
        )

    def handle(
        self,
        method: str,
        host: str,
        target: str,
        headers: list[tuple[str, str]],
        body: bytes | None,
        source_ip: str = "127.0.0.1",
    ) -> Reply:
        """One request through routing, the mapping template, SQS and the integration response.

        ``body`` None means it was too large to read (the server saw the Content-Length).
        """
        request_id = str(uuid.uuid4())
        started = time.time()
        base: dict[str, Any] = {
            "request_id": request_id,
            "time": started,
            "method": method,
            "host": host,
        }

        def gateway(response: GatewayResponse, error: str | None = None) -> Reply:
            self._record(
                Execution(
                    **base,
                    path=target,
                    status=response.status,
                    gateway_response=response.message,
                    error=error,
                )
            )
            return self._gateway(response, request_id)

        matched = route(self.config, host, method, target)
        if isinstance(matched, GatewayResponse):
            return gateway(matched)
        if body is None or len(body) > self.config.max_request_bytes:
            return gateway(TOO_LARGE)
        content_type = next((v for k, v in headers if k.lower() == "content-type"), "")
        media_type = content_type.split(";", 1)[0].strip().lower() or "application/json"
        has_template = media_type in (t.lower() for t in self.config.request_content_types)
        text = body.decode("utf-8", errors="replace")
        if self.config.request_model is not None:
            invalid = validate_request(
                self.config.request_model, content_type, text, self.config.request_content_types
            )
            if invalid is not None:
                return gateway(invalid)
        if not has_template and self.config.passthrough_behavior in _REFUSE_UNMAPPED:
            return gateway(UNSUPPORTED_MEDIA)
        context = self._context(request_id, method, host, urlsplit(target).path, headers, source_ip)
        query = dict(parse_qsl(urlsplit(target).query, keep_blank_values=True))
        if has_template:
            method_request = MethodRequest(body=text, headers=tuple(headers), querystring=query)
            try:
                rendered = render(self.template, method_request, context).encode("utf-8")
            except BodyNotJson as exc:
                message = f"Could not parse request body into json: {exc}"
                return gateway(GatewayResponse(400, message, "BadRequestException"), message)
            except VtlError as exc:
                return gateway(INTERNAL_ERROR, f"mapping template failed: {exc}")
        else:
            rendered = body  # passthrough WHEN_NO_MATCH: the body goes to SQS unchanged
        try:
            reply = self.sqs.send(
                self.config.queue_url,
                rendered,
                self.config.integration_content_type,
                deny_send=self.config.deny_send,
            )
        except IntegrationTimeout as exc:
            return gateway(INTEGRATION_TIMEOUT, f"Execution failed due to a timeout error: {exc}")
        except IntegrationFailure as exc:
            return gateway(INTERNAL_ERROR, f"Execution failed due to configuration error: {exc}")
        return self._integration_response(reply, rendered, context, base, target)

    def _integration_response(
        self,
        reply: SqsReply,
        rendered: bytes,
        context: dict[str, Any],
        base: dict[str, Any],
        target: str,
    ) -> Reply:
        chosen = integration.select_response(self.responses, reply.status)
        try:
            # no template: API Gateway passes the integration response body through unchanged
            out = (
                render(chosen.template, MethodRequest(body=reply.body), context)
                if chosen.template
                else reply.body
            )
        except VtlError as exc:
            self._record(
                Execution(
                    **base,
                    path=target,
                    status=500,
                    gateway_response=INTERNAL_ERROR.message,
                    error=f"response template failed: {exc}",
                )
            )
            return self._gateway(INTERNAL_ERROR, base["request_id"])
        self._record(
            Execution(
                **base,
                path=target,
                status=chosen.status,
                integration_request=rendered.decode("utf-8", errors="replace"),
                integration_status=reply.status,
                integration_response=reply.body,
                integration_source=reply.source,
            )
        )
        return Reply(
            chosen.status,
            out.encode("utf-8"),
            (
                ("Content-Type", integration.response_content_type()),
                ("x-amzn-RequestId", base["request_id"]),
                ("x-amz-apigw-id", uuid.uuid4().hex[:16]),
            ),
        )


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "hookshift-apigw-emulator"
    timeout = 30
    server: _TLSServer

    def version_string(self) -> str:
        return self.server_version  # no "Python/3.x" in the Server header

    def log_message(self, format: str, *args: Any) -> None:
        pass  # executions are recorded by the stage instead

    def _read_body(self) -> bytes | None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            total = 0
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                total += size
                if total > self.server.stage.config.max_request_bytes:
                    self.close_connection = True
                    return None
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        if length > self.server.stage.config.max_request_bytes:
            # read and drop it, so a client still sending gets the 413 instead of a reset
            self.close_connection = True
            remaining = min(length, 8 * self.server.stage.config.max_request_bytes)
            while remaining > 0:
                chunk = self.rfile.read(min(remaining, 1 << 20))
                if not chunk:
                    break
                remaining -= len(chunk)
            return None
        return self.rfile.read(length) if length else b""

    def _dispatch(self) -> None:
        body = self._read_body()
        reply = self.server.stage.handle(
            self.command,
            self.headers.get("Host", ""),
            self.path,
            list(self.headers.items()),
            body,
            self.client_address[0],
        )
        self.send_response(reply.status)
        for key, value in reply.headers:
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(reply.body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(reply.body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = _dispatch


class _TLSServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # a burst of mirrored callbacks must not overflow the backlog

    def __init__(self, address: tuple[str, int], context: ssl.SSLContext, stage: Stage) -> None:
        self.tls = context
        self.stage = stage
        self.tls_failures: deque[str] = deque(maxlen=1000)
        self.on_tls_failure: Callable[[str], None] | None = None
        super().__init__(address, _Handler)

    def record_tls_failure(self, message: str) -> None:
        self.tls_failures.append(message)
        if self.on_tls_failure is not None:
            self.on_tls_failure(message)

    def finish_request(self, request: Any, client_address: Any) -> None:
        # the handshake runs in the connection's own thread, so a slow client blocks nobody
        request.settimeout(30)
        try:
            tls_socket = self.tls.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            if not self.tls_failures or "SNI" not in self.tls_failures[-1]:
                self.record_tls_failure(f"handshake failed with {client_address[0]}: {exc}")
            return
        try:
            super().finish_request(tls_socket, client_address)
        finally:
            with contextlib.suppress(OSError):
                tls_socket.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, ssl.SSLError, socket.timeout)):
            return  # a client that went away: nothing to report
        super().handle_error(request, client_address)


class RunningStage:
    """A started emulator: its URLs, the CA to trust, its executions; ``stop()`` ends it."""

    def __init__(
        self,
        config: StageConfig,
        server: _TLSServer,
        thread: threading.Thread,
        certs: dict[str, CertPaths],
        owned_dir: Path | None,
    ) -> None:
        self.config = config
        self._server = server
        self._thread = thread
        self.certs = certs
        self._owned_dir = owned_dir

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def ca_pem(self) -> Path:
        return next(iter(self.certs.values())).ca_pem

    @property
    def url(self) -> str:
        """The stage URL (``https://STAGE_HOST:PORT/STAGE``), as the console shows it plus port."""
        return f"https://{self.config.stage_host}:{self.port}/{self.config.stage}"

    @property
    def invoke_url(self) -> str:
        """The callback URL on the stage host: stage URL + resource path."""
        return self.url + _normalise(self.config.resource_path)

    def domain_url(self, name: str) -> str:
        """The callback URL on a custom domain: ``https://DOMAIN:PORT/BASE/RESOURCE``."""
        domain = next(d for d in self.config.custom_domains if d.name.lower() == name.lower())
        base = "/" + domain.base_path.strip("/") if domain.base_path else ""
        return f"https://{domain.name}:{self.port}{base}{_normalise(self.config.resource_path)}"

    @property
    def executions(self) -> list[Execution]:
        return list(self._server.stage.executions)

    @property
    def tls_failures(self) -> list[str]:
        return list(self._server.tls_failures)

    def set_execution_listener(self, listener: Callable[[Execution], None] | None) -> None:
        self._server.stage.on_execution = listener

    def set_tls_failure_listener(self, listener: Callable[[str], None] | None) -> None:
        self._server.on_tls_failure = listener

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        self._server.stage.sqs.close()
        if self._owned_dir is not None:
            shutil.rmtree(self._owned_dir, ignore_errors=True)

    def __enter__(self) -> RunningStage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def issue_certs(config: StageConfig, directory: Path) -> dict[str, CertPaths]:
    """A certificate per served host (stage host, custom domains), overrides applied."""
    overrides = dict(config.cert_overrides)
    certs: dict[str, CertPaths] = {}
    for host in config.hosts:
        spec = overrides.get(host, CertSpec(names=(host,)))
        certs[host] = make_certs(
            directory, spec.names, not_before=spec.not_before, not_after=spec.not_after, stem=host
        )
    return certs


def serve(config: StageConfig) -> RunningStage:
    """Start the emulator in a background thread on ``config.host:config.port`` (0: free)."""
    owned = None
    cert_dir = config.cert_dir
    if cert_dir is None:
        owned = cert_dir = Path(tempfile.mkdtemp(prefix="hookshift-apigw-"))
    certs = issue_certs(config, cert_dir)
    refusals: list[Callable[[str], None]] = []  # the server's recorder, once it exists

    def refuse(message: str) -> None:
        for record in refusals:
            record(message)

    context = sni_context(
        certs, config.stage_host, require_sni=config.require_sni, on_refusal=refuse
    )
    sqs = SqsIntegration(config.sqs_endpoint, config.region, timeout=config.integration_timeout)
    stage = Stage(config, sqs)
    server = _TLSServer((config.host, config.port), context, stage)
    refusals.append(server.record_tls_failure)
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.05},
        name="apigw-emulator",
        daemon=True,
    )
    thread.start()
    return RunningStage(config, server, thread, certs, owned)
