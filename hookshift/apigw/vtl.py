"""API Gateway's mapping-template language, rendered with airspeed (the VTL engine LocalStack uses).

API Gateway evaluates a mapping template with Apache Velocity and three variables: ``$input``
(the method request: body, parameters, JSON paths), ``$util`` (encoding helpers) and
``$context`` (request id, stage, resource path, ...). This module gives airspeed Python objects
that behave like API Gateway's, so a template renders here as it would on AWS. What matters most
for SQS is exact: ``$util.urlEncode`` is Java's ``URLEncoder.encode(s, "UTF-8")`` (space as
``+``, only ``A-Za-z0-9.-*_`` left as is), which is what keeps ``&``, ``+``, ``%``, ``=`` and
Korean text intact in a form-encoded ``MessageBody``.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote_plus, unquote_plus

import airspeed

from hookshift.errors import HookshiftError


class VtlError(HookshiftError):
    """The template does not parse or fails while rendering (API Gateway answers 500)."""


class BodyNotJson(VtlError):
    """The template asked for a JSON path into a body that is not JSON.

    API Gateway parses the body only when a template calls ``$input.path`` or ``$input.json``
    (``$input.body`` alone takes any text), and then refuses the request with 400 ``Could not
    parse request body into json: ...`` before any integration runs: a vendor usually does not
    retry a 400, so a FIFO template reading ids from a callback that is not JSON loses it.
    """


class VtlMap(dict[str, Any]):
    """A dict with the java.util.Map methods templates call (``size()``, ``keySet()``, ...)."""

    def size(self) -> int:
        return len(self)

    def keySet(self) -> list[str]:
        return list(self.keys())

    def isEmpty(self) -> bool:
        return not self

    def containsKey(self, key: str) -> bool:
        return key in self

    def entrySet(self) -> list[VtlMap]:
        return [VtlMap(key=k, value=v) for k, v in self.items()]


class JavaBoolean:
    """A JSON boolean as Velocity holds it: renders ``true``/``false`` (Python's would render
    ``True``), and is still false in ``#if`` and equal to the ``true``/``false`` literals."""

    __slots__ = ("value",)

    def __init__(self, value: bool) -> None:
        self.value = value

    def __bool__(self) -> bool:
        return self.value

    def __str__(self) -> str:
        return "true" if self.value else "false"

    __repr__ = __str__

    def __eq__(self, other: object) -> bool:
        return self.value == (other.value if isinstance(other, JavaBoolean) else other)

    def __hash__(self) -> int:
        return hash(self.value)


