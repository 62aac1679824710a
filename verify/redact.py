"""Keep phone numbers out of reports: callbacks carry the recipient's number (``PHONE``).

Reports are pasted into tickets and chat, so they redact by default: JSON and form fields whose
name looks like a phone field, and anything in free text shaped like a Korean or international
phone number, keep only their last four digits.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qsl, urlencode

PHONE_FIELD = re.compile(r"phone|mobile|msisdn|callback|^(tel|hp|dest|recv|to|from|sender)$", re.I)
PHONE_TEXT = re.compile(r"(?<!\d)(?:\+?82[- ]?|0)1[016789][- ]?\d{3,4}[- ]?\d{4}(?!\d)")


def mask(value: str) -> str:
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


def _redact_obj(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {
            k: (
                mask(str(v))
                if PHONE_FIELD.search(k) and isinstance(v, str | int)
                else _redact_obj(v)
            )
            for k, v in obj.items()
        }
    if isinstance(obj, list):
        return [_redact_obj(v) for v in obj]
    if isinstance(obj, str):
        return redact_text(obj)
    return obj


def redact_text(text: str) -> str:
    return PHONE_TEXT.sub(lambda m: mask(m.group(0)), text)


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
        return json.dumps(_redact_obj(parsed), ensure_ascii=False, separators=(",", ":"))
    if "=" in body and "\n" not in body and " " not in body:
        pairs = parse_qsl(body, keep_blank_values=True)
        if pairs:
            return urlencode(
                [(k, mask(v) if PHONE_FIELD.search(k) else redact_text(v)) for k, v in pairs]
            )
    return redact_text(body)


def field_is_phone(name: str) -> bool:
    return bool(PHONE_FIELD.search(name.split(".")[-1]))
