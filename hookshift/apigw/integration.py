"""The API Gateway -> SQS integration as data: one source for the emulator and the AWS artifacts.

The mapping template (``templates/apigw/sqs_send_message.vtl``, a jinja2 template that renders
VTL) and the rest of the integration (``templates/apigw/integration.json``: the integration
Content-Type, passthrough behaviour, integration responses) are package data. The stage emulator
renders and applies exactly these; ``hookshift apigw render`` writes exactly these into OpenAPI,
CloudFormation and Terraform. A rehearsal therefore exercises the configuration that is deployed.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Literal

import jinja2

from hookshift.errors import InputError

TemplateVariant = Literal["recommended", "no-urlencode", "no-action"]
ResponseMode = Literal["default", "recommended"]
TEMPLATE_VARIANTS: tuple[TemplateVariant, ...] = ("recommended", "no-urlencode", "no-action")
RESPONSE_MODES: tuple[ResponseMode, ...] = ("default", "recommended")

DEFAULT_REQUEST_ID_HEADER = "X-Request-Id"  # docs/contracts.md section 2
REPLAY_HEADER = "X-Hookshift-Replay"
_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
_JSON_PATH = re.compile(r"^\$(\.[A-Za-z_][A-Za-z0-9_-]*|\[\d+\]|\['[^'\\]+'\])*$")


def _package_text(name: str) -> str:
    return resources.files("hookshift.templates.apigw").joinpath(name).read_text(encoding="utf-8")


@cache
def _integration_data() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(_package_text("integration.json"))
    return data


@dataclass(frozen=True)
class TemplateOptions:
    """What varies in the mapping template.

    ``variant`` other than ``recommended`` reproduces a known misconfiguration on purpose
    (``no-urlencode``: ``MessageBody=$input.body``; ``no-action``: ``Action=SendMessage``
    missing). For FIFO queues the group and deduplication ids come from JSON paths into the
    callback (``$.PHONE``, ``$.CMSGID``), falling back to a constant group and to the API Gateway
    request id when the path is empty.
    """

    request_id_header: str = DEFAULT_REQUEST_ID_HEADER
    replay_header: str = REPLAY_HEADER
    variant: TemplateVariant = "recommended"
    fifo: bool = False
    fifo_group_id_path: str | None = None
    fifo_dedup_id_path: str | None = None

    def __post_init__(self) -> None:
        for header in (self.request_id_header, self.replay_header):
            if not _HEADER_NAME.match(header):
                raise InputError(
                    f"{header!r} is not an HTTP header name",
                    fix="use a token such as X-Request-Id",
                )
        if self.variant not in TEMPLATE_VARIANTS:
            raise InputError(
                f"unknown template variant {self.variant!r}",
                fix=f"use one of {', '.join(TEMPLATE_VARIANTS)}",
            )
        for path in (self.fifo_group_id_path, self.fifo_dedup_id_path):
            if path is not None and not _JSON_PATH.match(path):
                raise InputError(
                    f"{path!r} is not a simple JSON path",
                    fix="write it like $.CMSGID or $.data[0].id",
                )


def mapping_template(options: TemplateOptions = TemplateOptions()) -> str:
    """The VTL mapping template text for these options (what API Gateway stores)."""
    env = jinja2.Environment(
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
        undefined=jinja2.StrictUndefined,
        autoescape=False,
    )
    template = env.from_string(_package_text("sqs_send_message.vtl"))

    def path_expr(path: str | None, fallback: str) -> str:
        return f"$input.path('{path}')" if path else fallback

    return template.render(
        request_id_header=options.request_id_header,
        replay_header=options.replay_header,
        action=options.variant != "no-action",
        urlencode=options.variant != "no-urlencode",
        fifo=options.fifo,
        fifo_group_id=path_expr(options.fifo_group_id_path, '""'),
        fifo_dedup_id=path_expr(options.fifo_dedup_id_path, '""'),
    )


@dataclass(frozen=True)
class IntegrationResponse:
    """One integration response: SQS status pattern -> method status and body template."""

    selection_pattern: str | None
    status: int
    template: str

    def matches(self, backend_status: int) -> bool:
        """API Gateway matches the pattern against the whole status code string."""
        if self.selection_pattern is None:
            return False
        return re.fullmatch(self.selection_pattern, str(backend_status)) is not None


def integration_responses(mode: ResponseMode = "recommended") -> tuple[IntegrationResponse, ...]:
    modes = _integration_data()["response_modes"]
    if mode not in modes:
        raise InputError(
            f"unknown integration response mode {mode!r}",
            fix=f"use one of {', '.join(RESPONSE_MODES)}",
        )
    return tuple(
        IntegrationResponse(r["selection_pattern"], int(r["status"]), r["template"])
        for r in modes[mode]["responses"]
    )


def select_response(
    responses: tuple[IntegrationResponse, ...], backend_status: int
) -> IntegrationResponse:
    """The response API Gateway picks: the first whose pattern matches, else the default one."""
    for response in responses:
        if response.matches(backend_status):
            return response
    for response in responses:
        if response.selection_pattern is None:
            return response
    raise ValueError("integration responses have no default (a response without a pattern)")


def integration_content_type() -> str:
    """The integration request Content-Type SQS's query protocol needs."""
    return str(_integration_data()["integration_content_type"])


def passthrough_behavior() -> str:
    return str(_integration_data()["passthrough_behavior"])


def request_content_types() -> tuple[str, ...]:
    """Method request content types that have the mapping template (others: 415 with NEVER)."""
    return tuple(_integration_data()["request_content_types"])


def response_content_type() -> str:
    return str(_integration_data()["response_content_type"])


def integration_method() -> str:
    """SQS's query protocol takes POST (API Gateway's integration HTTP method)."""
    return str(_integration_data()["integration_method"])
