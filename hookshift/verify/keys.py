"""Match keys: what makes an app-side record and a queue message "the same callback".

A key is one or more parts joined with ``+``: ``request_id`` (nginx's ``$request_id``, which the
mirror carries to the queue as the ``nginx_request_id`` attribute), ``json:FIELD[.SUB]`` (a field
of a JSON body), ``form:FIELD`` (a field of an x-www-form-urlencoded body) or ``sha256`` (a hash
of the canonical body). Each part compiles to a DuckDB expression over the two columns every
source provides (``rid`` and ``body``), so the same key runs on a laptop or on Athena/Trino.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from hookshift.errors import InputError

KINDS = ("request_id", "json", "form", "sha256")

# What uniquely identifies a Bizppurio result: MSGID is Bizppurio's own id of one message, and
# RESULT its outcome. A vendor retry (or a `POST /v2/report` re-push) repeats both, so it is a
# duplicate; a later, different report for the same message (a fallback, a re-send) carries a
# different RESULT and is a different callback, not a body mismatch.
PROFILES = {"bizppurio": "json:MSGID+json:RESULT"}

_FIELD = re.compile(r"^[^.+\s][^+\s]*$")
_JSON_PATH = re.compile(r"^[^.+\s]+(\.[^.+\s]+)*$")  # no empty step: `a..b` names nothing
_SEP = "\x1f"  # joins the parts of a composite key; cannot occur in a JSON string unescaped
# begins the key of a record matched by nginx's request id because it lacks the key's fields
# (see KeySpec.fallback_sql); a key taken from a body never begins with it
BY_REQUEST_ID = "\x1e"


@dataclass(frozen=True)
class KeyPart:
    kind: str
    field: str = ""

    def __str__(self) -> str:
        return f"{self.kind}:{self.field}" if self.field else self.kind


@dataclass(frozen=True)
class KeySpec:
    parts: tuple[KeyPart, ...]

    def __str__(self) -> str:
        return "+".join(str(p) for p in self.parts)

    def sql(self, rid: str = "rid", body: str = "body") -> str:
        """A DuckDB expression: the key, or NULL when any part is absent."""
        exprs = [_part_sql(p, rid, body) for p in self.parts]
        if len(exprs) == 1:
            return exprs[0]
        return f" || '{_SEP}' || ".join(f"({e})" for e in exprs)

    @property
    def has_fallback(self) -> bool:
        """Whether a record without this key is matched by its request id instead: a key of
        body fields only. A vendor often posts a second shape (a report of another kind)
        without those fields; both its log line and its queue copy carry nginx's request id
        (docs/contracts.md), which pairs them as surely. A key with request_id or sha256 has no
        other id to fall back on."""
        return all(p.kind in ("json", "form") for p in self.parts)

    def fallback_sql(self, rid: str = "rid", body: str = "body") -> str:
        """A DuckDB expression: the request-id key of a record with a body (an empty one is a
        body nginx did not log: body_not_logged), NULL when there is none or no fallback."""
        if not self.has_fallback:
            return "NULL::VARCHAR"
        return f"CASE WHEN {body} <> '' AND {rid} <> '' THEN chr({ord(BY_REQUEST_ID)}) || {rid} END"

    def matching_sql(self, rid: str = "rid", body: str = "body") -> str:
        """What a record is matched by: the key, else the request-id fallback."""
        if not self.has_fallback:
            return self.sql(rid, body)
        return f"coalesce({self.sql(rid, body)}, {self.fallback_sql(rid, body)})"

    def display(self, key: str) -> str:
        """A key value as people read it: see `show_key`."""
        return show_key(self, key)


def show_key(spec: KeySpec, key: str) -> str:
    """One callback's key as every output shows it (rehearsal, parity report, heal): a key of
    several parts names each value by its field, ``MSGID=m1, RESULT=7000``; a key of one part
    is its value (the report's header names the field). A record matched by its request id
    instead shows as ``request_id=...``."""
    if key.startswith(BY_REQUEST_ID):
        return f"request_id={key[len(BY_REQUEST_ID) :]}"
    values = key.split(_SEP)
    if len(spec.parts) == 1 or len(values) != len(spec.parts):
        return key.replace(_SEP, ", ")
    return ", ".join(f"{p.field or p.kind}={v}" for p, v in zip(spec.parts, values, strict=True))


def show_body_key(spec: KeySpec, body: str | bytes) -> str | None:
    """`show_key` for a JSON body the caller holds (a callback it sent), when every part of
    `spec` is a JSON field of it; None otherwise."""
    try:
        data = json.loads(body)
    except ValueError:
        return None
    values: list[str] = []
    for part in spec.parts:
        value: Any = data
        for seg in part.field.split(".") if part.kind == "json" else ():
            value = value.get(seg) if isinstance(value, dict) else None
        if part.kind != "json" or value is None or value == "":
            return None
        values.append(value if isinstance(value, str) else json.dumps(value))
    return show_key(spec, _SEP.join(values))


def _sql_str(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _part_sql(part: KeyPart, rid: str, body: str) -> str:
    if part.kind == "request_id":
        return f"nullif({rid}, '')"
    if part.kind == "json":
        path = "$" + "".join('."' + seg.replace('"', '\\"') + '"' for seg in part.field.split("."))
        return (
            f"CASE WHEN json_valid({body}) THEN "
            f"nullif(json_extract_string({body}, {_sql_str(path)}), '') END"
        )
    if part.kind == "form":
        pattern = "(?:^|&)" + re.escape(part.field) + "=([^&]*)"
        raw = f"replace(regexp_extract({body}, {_sql_str(pattern)}, 1), '+', ' ')"
        # a value whose escapes are not UTF-8 (a form sent in EUC-KR: %B9%E8) cannot be
        # decoded, and url_decode stops the whole query on it: such a value is its own key as
        # written, the same on both sides (API Gateway passes the body through as it came)
        return f"nullif(coalesce(try(url_decode({raw})), {raw}), '')"
    # sha256 of the canonical body: JSON minified (whitespace-insensitive), anything else as is
    return (
        f"CASE WHEN {body} IS NULL OR {body} = '' THEN NULL WHEN json_valid({body}) "
        f"THEN sha256(json({body})::VARCHAR) ELSE sha256({body}) END"
    )


def parse_key(text: str) -> KeySpec:
    """Parse ``request_id``, ``json:A.B``, ``form:F``, ``sha256`` or several joined by ``+``."""
    parts: list[KeyPart] = []
    for raw in text.split("+"):
        item = raw.strip()
        kind, _, field = item.partition(":")
        if kind not in KINDS:
            raise InputError(
                f"unknown key part {item!r}",
                where=f"--key {text}",
                fix="use request_id, json:FIELD[.SUB], form:FIELD, sha256, joined with +",
            )
        needs_field = kind in ("json", "form")
        if needs_field and not (_JSON_PATH if kind == "json" else _FIELD).match(field):
            raise InputError(
                f"key part {item!r} needs a field name",
                where=f"--key {text}",
                fix=f"write {kind}:FIELD, e.g. {kind}:MSGID"
                + (" (or FIELD.SUB, no empty step between dots)" if kind == "json" else ""),
            )
        if not needs_field and field:
            raise InputError(
                f"key part {kind!r} takes no field", where=f"--key {text}", fix=f"write {kind}"
            )
        parts.append(KeyPart(kind, field))
    return KeySpec(tuple(parts))


def resolve_key(key: str | None, profile: str | None) -> KeySpec | None:
    """The key from ``--key`` or ``--profile``; None means "decide from the data"."""
    if key and profile:
        raise InputError(
            "--key and --profile both given", fix="choose one: the profile is a named key"
        )
    if profile:
        if profile not in PROFILES:
            raise InputError(
                f"unknown profile {profile!r}",
                where="--profile",
                fix="known profiles: " + ", ".join(sorted(PROFILES)),
            )
        return parse_key(PROFILES[profile])
    return parse_key(key) if key else None