def to_vtl(value: Any) -> Any:
    """Wrap nested dicts so templates can call Map methods at any depth, and booleans so they
    render as Java's."""
    if isinstance(value, bool):
        return JavaBoolean(value)
    if isinstance(value, Mapping):
        return VtlMap({str(k): to_vtl(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return [to_vtl(v) for v in value]
    return value


def java_url_encode(value: Any) -> str:
    """``java.net.URLEncoder.encode(value, "UTF-8")``: what ``$util.urlEncode`` does on AWS."""
    return quote_plus(str(value), safe="*").replace("~", "%7E")


_JS_ESCAPES = {"\\": "\\\\", '"': '\\"', "'": "\\'", "/": "\\/", "\b": "\\b", "\f": "\\f"}
_JS_ESCAPES |= {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def escape_javascript(value: Any) -> str:
    """JavaScript string escaping as commons-lang ``escapeJavaScript`` (what AWS documents).

    Quotes, backslash and slash are escaped, control characters and non-ASCII become ``\\uXXXX``.
    """
    out = []
    for char in str(value):
        if char in _JS_ESCAPES:
            out.append(_JS_ESCAPES[char])
        elif ord(char) < 0x20 or ord(char) > 0x7F:  # commons-lang leaves DEL (0x7F) as is
            if ord(char) > 0xFFFF:  # a surrogate pair, as Java's UTF-16 strings hold it
                code = ord(char) - 0x10000
                out.append(f"\\u{0xD800 + (code >> 10):04X}\\u{0xDC00 + (code & 0x3FF):04X}")
            else:
                out.append(f"\\u{ord(char):04X}")
        else:
            out.append(char)
    return "".join(out)


class Util:
    """``$util``."""

    def urlEncode(self, value: Any) -> str:
        return java_url_encode("" if value is None else value)

    def urlDecode(self, value: Any) -> str:
        return unquote_plus(str(value))

    def escapeJavaScript(self, value: Any) -> str:
        return escape_javascript("" if value is None else value)

    def base64Encode(self, value: Any) -> str:
        return base64.b64encode(str(value).encode("utf-8")).decode("ascii")

    def base64Decode(self, value: Any) -> str:
        return base64.b64decode(str(value)).decode("utf-8", errors="replace")

    def parseJson(self, value: Any) -> Any:
        return to_vtl(json.loads(str(value)))


_PATH_STEP = re.compile(r"\.([A-Za-z_][A-Za-z0-9_-]*)|\[(\d+)\]|\['([^'\\]+)'\]")


def json_path(document: Any, path: str) -> Any:
    """Evaluate the JSONPath subset templates use (``$``, ``$.a.b``, ``$['a']``, ``$.a[0]``).

    A missing step gives None (an empty reference), as API Gateway renders a missing field.
    """
    if not path.startswith("$"):
        raise VtlError(f"JSONPath {path!r} must start with $")
    rest = path[1:]
    value = document
    position = 0
    while position < len(rest):
        step = _PATH_STEP.match(rest, position)
        if step is None:
            raise VtlError(f"unsupported JSONPath {path!r}")
        position = step.end()
        name, index, quoted = step.groups()
        if index is not None:
            value = (
                value[int(index)] if isinstance(value, list) and int(index) < len(value) else None
            )
        else:
            key = name if name is not None else quoted
            value = value.get(key) if isinstance(value, Mapping) else None
        if value is None:
            return None
    return value


@dataclass(frozen=True)
class MethodRequest:
    """The method request as a mapping template sees it."""

    body: str
    headers: tuple[tuple[str, str], ...] = ()
    querystring: Mapping[str, str] = field(default_factory=dict)
    path_params: Mapping[str, str] = field(default_factory=dict)

    def header(self, name: str) -> str | None:
        """Header lookup is case-insensitive, as HTTP header names are; the last one wins."""
        found = None
        for key, value in self.headers:
            if key.lower() == name.lower():
                found = value
        return found


class Input:
    """``$input``: the body, the parameters, and JSON paths into the body.

    ``$input.body`` of an empty request body is ``{}`` on API Gateway, whatever the content
    type, so an empty callback reaches SQS as the message ``{}`` rather than being refused for
    an empty ``MessageBody``.
    """

    def __init__(self, request: MethodRequest) -> None:
        self._request = request
        self.body = request.body or "{}"

    def _document(self) -> Any:
        """The body as JSON; an empty body is ``{}`` here too, as for ``$input.body``."""
        if not self._request.body:
            return {}
        try:
            return json.loads(self._request.body)
        except ValueError as exc:
            raise BodyNotJson(f"Could not parse payload into json: {exc}") from None

    def params(self, name: str | None = None) -> Any:
        """``$input.params()`` (all, by location) or ``$input.params('x')`` (path/query/header)."""
        request = self._request
        if name is None:
            headers: dict[str, str] = {}
            for key, value in request.headers:
                headers[key] = value
            return VtlMap(
                path=VtlMap(request.path_params),
                querystring=VtlMap(request.querystring),
                header=VtlMap(headers),
            )
        if name in request.path_params:
            return request.path_params[name]
        if name in request.querystring:
            return request.querystring[name]
        return request.header(name)

    def path(self, path: str) -> Any:
        return to_vtl(json_path(self._document(), path))

    def json(self, path: str = "$") -> str:
        value = json_path(self._document(), path)
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def render(
    template: str,
    request: MethodRequest,
    context: Mapping[str, Any],
    stage_variables: Mapping[str, str] | None = None,
) -> str:
    """Render a mapping template for one request (raises VtlError where API Gateway fails)."""
    namespace = {
        "input": Input(request),
        "util": Util(),
        "context": to_vtl(context),
        "stageVariables": VtlMap(stage_variables or {}),
    }
    try:
        return str(airspeed.Template(template).merge(namespace))
    except VtlError:
        raise
    except airspeed.TemplateError as exc:
        if isinstance(exc.__cause__, BodyNotJson):  # airspeed wraps what a method call raised
            raise exc.__cause__ from None
        raise VtlError(str(exc)) from exc
    except Exception as exc:  # anything a template triggers fails the request, as on AWS
        raise VtlError(f"{type(exc).__name__}: {exc}") from exc
