"""``hookshift apigw``: the stage emulator, the mapping template, and the AWS artifacts."""

from __future__ import annotations

import json
import signal
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import click

from hookshift.addresses import is_http_url, is_loopback
from hookshift.apigw import integration
from hookshift.apigw.artifacts import FORMATS, ApiSpec, Format, infer_schema, load_samples, render
from hookshift.apigw.integration import RESPONSE_MODES, TEMPLATE_VARIANTS, TemplateOptions
from hookshift.console import apply_options
from hookshift.durable import write_atomic
from hookshift.errors import InputError, MissingExtra, is_missing_extra
from hookshift.private import open_private

if TYPE_CHECKING:  # the emulator needs `hookshift[rehearse]`; template and render do not
    from hookshift.apigw.emulator import CustomDomain, Execution
    from hookshift.apigw.tls import CertSpec


def _read_template(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(
            f"cannot read mapping template: {exc}", where=str(path), fix="pass a UTF-8 VTL file"
        ) from exc


def _domains(specs: tuple[str, ...], unmapped: tuple[str, ...]) -> tuple[CustomDomain, ...]:
    from hookshift.apigw.emulator import CustomDomain

    domains = []
    for spec in specs:
        name, _, base = spec.partition("/")
        if not name or "." not in name:
            raise InputError(
                f"--domain {spec!r} is not a domain name", fix="write it like hooks.example.com/v1"
            )
        domains.append(CustomDomain(name.lower(), base.strip("/")))
    domains += [CustomDomain(name.lower(), None) for name in unmapped]
    return tuple(domains)


def _cert_overrides(
    names: tuple[str, ...], days: tuple[str, ...]
) -> tuple[tuple[str, CertSpec], ...]:
    from hookshift.apigw.tls import CertSpec

    sans: dict[str, tuple[str, ...]] = {}
    for spec in names:
        host, sep, value = spec.partition("=")
        if not sep or not value:
            raise InputError(f"--cert-names {spec!r} is not HOST=NAME[,NAME]")
        sans[host.lower()] = tuple(v.strip() for v in value.split(",") if v.strip())
    validity: dict[str, int] = {}
    for spec in days:
        host, sep, value = spec.partition("=")
        try:
            validity[host.lower()] = int(value)
        except ValueError:
            raise InputError(
                f"--cert-days {spec!r} is not HOST=DAYS", fix="e.g. hooks.example.com=-1 (expired)"
            ) from None
    overrides = []
    now = datetime.now(UTC)
    for host in sorted(set(sans) | set(validity)):
        not_after = None
        not_before = None
        if host in validity:
            not_after = now + timedelta(days=validity[host])
            not_before = min(now, not_after) - timedelta(days=90)
        overrides.append((host, CertSpec(sans.get(host, (host,)), not_before, not_after)))
    return tuple(overrides)


def _check_serve_addresses(host: str, sqs_endpoint: str, queue_url: str) -> None:
    """The emulator listens on loopback only: it sends whatever it is given to the queue
    without any authentication, so no other host may reach it."""
    if not is_loopback(host.strip("[]")):
        raise InputError(
            f"{host} is not a loopback address: any host could post into the queue",
            where="--host",
            fix="listen on 127.0.0.1 or ::1 (the stage emulator is for this machine)",
        )
    for option, url in (("--sqs-endpoint", sqs_endpoint), ("--queue-url", queue_url)):
        if not is_http_url(url):
            raise InputError(f"not a URL: {url!r}", where=option, fix="e.g. http://127.0.0.1:5000")


def _read_text(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"the {what} is not UTF-8 text (byte {exc.start + 1})",
            where=str(path),
            fix=f"give the {what} as UTF-8 JSON",
        ) from None
    except OSError as exc:
        raise InputError(
            f"cannot read the {what}: {exc.strerror or exc}",
            where=str(path),
            fix="check the path and that it is readable",
        ) from None


def _request_model(sample: Path | None, model: Path | None) -> dict[str, Any] | None:
    """The request validator's model: given as a schema file, or inferred from samples."""
    if model is not None:
        try:
            schema: dict[str, Any] = json.loads(_read_text(model, "model"))
        except ValueError as exc:
            raise InputError(f"model is not JSON: {exc}", where=str(model)) from exc
        return schema
    if sample is not None:
        return ApiSpec.model_schema_for(
            infer_schema(load_samples(_read_text(sample, "sample"), str(sample)))
        )
    return None


def _check_output_directory(output: Path) -> None:
    """Refuse ``-o`` into a directory that does not exist, before anything is built: the
    atomic write would create every missing directory, anywhere (as root: under any home)."""
    parent = output.parent
    if not parent.exists():
        raise InputError(
            f"directory {parent} does not exist",
            where=f"-o {output}",
            fix="create the directory first, or write elsewhere",
        )
    if not parent.is_dir():
        raise InputError(
            f"{parent} is not a directory", where=f"-o {output}", fix="write into a directory"
        )


def _execution_line(execution: Execution) -> str:
    what = execution.gateway_response or (
        f"SQS {execution.integration_status} ({execution.integration_source}): "
        f"{(execution.integration_response or '')[:300]}"
    )
    error = f" error={execution.error}" if execution.error else ""
    return (
        f"{execution.request_id} {execution.method} {execution.host}{execution.path} -> "
        f"{execution.status} {what}{error}"
    )


@click.group()
def apigw() -> None:
    """API Gateway side: stage emulator, mapping template, AWS artifacts.

    \b
    Examples:
      hookshift apigw template
      hookshift apigw serve --sqs-endpoint http://127.0.0.1:5000 \\
          --queue-url http://127.0.0.1:5000/123456789012/callbacks --cert-dir ./certs
      hookshift apigw render --format cloudformation --queue-name callbacks \\
          --sample callback.json --domain hooks.example.com --certificate-arn arn:aws:acm:...
    """


_TEMPLATE_OPTIONS = [
    click.option(
        "--request-id-header",
        default=integration.DEFAULT_REQUEST_ID_HEADER,
        show_default=True,
        help="Header carrying nginx's $request_id (must match the mirror).",
    ),
    click.option(
        "--template-variant",
        type=click.Choice(TEMPLATE_VARIANTS),
        default="recommended",
        show_default=True,
        help="no-urlencode / no-action reproduce two common template mistakes (for tests).",
    ),
    click.option("--fifo", is_flag=True, help="Send MessageGroupId/MessageDeduplicationId."),
    click.option("--fifo-group-id-path", help="JSON path for MessageGroupId, e.g. $.PHONE."),
    click.option(
        "--fifo-dedup-id-path", help="JSON path for MessageDeduplicationId, e.g. $.CMSGID."
    ),
]


response_mode_option = click.option(
    "--integration-responses",
    "response_mode",
    type=click.Choice(RESPONSE_MODES),
    default="recommended",
    show_default=True,
    help="default: every SQS answer -> 200 (hides SQS failures); recommended: SQS errors -> 5xx.",
)


def template_options(func: Any) -> Any:
    return apply_options(func, _TEMPLATE_OPTIONS)


def _options_from(kwargs: dict[str, Any]) -> TemplateOptions:
    fifo = bool(kwargs.pop("fifo")) or bool(kwargs.get("fifo_group_id_path"))
    return TemplateOptions(
        request_id_header=kwargs.pop("request_id_header"),
        variant=kwargs.pop("template_variant"),
        fifo=fifo or bool(kwargs.get("fifo_dedup_id_path")),
        fifo_group_id_path=kwargs.pop("fifo_group_id_path"),
        fifo_dedup_id_path=kwargs.pop("fifo_dedup_id_path"),
    )


@apigw.command("template")
@template_options
def template_cmd(**kwargs: Any) -> None:
    """Print the mapping template (VTL) API Gateway should have.

    \b
    Example:
      hookshift apigw template --request-id-header X-Request-Id
    """
    click.echo(integration.mapping_template(_options_from(kwargs)), nl=False)


@apigw.command("serve")
@click.option(
    "--sqs-endpoint", required=True, help="SQS endpoint (moto), e.g. http://127.0.0.1:5000"
)
@click.option("--queue-url", required=True, help="The queue's URL (its path is ACCOUNT/QUEUE).")
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Loopback address to listen on (the stage takes anyone's callbacks into the queue).",
)
@click.option(
    "--port", type=click.IntRange(0, 65535), default=0, help="Port (default: a free one)."
)
@click.option(
    "--cert-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the CA (ca.pem, for proxy_ssl_trusted_certificate) and certificates go.",
)
@click.option("--api-id", default="abc123", show_default=True)
@click.option("--region", default="ap-northeast-2", show_default=True)
@click.option("--stage", default="prod", show_default=True)
@click.option("--resource", "resource_path", default="/callback", show_default=True)
@click.option(
    "--domain",
    "domains",
    multiple=True,
    metavar="NAME[/BASEPATH]",
    help="Custom domain with a base path mapping to the stage (repeatable).",
)
@click.option(
    "--domain-unmapped",
    multiple=True,
    metavar="NAME",
    help="Custom domain without a base path mapping (answers 403 Forbidden).",
)
@click.option(
    "--integration-content-type",
    default=integration.integration_content_type(),
    show_default=True,
    help="Integration request Content-Type (anything else: UnknownOperationException).",
)
@click.option(
    "--template",
    "template_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Use this VTL mapping template instead of hookshift's.",
)
@template_options
@response_mode_option
@click.option(
    "--passthrough",
    type=click.Choice(["NEVER", "WHEN_NO_TEMPLATES", "WHEN_NO_MATCH"]),
    default=integration.passthrough_behavior(),
    show_default=True,
)
@click.option(
    "--sample",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Validate requests against a model inferred from this sample (JSON or JSON Lines).",
)
@click.option(
    "--model",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Validate requests against this JSON Schema (draft 4), as the request validator does.",
)
@click.option("--deny-send", is_flag=True, help="SQS refuses with AccessDenied (IAM failure).")
@click.option("--no-sni-required", is_flag=True, help="Accept TLS handshakes without SNI.")
@click.option("--cert-names", multiple=True, metavar="HOST=SAN[,SAN]", help="Wrong-SAN certs.")
@click.option("--cert-days", multiple=True, metavar="HOST=DAYS", help="Cert expiry (<0: expired).")
@click.option(
    "--log",
    "log_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Append every execution as a JSON line to this file (the owner's only: it holds "
    "the callbacks' bodies).",
)
def serve_cmd(
    sqs_endpoint: str,
    queue_url: str,
    host: str,
    port: int,
    cert_dir: Path | None,
    api_id: str,
    region: str,
    stage: str,
    resource_path: str,
    domains: tuple[str, ...],
    domain_unmapped: tuple[str, ...],
    integration_content_type: str,
    template_file: Path | None,
    response_mode: integration.ResponseMode,
    passthrough: str,
    deny_send: bool,
    no_sni_required: bool,
    cert_names: tuple[str, ...],
    cert_days: tuple[str, ...],
    log_file: Path | None,
    sample: Path | None,
    model: Path | None,
    **kwargs: Any,
) -> None:
    """Run an API Gateway REST API stage with an SQS integration over HTTPS.

    Prints one line, `ready URL ca=CA_PEM`, when it serves; logs each request on stderr;
    stops on SIGTERM/SIGINT.

    \b
    Example:
      hookshift apigw serve --sqs-endpoint http://127.0.0.1:5000 \\
          --queue-url http://127.0.0.1:5000/123456789012/callbacks \\
          --cert-dir /tmp/certs --domain hooks.example.com/v1 --integration-responses default
    """
    try:
        from hookshift.apigw.emulator import StageConfig, serve
    except ModuleNotFoundError as exc:
        if is_missing_extra(exc):
            raise MissingExtra("hookshift apigw serve") from exc
        raise
    _check_serve_addresses(host, sqs_endpoint, queue_url)
    config = StageConfig(
        sqs_endpoint=sqs_endpoint,
        queue_url=queue_url,
        api_id=api_id,
        region=region,
        stage=stage,
        resource_path=resource_path,
        custom_domains=_domains(domains, domain_unmapped),
        template=_options_from(kwargs),
        template_text=_read_template(template_file),
        integration_content_type=integration_content_type,
        response_mode=response_mode,
        passthrough_behavior=passthrough,
        deny_send=deny_send,
        host=host,
        port=port,
        cert_dir=cert_dir,
        cert_overrides=_cert_overrides(cert_names, cert_days),
        require_sni=not no_sni_required,
        request_model=_request_model(sample, model),
    )
    stopping = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    log = open_private(log_file) if log_file else None

    def listener(execution: Execution) -> None:
        click.echo(_execution_line(execution), err=True)
        if log is not None:
            log.write((execution.log_line() + "\n").encode("utf-8"))
            log.flush()

    try:
        with serve(config) as running:
            running.set_execution_listener(listener)
            running.set_tls_failure_listener(
                lambda message: click.echo(f"tls: {message}", err=True)
            )
            domains_text = "".join(
                f" domain={running.domain_url(d.name)}"
                for d in config.custom_domains
                if d.base_path is not None
            )
            click.echo(f"ready {running.url} ca={running.ca_pem}{domains_text}")
            stopping.wait()
    finally:
        if log is not None:
            log.close()


@apigw.command("render")
@click.option("--format", "fmt", type=click.Choice(FORMATS), required=True, help="What to write.")
@click.option("--queue-name", required=True, help="The callback queue (NAME or NAME.fifo).")
@click.option("--api-name", default="hookshift-callbacks", show_default=True)
@click.option("--stage", default="prod", show_default=True)
@click.option("--resource", "resource_path", default="/callback", show_default=True)
@click.option(
    "--sample",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A sample callback (JSON, or JSON Lines): the request model is inferred from it.",
)
@template_options
@response_mode_option
@click.option("--kms-key-arn", help="The queue's customer-managed KMS key (adds kms: actions).")
@click.option("--domain", help="Regional custom domain, e.g. hooks.example.com.")
@click.option("--certificate-arn", help="ACM certificate for --domain (same region as the API).")
@click.option("--base-path", default="", help="Base path mapping on the domain ('' = root).")
@click.option("--hosted-zone-id", help="Route 53 zone: adds the alias record for --domain.")
@click.option(
    "--queue-policy/--no-queue-policy",
    default=True,
    show_default=True,
    help="Also set the queue's access policy (replaces an existing one).",
)
@click.option("--account-id", help="AWS account (OpenAPI only; others use the deploying one).")
@click.option("--region", help="AWS region (OpenAPI only).")
@click.option("--role-name", help="Execution role name (default: API_NAME-sqs-send).")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write here (atomically) instead of stdout.",
)
def render_cmd(
    fmt: Format,
    sample: Path | None,
    output: Path | None,
    **kwargs: Any,
) -> None:
    """Write the API Gateway -> SQS setup as OpenAPI, CloudFormation or Terraform.

    The mapping template and integration responses are the ones `hookshift apigw serve`
    rehearses.

    \b
    Examples:
      hookshift apigw render --format cloudformation --queue-name kakao-at-result \\
          --sample callback.json --domain hooks.example.com \\
          --certificate-arn arn:aws:acm:ap-northeast-2:111122223333:certificate/abcd \\
          --hosted-zone-id Z123 -o callbacks.cfn.json
      hookshift apigw render --format openapi --queue-name kakao-at-result \\
          --account-id 111122223333 --region ap-northeast-2
      hookshift apigw render --format terraform --queue-name results.fifo --fifo \\
          --fifo-group-id-path '$.PHONE' --fifo-dedup-id-path '$.CMSGID'
    """
    if output is not None:
        _check_output_directory(output)
    options = _options_from(kwargs)
    schema = None
    if sample is not None:
        schema = infer_schema(load_samples(_read_text(sample, "sample"), str(sample)))
    spec = ApiSpec(template=options, schema=schema, **kwargs)
    document = render(spec, fmt)
    if output is None:
        click.echo(document, nl=False)
        return
    write_atomic(output, document)
    click.echo(f"wrote {output}", err=True)
