"""Keep phone numbers out of reports: callbacks carry the recipient's number (``PHONE``).

Reports are pasted into tickets and chat, so they redact by default: JSON and form fields whose
name looks like a phone field, and anything in any text shaped like a Korean phone number, keep
only their last four digits.

People write the same number many ways, and a vendor passes on whatever its customer typed:
``010-1234-5678``, ``010.1234.5678``, ``(010)1234-5678``, ``010 1234 5678``, ``01012345678``,
``+82 10-1234-5678``, ``+821012345678``, ``82-10-1234-5678``, ``+82 (0)10 ...``, landlines
(``02``, ``031`` .. ``064``) and ``070`` the same way, full-width digits, and inside
URL-encoded text (``010%2D1234%2D5678``, ``%2B82``, ``+`` for a space). All of them are found
in free text, JSON strings and form values alike; digits run into other digits are not a phone
number (a message id is not masked).
"""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Any
from urllib.parse import parse_qsl, quote_plus, unquote_plus, urlencode

PHONE_FIELD = re.compile(r"phone|mobile|msisdn|callback|^(tel|hp|dest|recv|to|from|sender)$", re.I)

# between the groups of a number: nothing, or up to three of - . space ) / and their
# URL-encoded forms (a + is a space in a form)
_SEP = r"(?:[-. )/_~+]|%2[dDeE0fF]|%29){0,3}"
_OPEN = r"(?:\(|%28)?"
# area codes without their leading 0: mobile 010/011/016-019, Seoul 02, the provinces 031-064,
# and 070 (internet phones, handed out like mobiles)
_AREA = r"(?:1[016789]|2|[3-6][1-5]|70)"
_INTL = r"(?:\+|%2[bB]|00)?82" + _SEP + r"(?:\(0\)|%280%29|0)?" + _SEP
_NUMBER = (
    r"(?:(?<![0-9])|(?<=%[0-9A-Fa-f]{2}))"  # not inside a longer run of digits
    r"(?:"
    + _INTL
    + _OPEN
    + r"|"
    + _OPEN
    + r"0)"
    + _AREA
    + _SEP
    + r"[0-9]{3,4}"
    + _SEP
    + r"[0-9]{4}(?![0-9])"
)
PHONE_TEXT = re.compile(_NUMBER)
_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")
# a run of URL-encoded text (a query string, a form value inside a log line)
_ENCODED = re.compile(
    r"(?:%[0-9A-Fa-f]{2}|[A-Za-z0-9+._~*()-])*%[0-9A-Fa-f]{2}[A-Za-z0-9%+._~*()-]*"
)


def _ascii_view(text: str) -> str:
    """`text` with full-width digits and punctuation as ASCII, one character for one (so the
    positions of a match are positions in `text`)."""
    if text.isascii():
        return text
    out = []
    for c in text:
        if c.isascii():
            out.append(c)
            continue
        folded = unicodedata.normalize("NFKC", c)
        if len(folded) == 1 and folded.isascii():
            out.append(folded)
        elif c.isdecimal():
            out.append(str(unicodedata.decimal(c)))
        elif c in "\u2010\u2011\u2012\u2013\u2014\u2015\u2212":  # dashes people paste
            out.append("-")
        else:
            out.append(c)
    return "".join(out)


def mask(value: str) -> str:
    """Every digit but the last four as ``*`` (all of them when there are four or fewer)."""
    digits = sum(c.isdigit() for c in value)
    if digits <= 4:
        return "*" * len(value)
    keep, seen, out = 4, 0, []
    for c in reversed(value):
        if c.isdigit():
            seen += 1
            out.append(c if seen <= keep else "*")
        else:
            out.append(c)
    return "".join(reversed(out))


def _mask_span(original: str, view: str) -> str:
    """mask() of a matched number, leaving the digits of %XX escapes alone."""
    escapes = {i for m in _ESCAPE.finditer(view) for i in range(m.start() + 1, m.end())}
    positions = [i for i, c in enumerate(view) if c.isdigit() and i not in escapes]
    hidden = set(positions[:-4]) if len(positions) > 4 else set(positions)
    return "".join("*" if i in hidden else c for i, c in enumerate(original))


def redact_text(text: str) -> str:
    """`text` with every phone-shaped number masked (all but its last four digits), also where
    the number is URL-encoded beyond its separators (full-width digits as UTF-8 escapes)."""
    text = _redact_plain(text)
    if "%" not in text:
        return text
    return _ENCODED.sub(_redact_encoded, text)


def _redact_encoded(m: re.Match[str]) -> str:
    decoded = unquote_plus(m.group(0))
    shown = _redact_plain(decoded)
    return m.group(0) if shown == decoded else quote_plus(shown, safe="*")


def _redact_plain(text: str) -> str:
    view = _ascii_view(text)
    out, last = [], 0
    for m in PHONE_TEXT.finditer(view):
        out.append(text[last : m.start()])
        out.append(_mask_span(text[m.start() : m.end()], view[m.start() : m.end()]))
        last = m.end()
    if not out:
        return text
    out.append(text[last:])
    return "".join(out)


def _redact_number(value: int | float) -> str | int | float:
    """A JSON number that is a phone number without its leading 0 (``1012345678``) masked."""
    if isinstance(value, bool):
        return value
    text = str(value)
    for candidate in (text, "0" + text):
        if PHONE_TEXT.fullmatch(candidate):
            return mask(text)
    return value


def _redact_obj(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {
            redact_text(str(k)): (
                mask(str(v))
                if PHONE_FIELD.search(str(k))
                and isinstance(v, str | int)
                and not isinstance(v, bool)
                else _redact_obj(v)
            )
            for k, v in obj.items()
        }
    if isinstance(obj, list):
        return [_redact_obj(v) for v in obj]
    if isinstance(obj, str):
        return redact_text(obj)
    if isinstance(obj, int | float):
        return _redact_number(obj)
    return obj


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def redact_body(body: str | None) -> str | None:
    """A body with phone-like fields masked; JSON stays JSON (compact), forms stay forms."""
    if body is None:
        return None
    stripped = body.strip()
    if stripped[:1] in "{[":
        try:
            parsed = json.loads(stripped)
        except ValueError:
            return redact_text(body)
        text = json.dumps(_redact_obj(parsed), ensure_ascii=False, separators=(",", ":"))
        # a \\ud83d escape without its pair (an emoji cut in half by a vendor's length limit)
        # parses to a lone surrogate, which no UTF-8 output can hold: written back as its escape
        return _LONE_SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
    if "=" in body and "\n" not in body and " " not in body:
        pairs = parse_qsl(body, keep_blank_values=True)
        if pairs:
            return urlencode(
                [(k, mask(v) if PHONE_FIELD.search(k) else redact_text(v)) for k, v in pairs]
            )
    return redact_text(body)


def field_is_phone(name: str) -> bool:
    return bool(PHONE_FIELD.search(name.split(".")[-1]))
