"""The integration request: what API Gateway sends to SQS and what SQS answers.

API Gateway's AWS integration POSTs the rendered template to ``https://sqs.REGION.amazonaws.com/
ACCOUNT/QUEUE`` (the path override), SigV4-signed with the execution role, with the integration's
Content-Type and ``Accept: application/json`` — which is why SQS's query-protocol answers reach
API Gateway as JSON (``{"SendMessageResponse": ...}``, and the ``{"Error": {"Code":
"AccessDenied", ...}}``).

Where the answer comes from (the emulator says so in every ``SqsReply.source``):

* from moto (``source="moto"``): every request that reaches SQS's query protocol — SendMessage,
  its parsing of the form body (so an un-encoded ``&`` truncates ``MessageBody`` exactly as AWS
  does), queue-not-found, a FIFO queue without ``MessageGroupId``. moto answers
  in XML whatever the Accept header says; its XML is translated to the JSON shape SQS sends
  for ``Accept: application/json`` (the translation is modelled, the content is moto's).
* modelled here (``source="modelled"``), because moto answers differently from AWS:
  - Content-Type not ``application/x-www-form-urlencoded``, or no ``Action`` in the form:
    AWS answers 404 ``<UnknownOperationException/>`` (as a real stage logs it); moto answers 500
    or an empty 404;
  - ``deny_send``: 403 AccessDenied in SQS's JSON shape (the execution role or the queue
    policy lacks ``sqs:SendMessage``); moto does not enforce IAM;
  - an empty ``MessageBody`` (400 MissingParameter) and an empty message attribute value (400
    InvalidParameterValue): AWS rejects both, moto accepts them;
  - a FIFO ``MessageGroupId`` or ``MessageDeduplicationId`` that is not 1-128 ASCII letters,
    digits or punctuation (a Korean name, a space): AWS answers 400 InvalidParameterValue, moto
    keeps the message;
  - a body or attribute value with a character outside the set SQS allows (``#x9 | #xA | #xD |
    #x20-#xD7FF | #xE000-#xFFFD | #x10000-#x10FFFF``, e.g. U+0001 or U+FFFF): AWS answers 400
    InvalidMessageContents, moto keeps the message;
  - a message over the queue's ``MaximumMessageSize`` (asked from moto): SQS counts the UTF-8
    bytes of the body and the attributes, moto the characters of the body only, so Korean text
    would pass moto and fail on AWS.
"""

from __future__ import annotations

import json
import re
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit

import httpx
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from hookshift.errors import HookshiftError

FORM = "application/x-www-form-urlencoded"
# dummy credentials: moto ignores the signature but needs a SigV4 header to route to SQS
_CREDENTIALS = Credentials("testing", "testing")


class IntegrationFailure(HookshiftError):
    """SQS could not be reached (API Gateway: "Execution failed due to configuration error")."""


class IntegrationTimeout(IntegrationFailure):
    """SQS did not answer within the integration timeout (API Gateway answers 504)."""


@dataclass(frozen=True)
class SqsReply:
    """SQS's answer to the integration request, as API Gateway receives it."""

    status: int
    body: str
    content_type: str
    source: Literal["moto", "modelled"]


def aws_queue_url(queue_url: str, region: str) -> str:
    """The queue URL as it is on AWS (``https://sqs.REGION.amazonaws.com/ACCOUNT/QUEUE``)."""
    return f"https://sqs.{region}.amazonaws.com{urlsplit(queue_url).path}"


def _json_error(status: int, code: str, message: str, kind: str = "Sender") -> SqsReply:
    body = {"Error": {"Code": code, "Message": message, "Type": kind}, "RequestId": _request_id()}
    return SqsReply(status, json.dumps(body, separators=(",", ":")), "application/json", "modelled")


# what SQS accepts in a message body and attribute values (the XML 1.0 Char production)
_INVALID_CHAR = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
# FIFO ids: 1-128 of A-Z a-z 0-9 and ASCII punctuation (SQS's quotas); moto checks neither
_FIFO_ID = re.compile(r"[A-Za-z0-9!-/:-@\[-`{-~]{1,128}")


def _request_id() -> str:
    return str(uuid.uuid4())


def modelled_reply(
    form_body: bytes, content_type: str, queue_url: str, region: str, *, deny_send: bool
) -> SqsReply | None:
    """AWS's answer where moto's differs (see the module docstring), else None: ask moto."""
    if deny_send:
        resource = aws_queue_url(queue_url, region)
        return _json_error(403, "AccessDenied", f"Access to the resource {resource} is denied.")
    media_type = content_type.split(";", 1)[0].strip().lower()
    fields = parse_qsl(form_body.decode("utf-8", errors="replace"), keep_blank_values=True)
    params = dict(fields)
    if media_type != FORM or not params.get("Action"):
        return SqsReply(404, "<UnknownOperationException/>", "text/xml", "modelled")
    if params["Action"] == "SendMessage":
        if params.get("MessageBody", "") == "":
            return _json_error(
                400, "MissingParameter", "The request must contain the parameter MessageBody."
            )
        for key, value in fields:
            if key == "MessageBody" or key.endswith(".StringValue"):
                bad = _INVALID_CHAR.search(value)
                if bad is not None:
                    return _json_error(
                        400,
                        "InvalidMessageContents",
                        f"Invalid binary character '#x{ord(bad.group()):X}' was found in the"
                        " message body, the set of allowed characters is #x9 | #xA | #xD |"
                        " #x20 to #xD7FF | #xE000 to #xFFFD | #x10000 to #x10FFFF",
                    )
            fifo_id = key in ("MessageGroupId", "MessageDeduplicationId")
            if fifo_id and not _FIFO_ID.fullmatch(value):
                return _json_error(
                    400,
                    "InvalidParameterValue",
                    f"Value {value} for parameter {key} is invalid. Reason: {key} can only include"
                    " alphanumeric and punctuation characters. 1 to 128 in length.",
                )
            if key.startswith("MessageAttribute.") and key.endswith(".StringValue") and not value:
                index = key.split(".")[1]
                name = params.get(f"MessageAttribute.{index}.Name", f"#{index}")
                return _json_error(
                    400,
                    "InvalidParameterValue",
                    f"Message (user) attribute '{name}' must contain a non-empty value of type"
                    " 'String'.",
                )
    return None


