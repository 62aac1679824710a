"""``hookshift verify heal``: re-send what the mirror lost, marked as a replay, exactly once.

The parity report lists the keys that are ``missing_in_queue``; their bodies are read again
from the app source the report names (the parity log keeps every body). Each one is sent with a
replay marker: to a stage URL as the ``X-Hookshift-Replay: <original request id>`` header (the
mapping template turns it into the ``hookshift_replay`` message attribute), or straight to SQS
with that attribute. The next parity report matches a replay to its original and counts it as
``replayed``. A ledger (append-only, fsync'ed, one line per sent callback) makes a rerun send
nothing twice; a dry run (the default) only says what would be sent.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hookshift.errors import InputError, OperationError
from verify.fetch import LITERAL_MAX
from verify.keys import parse_key, show_key
from verify.sources import AppFields, app_rows_sql, parse_source, resolve_files, sql_str

REPLAY_HEADER = "X-Hookshift-Replay"
REPLAY_ATTRIBUTE = "hookshift_replay"


@dataclass(frozen=True)
class HealItem:
    key: str
    shown: str  # the key as outputs show it (verify.keys.show_key)
    replay_id: str  # the original request id (the key when the app side has none)
    body: str
    content_type: str


@dataclass(frozen=True)
class HealResult:
    target: str
    applied: bool
    to_send: tuple[HealItem, ...]
    already_sent: int  # in the ledger from an earlier run
    not_found: tuple[str, ...]  # keys whose body is not in the app source any more
    sent: int
    failed: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "applied": self.applied,
            "to_send": [{"key": i.key, "replay_id": i.replay_id} for i in self.to_send],
            "already_sent": self.already_sent,
            "not_found": list(self.not_found),
            "sent": self.sent,
            "failed": list(self.failed),
        }


def load_report(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(
            "report not found",
            where=str(path),
            fix="write one with `hookshift verify parity --format json --out FILE`",
        ) from None
    except ValueError as exc:
        raise InputError(
            f"not a JSON report ({exc})",
            where=str(path),
            fix="use the --format json output of verify parity",
        ) from None
    if not isinstance(data, dict):
        raise InputError(
            "not a parity report",
            where=str(path),
            fix="use the --format json output of verify parity",
        )
    for name in ("missing_in_queue_keys", "sources", "key"):
        if name not in data:
            raise InputError(
                f"report has no {name!r}",
                where=str(path),
                fix="use the --format json output of verify parity",
            )
    return dict(data)


def default_ledger(report_path: Path) -> Path:
    return report_path.parent / "hookshift-heal-ledger.jsonl"


def read_ledger(path: Path, target: str) -> set[str]:
    """Keys already sent to `target` (torn last lines from a crash are ignored)."""
    sent: set[str] = set()
    if not path.exists():
        return sent
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("to") == target:
            sent.add(str(entry.get("key")))
    return sent


def _append_ledger(path: Path, entry: dict[str, Any]) -> None:
    with path.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(entry, ensure_ascii=False) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def find_bodies(report: dict[str, Any], keys: list[str]) -> dict[str, HealItem]:
    """The first accepted app record of each key, read again from the report's app source."""
    import duckdb

    if not keys:
        return {}
    spec = parse_source(report["sources"]["app"], "app")
    fields = AppFields(**report.get("app_fields") or {})
    files = resolve_files(spec)
    key = parse_key(report["key"])
    con = duckdb.connect()
    try:
        con.execute("SET enable_progress_bar = false")
        if len(keys) <= LITERAL_MAX:  # a filter pushed into the scan (see verify.fetch)
            wanted = "(" + ", ".join(sql_str(k) for k in keys) + ")"
        else:
            con.execute("CREATE TEMP TABLE want (k VARCHAR)")
            con.execute("INSERT INTO want SELECT unnest($1::VARCHAR[])", [list(keys)])
            wanted = "(SELECT k FROM want)"
        rows = con.execute(f"""
            SELECT k, rid, body, ct FROM (
                SELECT *, {key.sql("rid", "body")} AS k FROM ({app_rows_sql(spec, files, fields)})
                WHERE ok AND cls = 'a'
            ) WHERE k IN {wanted}
            QUALIFY row_number() OVER (PARTITION BY k ORDER BY t_ms NULLS LAST) = 1
        """).fetchall()
    finally:
        con.close()
    return {
        str(k): HealItem(
            key=str(k),
            shown=show_key(key, str(k)),
            replay_id=str(rid or k),
            body=str(body),
            content_type=str(ct or "application/json"),
        )
        for k, rid, body, ct in rows
    }


def _sender(to: str, endpoint_url: str | None, region: str | None) -> Callable[[HealItem], None]:
    if to.startswith("sqs:"):
        from verify.pull import sqs_client

        queue_url = to[4:]
        client = sqs_client(queue_url, endpoint_url, region)

        def send_sqs(item: HealItem) -> None:
            client.send_message(
                QueueUrl=queue_url,
                MessageBody=item.body,
                MessageAttributes={
                    REPLAY_ATTRIBUTE: {"DataType": "String", "StringValue": item.replay_id}
                },
            )

        return send_sqs
    if not to.startswith(("http://", "https://")):
        raise InputError(f"bad --to {to!r}", fix="give a stage URL (https://...) or sqs:QUEUE_URL")
    import httpx

    http = httpx.Client(timeout=10.0)

    def send_http(item: HealItem) -> None:
        reply = http.post(
            to,
            content=item.body.encode("utf-8"),
            headers={"Content-Type": item.content_type, REPLAY_HEADER: item.replay_id},
        )
        if not 200 <= reply.status_code < 300:
            raise OperationError(f"{to} answered {reply.status_code}: {reply.text[:200]}")

    return send_http


def heal(
    report_path: Path,
    to: str,
    *,
    apply: bool = False,
    ledger: Path | None = None,
    endpoint_url: str | None = None,
    region: str | None = None,
) -> HealResult:
    """Re-send the report's missing_in_queue callbacks to `to` (dry run unless `apply`)."""
    report = load_report(report_path)
    if any("*" in str(k) for k in report["missing_in_queue_keys"][:1]) and report.get("redacted"):
        raise InputError(
            "the report's keys are masked (the key holds a phone field)",
            where=str(report_path),
            fix="rerun verify parity with --no-redact or another --key",
        )
    ledger_path = ledger or default_ledger(report_path)
    done = read_ledger(ledger_path, to)
    keys = [str(k) for k in report["missing_in_queue_keys"]]
    pending = [k for k in keys if k not in done]
    found = find_bodies(report, pending)
    to_send = tuple(found[k] for k in pending if k in found)
    not_found = tuple(k for k in pending if k not in found)
    sent, failed = 0, []
    if apply and to_send:
        send = _sender(to, endpoint_url, region)
        for item in to_send:
            try:
                send(item)
            except Exception as exc:
                failed.append(f"{item.shown}: {exc}")
                continue
            _append_ledger(
                ledger_path,
                {
                    "key": item.key,
                    "replay_id": item.replay_id,
                    "to": to,
                    "sent_at": datetime.now(UTC).isoformat(timespec="seconds"),
                },
            )
            sent += 1
    return HealResult(
        target=to,
        applied=apply,
        to_send=to_send,
        already_sent=len(keys) - len(pending),
        not_found=not_found,
        sent=sent,
        failed=tuple(failed),
    )
