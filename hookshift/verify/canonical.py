"""Canonical bodies: two bodies are the same callback when they say the same thing.

The raw bytes are compared first (in SQL, by hash); only the pairs that differ come here. JSON
is compared as data (key order and whitespace do not matter, ``\\u`` escapes and UTF-8 are the
same text); an x-www-form-urlencoded body as its decoded pairs; anything else byte for byte.
An empty body is ``{}``: API Gateway's ``$input.body`` gives ``{}`` for a request without a
body, whatever its content type, so that is what the queue gets for the callback nginx logged
empty.
"""

from __future__ import annotations

import json
from urllib.parse import parse_qsl


def canonical(body: str) -> str:
    text = body.strip() if body else "{}"
    if text[:1] in "{[":
        try:
            return "json:" + json.dumps(
                json.loads(text), sort_keys=True, ensure_ascii=False, separators=(",", ":")
            )
        except ValueError:
            pass
    if "=" in text and "\n" not in text:
        try:
            pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=True)
        except ValueError:
            pairs = []
        if pairs:
            return "form:" + json.dumps(sorted(pairs), ensure_ascii=False)
    return "raw:" + body


def same_body(a: str, b: str) -> bool:
    return a == b or canonical(a) == canonical(b)