def message_size(fields: list[tuple[str, str]]) -> int:
    """SQS's message size: body bytes plus each attribute's name, data type and value bytes."""
    params = dict(fields)
    size = len(params.get("MessageBody", "").encode("utf-8"))
    for key, value in fields:
        if key.startswith("MessageAttribute.") and key.count(".") >= 2:
            size += len(value.encode("utf-8"))  # .Name, .Value.DataType, .Value.StringValue
    return size


def oversize_reply(form_body: bytes, maximum: int | None) -> SqsReply | None:
    """SQS's error for a SendMessage over the queue's MaximumMessageSize (modelled because moto
    counts characters of the body only, SQS counts bytes of the body and the attributes)."""
    if maximum is None:
        return None
    fields = parse_qsl(form_body.decode("utf-8", errors="replace"), keep_blank_values=True)
    if dict(fields).get("Action") != "SendMessage" or message_size(fields) <= maximum:
        return None
    return _json_error(
        400,
        "InvalidParameterValue",
        f"One or more parameters are invalid. Reason: Message must be shorter than {maximum}"
        " bytes.",
    )


def _element_to_json(element: ET.Element) -> Any:
    children = list(element)
    if not children:
        return element.text or ""
    out: dict[str, Any] = {}
    for child in children:
        tag = child.tag.rsplit("}", 1)[-1]
        value = _element_to_json(child)
        if tag in out:
            existing = out[tag]
            out[tag] = [*existing, value] if isinstance(existing, list) else [existing, value]
        else:
            out[tag] = value
    return out


def xml_to_json(xml_text: str) -> str:
    """SQS's XML answer in the JSON shape SQS gives for ``Accept: application/json``.

    Errors come as ``{"Error": {...}, "RequestId": ...}`` (the ErrorResponse's contents, the
    JSON shape); results as ``{"SendMessageResponse": {"SendMessageResult": ...}}``.
    """
    root = ET.fromstring(xml_text)
    tag = root.tag.rsplit("}", 1)[-1]
    content = _element_to_json(root)
    if tag == "ErrorResponse" and isinstance(content, dict):
        error = content.get("Error", {})
        if isinstance(error, dict):
            error.pop("Detail", None)
        return json.dumps(content, ensure_ascii=False, separators=(",", ":"))
    return json.dumps({tag: content}, ensure_ascii=False, separators=(",", ":"))


class SqsIntegration:
    """Sends integration requests to SQS at ``endpoint`` (moto) as API Gateway does."""

    def __init__(self, endpoint: str, region: str, *, timeout: float = 29.0) -> None:
        # 29 s is API Gateway's integration timeout
        self.endpoint = endpoint.rstrip("/")
        self.region = region
        self._client = httpx.Client(timeout=timeout)
        self._max_sizes: dict[str, int | None] = {}

    def _post(self, queue_url: str, form_body: bytes, content_type: str) -> httpx.Response:
        url = self.endpoint + urlsplit(queue_url).path
        request = AWSRequest(
            method="POST",
            url=url,
            data=form_body,
            headers={"Content-Type": content_type, "Accept": "application/json"},
        )
        SigV4Auth(_CREDENTIALS, "sqs", self.region).add_auth(request)
        try:
            return self._client.post(url, content=form_body, headers=dict(request.headers))
        except httpx.TimeoutException as exc:
            raise IntegrationTimeout(f"{type(exc).__name__}: {exc}") from exc
        except httpx.HTTPError as exc:
            raise IntegrationFailure(f"{type(exc).__name__}: {exc}") from exc

    def maximum_message_size(self, queue_url: str) -> int | None:
        """The queue's MaximumMessageSize (asked once per queue), None if SQS will not say."""
        if queue_url not in self._max_sizes:
            body = b"Action=GetQueueAttributes&AttributeName.1=MaximumMessageSize"
            try:
                response = self._post(queue_url, body, FORM)
                found = re.search(r"<Value>(\d+)</Value>", response.text)
                self._max_sizes[queue_url] = int(found.group(1)) if found else None
            except IntegrationTimeout:
                raise  # SQS is as slow for the SendMessage: one timeout, not two in a row
            except IntegrationFailure:
                return None
        return self._max_sizes[queue_url]

    def send(
        self, queue_url: str, form_body: bytes, content_type: str, *, deny_send: bool = False
    ) -> SqsReply:
        modelled = modelled_reply(
            form_body, content_type, queue_url, self.region, deny_send=deny_send
        ) or oversize_reply(form_body, self.maximum_message_size(queue_url))
        if modelled is not None:
            return modelled
        response = self._post(queue_url, form_body, content_type)
        text = response.text
        content = response.headers.get("content-type", "")
        if "xml" in content and text.strip().startswith("<"):
            try:
                return SqsReply(response.status_code, xml_to_json(text), "application/json", "moto")
            except ET.ParseError:
                pass
        return SqsReply(response.status_code, text, content, "moto")

    def close(self) -> None:
        self._client.close()
