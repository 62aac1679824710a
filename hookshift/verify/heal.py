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

import errno
import json
import os
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from hookshift.addresses import is_http_url, is_loopback
from hookshift.durable import exclusive_lock
from hookshift.errors import InputError, OperationError
from hookshift.verify.fetch import LITERAL_MAX
from hookshift.verify.keys import KeySpec, parse_key, show_key
from hookshift.verify.sources import (
    AppFields,
    SourceSpec,
    app_rows_sql,
    parse_source,
    resolve_files,
    sql_str,
    unreadable_as_input_error,
)

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


NOT_A_REPORT = "is not a hookshift parity report"
# what each field the heal reads must hold, as the report's reader would say it
_REPORT_SHAPES: dict[str, tuple[type, str]] = {
    "missing_in_queue_keys": (list, "a list of keys"),
    "sources": (dict, "the app and queue sources by name"),
    "key": (str, "the key's name"),
}


def load_report(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InputError(
            "report not found",
            where=str(path),
            fix="write one with `hookshift verify parity --format json --out FILE`",
        ) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise InputError(
            f"{NOT_A_REPORT}: not UTF-8 text at byte {exc.start + 1}",
            where=f"{path}:{line}",
            fix="use the --format json output of verify parity",
        ) from None
    try:
        data = json.loads(text)
    except RecursionError:
        raise InputError(
            f"{NOT_A_REPORT}: nested too deep to be one",
            where=str(path),
            fix="use the --format json output of verify parity",
        ) from None
    except json.JSONDecodeError as exc:
        raise InputError(
            f"{NOT_A_REPORT} (JSON expected; unreadable at character {exc.colno} of this line)",
            where=f"{path}:{exc.lineno}",
            fix="use the --format json output of verify parity",
        ) from None
    if not isinstance(data, dict):
        raise InputError(
            f"{NOT_A_REPORT} (a JSON object expected)",
            where=str(path),
            fix="use the --format json output of verify parity",
        )
    for name, (shape, meaning) in _REPORT_SHAPES.items():
        if name not in data:
            raise InputError(
                f"report has no {name!r}",
                where=str(path),
                fix="use the --format json output of verify parity",
            )
        if not isinstance(data[name], shape):
            raise InputError(
                f"{NOT_A_REPORT}: its {name!r} does not hold {meaning}",
                where=str(path),
                fix="use the --format json output of verify parity, unedited",
            )
    if not isinstance(data["sources"].get("app"), str):
        raise InputError(
            "the report names no app source",
            where=str(path),
            fix="use the --format json output of verify parity, unedited",
        )
    fields = data.get("app_fields") or {}
    targets = data.get("heal_targets") or []
    if not (
        isinstance(fields, dict)
        and set(fields) <= {"body", "request_id", "time"}
        and all(isinstance(v, str) for v in fields.values())
        and isinstance(targets, list)
    ):
        raise InputError(
            "the report's app_fields or heal_targets are malformed",
            where=str(path),
            fix="use the --format json output of verify parity, unedited",
        )
    return dict(data)


def default_ledger(report_path: Path) -> Path:
    return report_path.parent / "hookshift-heal-ledger.jsonl"


def read_ledger(path: Path, target: str) -> set[str]:
    """Keys already sent to `target` (torn last lines from a crash are ignored)."""
    sent: set[str] = set()
    try:
        fd = _open_ledger(path, os.O_RDONLY)
    except FileNotFoundError:
        return sent
    with os.fdopen(fd, "rb") as fh:
        data = fh.read()
    for line in data.decode("utf-8", errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("to") == target:
            sent.add(str(entry.get("key")))
    return sent


def _open_ledger(path: Path, flags: int) -> int:
    """The ledger's descriptor, never through a link: a link planted at its path would have
    the replays' lines appended to (and the mode of) whatever file it points at."""
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        if exc.errno not in (errno.ELOOP, errno.EISDIR):
            raise
        fd = -1
    if fd < 0 or not stat.S_ISREG(os.fstat(fd).st_mode):
        if fd >= 0:
            os.close(fd)
        raise InputError(
            "the heal ledger is not a regular file (a link or a directory is there)",
            where=str(path),
            fix="remove it if you did not put it there, or give another --ledger",
        )
    return fd


@contextmanager
def _ledger_writer(path: Path) -> Iterator[Callable[[dict[str, Any]], None]]:
    """Append entries to the ledger, owner-only whatever the umask (each line names a
    callback), each fsynced. A torn last line from a crash is ended first, so the next
    entry is a line of its own and is read back."""
    fd = _open_ledger(path, os.O_RDWR | os.O_CREAT | os.O_APPEND)
    with os.fdopen(fd, "r+b") as fh:
        os.fchmod(fd, 0o600)
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            fh.write(b"\n")

        def append(entry: dict[str, Any]) -> None:
            fh.write(json.dumps(entry, ensure_ascii=False).encode("utf-8") + b"\n")
            fh.flush()
            os.fsync(fd)

        yield append


def _same_target(to: str, known: str) -> bool:
    """`to` is `known`, or a path under it on the same scheme, host and port (a recorded
    target that is no URL matches nothing)."""
    if to.startswith("sqs:") or known.startswith("sqs:"):
        return to.rstrip("/") == known.rstrip("/")
    if not is_http_url(known):
        return False
    a, b = urlsplit(to), urlsplit(known)
    if (a.scheme, a.hostname, a.port) != (b.scheme, b.hostname, b.port):
        return False
    base = b.path.rstrip("/")
    return a.path.rstrip("/") == base or a.path.startswith(base + "/")


def check_target(
    to: str,
    report: dict[str, Any],
    *,
    plain_http_loopback: bool,
    other_target: bool,
    endpoint_url: str | None = None,
) -> None:
    """Refuse a target that would leak the callbacks: not https (plain http to loopback only
    with `plain_http_loopback`), or not one the report's run used (unless `other_target`).

    For sqs: the bodies travel to the SQS endpoint (`endpoint_url`, else AWS's own, https),
    so that is the URL held to the rule; the queue URL only names the queue."""
    _refuse_user_info(to, "--to")
    if endpoint_url is not None:
        _refuse_user_info(endpoint_url, "--endpoint-url")
    if to.startswith("sqs:"):
        from hookshift.verify.pull import check_queue_url

        check_queue_url(to[4:], endpoint_url, option="--to")
        if endpoint_url is not None:
            _check_transport(endpoint_url, "--endpoint-url", plain_http_loopback)
    else:
        if not is_http_url(to):
            raise InputError(
                "not a stage URL", where=f"--to {to}", fix="give https://... or sqs:QUEUE_URL"
            )
        _check_transport(to, "--to", plain_http_loopback)
    known = [str(t) for t in report.get("heal_targets") or []]
    if other_target or any(_same_target(to, k) for k in known):
        return
    used = ", ".join(known) if known else "none recorded (give verify parity --stage-url)"
    raise InputError(
        f"not a target of the report's run (it used: {used})",
        where=f"--to {to}",
        fix="send to one of those, or add --i-mean-this-target to send elsewhere",
    )


def _refuse_user_info(url: str, option: str) -> None:
    """A user name or password in the URL is refused, and not echoed: the outputs would show
    it, and a stage or SQS authenticates otherwise (API Gateway does not read it)."""
    sqs, rest = ("sqs:", url[4:]) if url.startswith("sqs:") else ("", url)
    try:
        parts = urlsplit(rest)
    except ValueError:
        return  # not a URL: the checks after this one say so
    if "@" not in parts.netloc:
        return
    shown = sqs + parts._replace(netloc="***@" + parts.netloc.rpartition("@")[2]).geturl()
    raise InputError(
        "a URL with a user name or password is refused (it would be shown in the outputs)",
        where=f"{option} {shown}",
        fix="drop the 'USER:PASSWORD@' part: the stage and SQS do not read it",
    )


def _check_transport(url: str, option: str, plain_http_loopback: bool) -> None:
    parts = urlsplit(url)
    if parts.scheme == "https":
        return
    if not is_loopback(parts.hostname or ""):
        raise InputError(
            "replays carry callbacks unredacted: plain http is refused",
            where=f"{option} {url}",
            fix="use the https URL",
        )
    if not plain_http_loopback:
        raise InputError(
            "plain http, even to this machine, needs --allow-plain-http-loopback",
            where=f"{option} {url}",
            fix="add --allow-plain-http-loopback for a local test stage or queue",
        )


def find_bodies(report: dict[str, Any], keys: list[str]) -> dict[str, HealItem]:
    """The first accepted app record of each key, read again from the report's app source
    (a record whose body nginx did not log is not found: there is nothing to replay)."""
    if not keys:
        return {}
    spec = parse_source(report["sources"]["app"], "app")
    fields = AppFields(**report.get("app_fields") or {})
    key = parse_key(report["key"])
    with _as_report_app_source(), unreadable_as_input_error(spec):
        files = resolve_files(spec)
        return _find_bodies(spec, files, fields, key, keys)


@contextmanager
def _as_report_app_source() -> Iterator[None]:
    """An input error about the files heal reads names where they come from: the report's app
    source, which may have changed (logrotate) since the report was made."""
    try:
        yield
    except InputError as exc:
        raise InputError(
            f"{exc.what} (a file of the report's app source)", where=exc.where, fix=exc.fix
        ) from None


def _find_bodies(
    spec: SourceSpec, files: list[Path], fields: AppFields, key: KeySpec, keys: list[str]
) -> dict[str, HealItem]:
    import duckdb

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
                WHERE ok AND cls = 'a' AND body <> ''
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
        from hookshift.verify.pull import sqs_client

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
    import httpx

    # no redirects: a 3xx must not carry the bodies somewhere check_target never saw
    http = httpx.Client(timeout=10.0, follow_redirects=False)

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
    plain_http_loopback: bool = False,
    other_target: bool = False,
) -> HealResult:
    """Re-send the report's missing_in_queue callbacks to `to` (dry run unless `apply`)."""
    report = load_report(report_path)
    if report.get("redacted") and any("*" in str(k) for k in report["missing_in_queue_keys"]):
        raise InputError(
            "the report's keys are masked (they hold a phone number)",
            where=str(report_path),
            fix="rerun verify parity with --no-redact or another --key",
        )
    check_target(
        to,
        report,
        plain_http_loopback=plain_http_loopback,
        other_target=other_target,
        endpoint_url=endpoint_url,
    )
    ledger_path = ledger or default_ledger(report_path)
    _check_ledger_path(ledger_path, ledger is None, report_path, report)
    if not apply:
        return _heal(report, to, ledger_path, None)
    refusal = (
        f"another `hookshift verify heal --apply` is sending with the ledger {ledger_path}; "
        "rerun when it is done (the ledger skips what it sent)"
    )
    lock = ledger_path.with_name(ledger_path.name + ".lock")
    with exclusive_lock(lock, refusal), _ledger_writer(ledger_path) as record:
        # read the ledger under the lock: what another run sent is known before choosing
        return _heal(report, to, ledger_path, (_sender(to, endpoint_url, region), record))


def _check_ledger_path(
    path: Path, default: bool, report_path: Path, report: dict[str, Any]
) -> None:
    """The ledger is appended to: never the report, nor a file the report's sources read (an
    archive segment, the parity log), and only in a directory that exists. A dry run is
    refused alike, so that it says what --apply would do."""
    from hookshift.verify.outputs import check_output

    sources: list[SourceSpec] = []
    for side in ("app", "queue"):
        label = report["sources"].get(side)
        if isinstance(label, str):
            try:
                sources.append(parse_source(label, side))
            except InputError:
                continue  # a source heal does not read; find_bodies judges the app's
    check_output(
        path,
        "the ledger beside the report" if default else "--ledger",
        sources,
        {report_path: "--report"},
        fix="give --ledger a path outside the inputs",
    )


def _heal(
    report: dict[str, Any],
    to: str,
    ledger_path: Path,
    apply: tuple[Callable[[HealItem], None], Callable[[dict[str, Any]], None]] | None,
) -> HealResult:
    """Send what the ledger does not hold yet (`apply`: the sender and the ledger's writer;
    None: a dry run)."""
    done = read_ledger(ledger_path, to)
    keys = [str(k) for k in report["missing_in_queue_keys"]]
    pending = [k for k in keys if k not in done]
    found = find_bodies(report, pending)
    to_send = tuple(found[k] for k in pending if k in found)
    not_found = tuple(k for k in pending if k not in found)
    sent, failed = 0, []
    for item in to_send:
        if apply is None:  # a dry run
            break
        send, record = apply
        try:
            send(item)
        except Exception as exc:
            failed.append(f"{item.shown}: {exc}")
            continue
        record(
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
        applied=apply is not None,
        to_send=to_send,
        already_sent=len(keys) - len(pending),
        not_found=not_found,
        sent=sent,
        failed=tuple(failed),
    )
