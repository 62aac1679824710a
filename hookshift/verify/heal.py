"""``hookshift verify heal``: re-send what the mirror lost, marked as a replay, exactly once.

The parity report lists the keys that are ``missing_in_queue`` (the app accepted them, or
only rejected them: nginx passed them to the app, so the mirror copied them); their bodies are
read again from the app source the report names (the parity log keeps every body). Each one is
sent with a replay marker: to a stage URL as the ``X-Hookshift-Replay: <original request id>``
header (the mapping template turns it into the ``hookshift_replay`` message attribute), or
straight to SQS with that attribute. A replay goes where the mirror sent its copy: the stage
URL + the callback's request URI from the parity log (``proxy_pass https://STAGE$request_uri``;
`replay_url`). The next parity report matches a replay to its original and counts it as
``replayed``. A ledger (append-only, fsync'ed, keyed on the place each replay went to however
its URL is written: `ledger_place`) makes a rerun send nothing twice: each replay is written
in it before its request goes out and again once answered, so a run killed in between leaves
the replay in doubt, held back until a report shows it did not arrive (`_in_doubt`). A dry
run (the default) only says what would be sent.

A stage URL is looked up once, before anything is sent: with ``--resolver`` at that DNS server
(a stage behind a private resolver), else this machine's way; its certificate is checked against
``--ca-file`` or the system's CAs, with the stage's name as SNI and ``Host`` (hookshift.stagehttp,
the probe's own steps). A target that cannot be reached is one line, with nothing sent and the
ledger untouched, and a stage that stops answering part-way, or refuses REFUSALS_TO_STOP
replays in a row the same way, stops the run at once: one line, not one per callback, and what
was sent stays in the ledger for the rerun. A host outside ASCII is reached by its ``xn--`` form.
"""

from __future__ import annotations

import errno
import functools
import json
import os
import ssl
import stat
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from hookshift.addresses import dns_host, is_http_url, is_ip_address, is_loopback
from hookshift.durable import exclusive_lock
from hookshift.errors import InputError, OperationError
from hookshift.nginx.values import parse_resolver
from hookshift.stagehttp import (
    Answer,
    NoConnection,
    Silent,
    StageClient,
    StageUnreachable,
    authority,
    check_ca_file,
    connect,
    handshake,
    plain_words,
    resolve,
    system_lookup,
    tls_context,
    wire_name,
)
from hookshift.verify.fetch import LITERAL_MAX
from hookshift.verify.keys import KeySpec, parse_key, show_key
from hookshift.verify.sources import (
    AppFields,
    SourceSpec,
    app_rows_sql,
    parse_source,
    repair_undecodable,
    resolve_files,
    sql_str,
    unreadable_as_input_error,
)

REPLAY_HEADER = "X-Hookshift-Replay"
REPLAY_ATTRIBUTE = "hookshift_replay"
# the most each step towards a stage waits, in seconds (the probe's caps)
DNS_TIMEOUT = 3.0
CONNECT_TIMEOUT = 5.0
SEND_TIMEOUT = 10.0
TO_QUEUE = "send to the queue: --to sqs:QUEUE_URL"
# a run stops when this many replays in a row are refused the same way (the same HTTP status,
# or the same SQS error code): the rest would be refused alike, one request and one line each
REFUSALS_TO_STOP = 3


@dataclass(frozen=True)
class HealItem:
    key: str
    shown: str  # the key as outputs show it (verify.keys.show_key)
    replay_id: str  # the original request id (the key when the app side has none)
    body: str
    content_type: str
    uri: str | None = None  # the request URI nginx logged (path and query); None: not known


@dataclass(frozen=True)
class HealResult:
    target: str
    applied: bool
    to_send: tuple[HealItem, ...]
    already_sent: int  # in the ledger from an earlier run
    not_found: tuple[str, ...]  # keys whose body is not in the app source any more
    sent: int
    failed: tuple[str, ...]
    sent_items: tuple[HealItem, ...] = ()  # the ones the target accepted in this run
    places: tuple[str, ...] = ()  # where the replays of to_send go (replay_url), each once
    # keys an earlier run was sending when it stopped (a kill, a lost answer): they may have
    # reached the target, and are held back until a report shows they did not (`_in_doubt`)
    in_doubt: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "applied": self.applied,
            "to_send": [
                {"key": i.key, "replay_id": i.replay_id, "to": replay_url(self.target, i.uri)}
                for i in self.to_send
            ],
            "already_sent": self.already_sent,
            "not_found": list(self.not_found),
            "sent": self.sent,
            "sent_keys": [i.key for i in self.sent_items],
            "failed": list(self.failed),
            "in_doubt": list(self.in_doubt),
        }


NOT_A_REPORT = "is not a hookshift parity report"
# what each field the heal reads must hold, as the report's reader would say it
_REPORT_SHAPES: dict[str, tuple[type, str]] = {
    "missing_in_queue_keys": (list, "a list of keys"),
    "sources": (dict, "the app and queue sources by name"),
    "key": (str, "the key's name"),
}


def _read_report(path: Path) -> bytes:
    """The report file's bytes; a FIFO or a device is refused before it is read (one would
    never end: a FIFO nobody writes, /dev/zero)."""
    fix = "write one with `hookshift verify parity --format json --out FILE`"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise InputError("report not found", where=str(path), fix=fix) from None
    except OSError as exc:
        raise InputError(
            f"cannot read the report ({exc.strerror})", where=str(path), fix=fix
        ) from None
    # checked on the descriptor before Python wraps it: a directory opens, and its wrapper
    # refuses it in words naming the descriptor's number, not the path
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise InputError("not a regular file, so not a report", where=str(path), fix=fix)
    with os.fdopen(fd, "rb") as handle:
        return handle.read()


def load_report(path: Path) -> dict[str, Any]:
    raw = _read_report(path)
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
    if not all(isinstance(k, str) for k in data["missing_in_queue_keys"]):
        raise InputError(
            "the report is damaged: its 'missing_in_queue_keys' holds something that is not a "
            "key (a key is a string)",
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
        and all(isinstance(t, str) for t in targets)
    ):
        raise InputError(
            "the report's app_fields or heal_targets are malformed",
            where=str(path),
            fix="use the --format json output of verify parity, unedited",
        )
    return dict(data)


def default_ledger(report_path: Path) -> Path:
    return report_path.parent / "hookshift-heal-ledger.jsonl"


def ledger_place(url: str) -> str:
    """Where `url` sends, as one text however it is written: the heal ledger's entries are
    keyed on it, so that the same place is the same entry. Scheme and host lowercased, the host
    as DNS carries it (IDNA ``xn--``), the default port dropped, the trailing slash dropped; the
    query and fragment dropped too: neither chooses where a replay lands (API Gateway routes on
    the path; --to refuses both). ``sqs:`` targets alike (the queue URL's). A text that is no
    URL is returned as it is (it matches only itself)."""
    prefix, rest = ("sqs:", url[4:]) if url.startswith("sqs:") else ("", url)
    try:
        parts = urlsplit(rest)
        port = parts.port
    except ValueError:
        return url
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http") or not parts.hostname:
        return url
    try:
        host = dns_host(parts.hostname)
    except ValueError:
        host = parts.hostname
    shown_port = None if port == {"https": 443, "http": 80}[scheme] else port
    netloc = authority(host.strip("[]"), shown_port)
    return prefix + urlunsplit((scheme, netloc, parts.path.rstrip("/"), "", ""))


def _at_or_below(place: str, base: str) -> bool:
    """`place` (a ledger place) is `base` or a path below it."""
    return place == base or place.startswith(base + "/")


def replay_url(to: str, uri: str | None) -> str:
    """Where the replay of a callback whose request URI was `uri` goes: where the mirror sent
    its copy, the stage URL + the request URI (path and query: nginx's
    ``proxy_pass https://STAGE$request_uri``). A `to` whose path already ends with the
    callback's path is the stage URL with that path written out: the path is not added twice
    (the mirror refuses a --stage-url that ends with the callback path, so no stage of it has a
    path ending so). With no URI (an app source other than the parity log), `to` is the full
    URL. An sqs: target is the queue, whatever the path."""
    if not uri or not uri.startswith("/") or to.startswith("sqs:"):
        return to
    parts = urlsplit(to)
    path, _, query = uri.partition("?")
    base = parts.path.rstrip("/")
    own = path.rstrip("/")
    if own and base.endswith(own):
        base = base[: len(base) - len(own)]
    return urlunsplit((parts.scheme, parts.netloc, base + path, query, ""))


# The ledger's lines. A replay is written ahead ({"sending_at": ...}) before its request goes
# out, and settled after: sent ({"sent_at": ...}, also every line of an older hookshift) or
# not sent ({"not_sent_at": ...}: refused, or no connection was made). A replay whose line
# was written ahead and never settled was in flight when its run stopped (kill -9, a power
# cut, an answer lost): it may have reached the target, so it is not sent again blindly.
SENDING, NOT_SENT = "sending_at", "not_sent_at"
# a replay the stage took reaches the queue within this (API Gateway sends it to SQS before it
# answers): a report over a queue read later than this after it was sent says where it is
SETTLE_MS = 60_000


@dataclass
class Ledger:
    """What the ledger says: the places each key was sent to (`ledger_place`), and the replays
    an earlier run was sending when it stopped: (key, place) -> when (epoch ms)."""

    sent: dict[str, set[str]]
    sending: dict[tuple[str, str], int]


def read_ledger(path: Path) -> Ledger:
    """The ledger at `path` (a ledger of an older hookshift holds the --to as given, read the
    same way). Torn last lines from a crash are ignored."""
    ledger = Ledger({}, {})
    try:
        fd = _open_ledger(path, os.O_RDONLY)
    except FileNotFoundError:
        return ledger
    with os.fdopen(fd, "rb") as fh:
        data = fh.read()
    for line in data.decode("utf-8", errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if not (isinstance(entry, dict) and isinstance(entry.get("to"), str)):
            continue
        key, place = str(entry.get("key")), ledger_place(entry["to"])
        if SENDING in entry:
            ledger.sending[(key, place)] = _epoch_ms(entry[SENDING])
            continue
        ledger.sending.pop((key, place), None)
        if NOT_SENT not in entry:
            ledger.sent.setdefault(key, set()).add(place)
    return ledger


def _epoch_ms(text: object) -> int:
    """An ISO time of the ledger as epoch ms; one that cannot be read as the latest time
    possible (nothing can show such a replay did not arrive: it stays held back)."""
    try:
        return int(datetime.fromisoformat(str(text)).timestamp() * 1000)
    except ValueError:
        return 2**62


def _sent_before(places: set[str] | None, to: str) -> bool:
    """Whether a key the ledger holds at `places` was sent to `to` already: to it, or to a
    path below it (a replay goes to --to + its callback's path)."""
    here = ledger_place(to)
    return any(_at_or_below(place, here) for place in places or ())


def _in_doubt(ledger: Ledger, key: str, to: str, report: dict[str, Any]) -> bool:
    """Whether `key` was being sent to `to` (or below it) when an earlier run stopped, and the
    report does not show that the replay missed the queue: the report must have read the queue
    SETTLE_MS after the replay went out and still list the key missing (parity counts a replay
    that arrived as replayed, not missing). Its window's end is when the queue was read
    (an archive's last drained pull), unless --until chose it."""
    here = ledger_place(to)
    sending = [
        t for (k, place), t in ledger.sending.items() if k == key and _at_or_below(place, here)
    ]
    if not sending:
        return False
    window = report.get("window")
    window = window if isinstance(window, dict) else {}
    end = window.get("end") if not window.get("until") else None
    return end is None or not _end_is_read_time(report) or _epoch_ms(end) < max(sending) + SETTLE_MS


def _end_is_read_time(report: dict[str, Any]) -> bool:
    """Whether the report's window ends when its queue was read: an archive's does once a
    pull found the queue empty (its drained mark, which stays), and the end of one without it
    is only its newest record, which says nothing of a replay."""
    label = report["sources"].get("queue")
    if not isinstance(label, str) or not label.startswith("archive:"):
        return True
    from hookshift.verify.archive import archive_drained_at

    return archive_drained_at(Path(label.partition(":")[2])) is not None


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
    """`to` is `known`, or a path under it on the same scheme, host and port, however either
    is written (`ledger_place`); a recorded target that is no URL matches nothing."""
    if to.startswith("sqs:") or known.startswith("sqs:"):
        return ledger_place(to) == ledger_place(known)
    if not is_http_url(known):
        return False
    return _at_or_below(ledger_place(to), ledger_place(known))


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
        _check_stage_url(to)
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


def _check_stage_url(to: str) -> None:
    """A stage URL names one place: a port that exists, a host DNS can hold, and no query or
    fragment (each replay carries its callback's own query, from the parity log)."""
    parts = urlsplit(to)
    if parts.port == 0:
        raise InputError(
            "port 0 is no port a stage listens on (1-65535)",
            where=f"--to {to}",
            fix="give the stage's port, or none for 443",
        )
    try:
        dns_host(parts.hostname or "")
    except ValueError as exc:
        raise InputError(
            f"its host {parts.hostname} is {exc}",
            where=f"--to {to}",
            fix="give the stage's host as DNS knows it",
        ) from None
    if parts.query or parts.fragment or to.endswith(("?", "#")):
        raise InputError(
            "a stage URL has no query or fragment: each replay carries its callback's own "
            "query (from the parity log)",
            where=f"--to {to}",
            fix="drop ?... and #...",
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
    """The first accepted app record of each key, else its first rejected one (a key the app
    only rejected is missing in the queue too: the mirror ran for it), read again from the
    report's app source (a record whose body nginx did not log is not found: there is nothing
    to replay; nor is one nginx answered itself, which the mirror never copied)."""
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

        def scan(paths: list[Path]) -> list[Any]:
            return con.execute(f"""
                SELECT k, rid, body, ct, uri FROM (
                    SELECT *, {key.matching_sql("rid", "body")} AS k
                    FROM ({app_rows_sql(spec, paths, fields, uri=True)})
                    WHERE ok AND cls IN ('a', 'r') AND body <> ''
                ) WHERE k IN {wanted}
                QUALIFY row_number() OVER (
                    PARTITION BY k ORDER BY cls = 'r', t_ms NULLS LAST) = 1
            """).fetchall()

        rows = scan(files)
        if len(rows) < len(keys) and spec.kind != "csv":
            # lines that are not UTF-8 (a vendor posting EUC-KR), which parity compares as the
            # queue got them: replayed the same way, the stage makes of them what it made then
            with tempfile.TemporaryDirectory(prefix="hookshift-heal-") as tmp:
                copies = [copy for _, copy, _ in repair_undecodable(files, Path(tmp))]
                if copies:
                    found = {row[0] for row in rows}
                    rows += [row for row in scan(copies) if row[0] not in found]
    finally:
        con.close()
    return {
        str(k): HealItem(
            key=str(k),
            shown=show_key(key, str(k)),
            replay_id=str(rid or k),
            body=str(body),
            content_type=str(ct or "application/json"),
            uri=str(uri) if uri else None,
        )
        for k, rid, body, ct, uri in rows
    }


class _Unreachable(Exception):
    """The target stopped answering: the run stops here instead of failing every callback
    left the same way."""

    def __init__(self, words: str, *, delivered: bool) -> None:
        super().__init__(words)
        self.words = words
        self.delivered = delivered  # the callback in hand may have reached it


class _Refused(Exception):
    """The target answered, and refused this replay: `status` (an HTTP status, or SQS's error
    code), in `words` (what, and where); `fix` is what to do when every replay is refused so."""

    def __init__(self, status: str, words: str, fix: str) -> None:
        super().__init__(words)
        self.status = status
        self.words = words
        self.fix = fix


# Sends one replay (the item, and the URL it goes to: replay_url); see _sender
Send = Callable[[HealItem, str], None]


def _said(text: str) -> str:
    """What an answer's body says, on one line: API Gateway's ``{"message": ...}``, else the
    text itself, cut short."""
    said: Any = text
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict):
        said = data.get("message") or data.get("Message") or text
    words = " ".join(str(said).split())
    return (words[:200] + "...") if len(words) > 200 else words or "(no body)"


def _stage_refusal(url: str, status: int, text: str) -> _Refused:
    """A stage's non-2xx answer to a replay sent to `url`, with what to do when it answers
    every replay so."""
    said = _said(text)
    path = urlsplit(url).path or "/"
    if status == 403 and "missing authentication token" in said.lower():
        fix = (
            f"the stage has no POST resource at {path}: give --to the stage's URL, as the "
            "mirror's --stage-url (each replay goes to it + its callback's path, as the "
            "mirror's copies do)"
        )
    elif status in (401, 403):
        fix = (
            "the stage refuses these requests (an authorizer, resource policy or WAF): "
            "let them through, then rerun"
        )
    elif status == 404:
        fix = f"nothing answers POST at {path}: check the stage in --to"
    elif status == 429:
        fix = "the stage throttles: rerun later (the ledger skips what was sent)"
    elif status >= 500:
        fix = (
            "the stage's integration fails (its SQS access or mapping template): "
            "check its execution log, then rerun"
        )
    else:
        fix = "check what the stage accepts, then rerun (the ledger skips what was sent)"
    return _Refused(str(status), f"{url} answered {status} {said}", fix)


def _queue_refusal(queue_url: str, exc: Any) -> _Refused:
    """SQS's refusal of a SendMessage (a botocore ClientError)."""
    error = exc.response.get("Error", {}) if isinstance(exc.response, dict) else {}
    code = str(error.get("Code") or "an error")
    said = " ".join(str(error.get("Message") or "").split()) or "(no message)"
    if "AccessDenied" in code:
        fix = "give these credentials sqs:SendMessage on the queue, then rerun"
    elif "NonExistentQueue" in code or "QueueDoesNotExist" in code:
        fix = "check the queue URL in --to (and --region, --endpoint-url)"
    else:
        fix = "check the queue, then rerun (the ledger skips what was sent)"
    return _Refused(code, f"sqs:{queue_url} refused it: {code}: {said}", fix)


@contextmanager
def _sender(
    to: str,
    endpoint_url: str | None,
    region: str | None,
    address: str | None,
    ca_file: str | None,
) -> Iterator[Send]:
    """What sends one replay (a stage URL: to the replay's URL at `address`, the one
    `reach_stage` checked). A refusal of one callback (a non-2xx answer, an SQS error) raises
    _Refused; a target that cannot be reached raises _Unreachable."""
    if to.startswith("sqs:"):
        from botocore.exceptions import ClientError, HTTPClientError
        from botocore.exceptions import ConnectionError as NoConnectionToSqs

        from hookshift.verify.pull import sqs_client

        queue_url = to[4:]
        client = sqs_client(queue_url, endpoint_url, region)

        def send_sqs(item: HealItem, url: str) -> None:
            try:
                client.send_message(
                    QueueUrl=queue_url,
                    MessageBody=item.body,
                    MessageAttributes={
                        REPLAY_ATTRIBUTE: {"DataType": "String", "StringValue": item.replay_id}
                    },
                )
            except NoConnectionToSqs as exc:  # no connection was made: nothing reached SQS
                raise _Unreachable(str(exc), delivered=False) from None
            except HTTPClientError as exc:  # sent, and the answer was lost
                raise _Unreachable(str(exc), delivered=True) from None
            except ClientError as exc:  # SQS answered, and refused it
                raise _queue_refusal(queue_url, exc) from None

        yield send_sqs
        return
    with StageClient(to, address, ca_file=ca_file, timeout=SEND_TIMEOUT) as stage:

        def send_http(item: HealItem, url: str) -> None:
            # the id as UTF-8 bytes: a key taken from the callback (Korean text) is not ASCII,
            # which is all a header given as text may hold, and the stage must get it unchanged
            headers = {
                "Content-Type": item.content_type.encode("utf-8"),
                REPLAY_HEADER: item.replay_id.encode("utf-8"),
            }
            parts = urlsplit(url)
            path = parts.path + (f"?{parts.query}" if parts.query else "")
            try:
                reply = stage.post(item.body.encode("utf-8"), headers, path=path)
            except StageUnreachable as exc:
                raise _Unreachable(exc.words, delivered=exc.delivered) from None
            if not 200 <= reply.status_code < 300:
                raise _stage_refusal(url, reply.status_code, reply.text)

        yield send_http


def check_stage_options(
    to: str, resolver: str | None, ca_file: str | None
) -> tuple[str, int] | None:
    """`resolver` read (the one reader of a resolver, nginx.values.parse_resolver) and `ca_file`
    checked, before anything is sent. Both are for a stage URL: an sqs: target is sent by the
    AWS SDK, which takes neither, and plain http has no certificate to check."""
    if to.startswith("sqs:"):
        for option, value in (("--resolver", resolver), ("--ca-file", ca_file)):
            if value is not None:
                raise InputError(
                    "is for a stage URL: an sqs: target is sent by the AWS SDK, which uses "
                    "this machine's resolver and CAs",
                    where=f"{option} {value}",
                    fix=f"drop {option}, or give --to the stage's https URL",
                )
        return None
    if ca_file is not None and urlsplit(to).scheme != "https":
        raise InputError(
            f"checks a TLS certificate, and --to {to} is plain http",
            where=f"--ca-file {ca_file}",
            fix="drop --ca-file, or give --to the stage's https URL",
        )
    server = parse_resolver(resolver) if resolver is not None else None
    if ca_file is not None:
        check_ca_file(ca_file)
    return server


def reach_stage(to: str, resolver: tuple[str, int] | None, ca_file: str | None) -> str:
    """The address `to`'s host resolves to (at `resolver`, else this machine's way), once a TCP
    connection and, for https, a verified TLS handshake (SNI: the host) were made to it.

    InputError (exit 2) for a name that does not exist there; OperationError for a resolver or
    a stage that does not answer or a certificate that is refused. Either way nothing was sent.
    A name with letters outside ASCII is looked up, and sent as SNI, in its ``xn--`` form.
    """
    parts = urlsplit(to)
    host = parts.hostname or ""  # check_target: there is one
    name = wire_name(host)
    https = parts.scheme == "https"
    port = parts.port or (443 if https else 80)
    answer = resolve(name, resolver, DNS_TIMEOUT) if resolver else system_lookup(name)
    if not answer.addresses:
        raise _unresolved(host, answer, named=resolver is not None)
    address = answer.addresses[0]
    at = authority(address, port)
    if not is_ip_address(host):
        at = f"{host} at {at}"
    try:
        if https:
            handshake(address, port, name, tls_context(ca_file), CONNECT_TIMEOUT)
        else:
            connect(address, port, CONNECT_TIMEOUT).close()
    except NoConnection as exc:
        raise OperationError(
            f"cannot connect to {at}: {exc}; nothing was sent (fix: check that the stage is up "
            f"and listens on port {port}, then rerun, or {TO_QUEUE})"
        ) from None
    except Silent as exc:
        raise OperationError(
            f"{at} accepted TCP but answered no TLS handshake ({exc}): something that is not "
            f"HTTPS listens there; nothing was sent (fix: check the port in --to)"
        ) from None
    except ssl.SSLCertVerificationError as exc:
        raise OperationError(_refused_certificate(at, exc, ca_file)) from None
    except OSError as exc:  # an SSLError is an OSError: the handshake failed
        raise OperationError(
            f"the TLS handshake with {at} failed: {plain_words(exc)}; nothing was sent "
            "(fix: check that --to is the stage's https URL)"
        ) from None
    return address


def _unresolved(host: str, answer: Answer, *, named: bool) -> InputError | OperationError:
    """Why `host` has no address, as one line: bad input when the name does not exist there
    (the host or the resolver given is wrong), a failed step when asking failed."""
    if named:
        fix = f"check --resolver, or {TO_QUEUE}"
        asked = f"at {answer.resolver}"
    else:
        fix = (
            "check the host in --to (a stage behind a private DNS: --resolver ADDR[:PORT]), "
            f"or {TO_QUEUE}"
        )
        asked = "on this machine (hosts file and DNS)"
    if answer.rcode == "NXDOMAIN":
        return InputError(f"cannot resolve {host}: no such name {asked}; nothing was sent", fix=fix)
    if answer.rcode == "NODATA":
        return InputError(
            f"cannot resolve {host}: the name has no address (no A or AAAA record) {asked}; "
            "nothing was sent",
            fix=fix,
        )
    if answer.rcode == "TIMEOUT":
        why = f"no answer {asked} within {DNS_TIMEOUT:g} s"
        if named:
            fix = (
                f"check that a DNS server answers at {answer.resolver} (--resolver), or {TO_QUEUE}"
            )
    elif answer.rcode == "ERROR":
        why = f"asking {answer.resolver} failed: {answer.error or 'no reason given'}"
    else:  # SERVFAIL, REFUSED: the server answered, and not with the name
        why = f"{answer.resolver} answered {answer.rcode}"
    return OperationError(f"cannot resolve {host}: {why}; nothing was sent (fix: {fix})")


def _refused_certificate(at: str, exc: ssl.SSLCertVerificationError, ca_file: str | None) -> str:
    """The line for a certificate the handshake refused, with the fix for its reason: a name it
    does not hold, an expiry, or a CA that is not trusted (a private CA needs --ca-file)."""
    message = exc.verify_message or plain_words(exc)
    if "hostname" in message.lower():
        fix = "give --to a name the stage's certificate holds"
    elif "expired" in message.lower():
        fix = "renew the stage's certificate"
    elif ca_file is not None:
        fix = f"--ca-file {ca_file} is not the CA that signed it: give that CA's bundle"
    else:
        fix = "for a private CA, pass its bundle with --ca-file PATH"
    return f"the certificate of {at} is refused: {message}; nothing was sent (fix: {fix})"


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
    resolver: str | None = None,
    ca_file: str | None = None,
) -> HealResult:
    """Re-send the report's missing_in_queue callbacks to `to` (dry run unless `apply`); a
    stage URL's host is resolved at `resolver` (``ADDR[:PORT]``) when given, and its
    certificate checked against `ca_file` when given."""
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
    server = check_stage_options(to, resolver, ca_file)
    ledger_path = ledger or default_ledger(report_path)
    _check_ledger_path(ledger_path, ledger is None, report_path, report)
    if not apply:
        return _heal(report, to, ledger_path, None)
    address = None
    if not to.startswith("sqs:") and _anything_left(report, to, ledger_path):
        address = reach_stage(to, server, ca_file)
    refusal = (
        f"another `hookshift verify heal --apply` is sending with the ledger {ledger_path}; "
        "rerun when it is done (the ledger skips what it sent)"
    )
    lock = ledger_path.with_name(ledger_path.name + ".lock")
    with (
        exclusive_lock(lock, refusal),
        _ledger_writer(ledger_path) as record,
        _sender(to, endpoint_url, region, address, ca_file) as send,
    ):
        # read the ledger under the lock: what another run sent is known before choosing
        return _heal(report, to, ledger_path, (send, record))


def _plan(report: dict[str, Any], to: str, ledger: Ledger) -> tuple[list[str], list[str]]:
    """The report's keys the ledger does not hold as sent to `to`: those to send, and those
    held back because an earlier run may have sent them (`_in_doubt`)."""
    keys = [str(k) for k in report["missing_in_queue_keys"]]
    pending = [k for k in keys if not _sent_before(ledger.sent.get(k), to)]
    held = [k for k in pending if _in_doubt(ledger, k, to, report)]
    return [k for k in pending if k not in held], held


def _anything_left(report: dict[str, Any], to: str, ledger_path: Path) -> bool:
    """Whether the report lists a callback the ledger does not hold yet (read without the
    lock: a rerun that has nothing left to send needs no stage)."""
    return bool(_plan(report, to, read_ledger(ledger_path))[0])


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
    apply: tuple[Send, Callable[[dict[str, Any]], None]] | None,
) -> HealResult:
    """Send what the ledger does not hold yet (`apply`: the sender and the ledger's writer;
    None: a dry run), each replay to its callback's place (`replay_url`). A run stops when
    REFUSALS_TO_STOP replays in a row are refused the same way."""
    keys = [str(k) for k in report["missing_in_queue_keys"]]
    pending, held = _plan(report, to, read_ledger(ledger_path))
    found = find_bodies(report, pending)
    to_send = tuple(found[k] for k in pending if k in found)
    not_found = tuple(k for k in pending if k not in found)
    sent: list[HealItem] = []
    failed: list[str] = []
    streak: list[_Refused] = []  # the refusals in a row, all of one status
    for item in to_send:
        if apply is None:  # a dry run
            break
        send, record = apply
        url = replay_url(to, item.uri)
        entry = {"key": item.key, "replay_id": item.replay_id, "to": ledger_place(url)}
        settle = functools.partial(_settle, record, entry)
        settle(SENDING)  # written ahead: a run killed during the request leaves it in doubt
        try:
            send(item, url)
        except _Unreachable as exc:
            if not exc.delivered:
                settle(NOT_SENT)
            raise OperationError(_stopped(to, exc, item, len(sent), len(to_send))) from None
        except _Refused as exc:
            settle(NOT_SENT)
            streak = [*streak, exc] if streak and streak[-1].status == exc.status else [exc]
            failed.append(f"{item.shown}: {exc.words}")
            if len(streak) == REFUSALS_TO_STOP:
                others = len(failed) - len(streak)
                raise OperationError(_refused_stop(exc, len(sent), len(to_send), others)) from None
            continue
        except Exception as exc:  # this callback could not be sent (e.g. a header it cannot carry)
            settle(NOT_SENT)
            failed.append(f"{item.shown}: {exc}")
            continue
        streak = []
        settle("sent_at")
        sent.append(item)
    return HealResult(
        target=to,
        applied=apply is not None,
        to_send=to_send,
        already_sent=len(keys) - len(pending) - len(held),
        not_found=not_found,
        sent=len(sent),
        failed=tuple(failed),
        sent_items=tuple(sent),
        places=tuple(dict.fromkeys(replay_url(to, item.uri) for item in to_send)),
        in_doubt=tuple(held),
    )


def _settle(record: Callable[[dict[str, Any]], None], entry: dict[str, Any], outcome: str) -> None:
    """Append `entry` to the ledger with `outcome` (SENDING, NOT_SENT or sent_at) and its time."""
    record({**entry, outcome: datetime.now(UTC).isoformat(timespec="milliseconds")})


def _refused_stop(last: _Refused, sent: int, total: int, others: int) -> str:
    """The one line of a run stopped by replays refused the same way, REFUSALS_TO_STOP in a
    row: the rest would be refused alike. What was accepted stays in the ledger."""
    line = (
        f"stopped after {REFUSALS_TO_STOP} replays in a row were refused the same way "
        f"({sent + others + REFUSALS_TO_STOP} of {total} tried): {last.words}"
    )
    if others:
        line += f"; {others} other replay(s) refused before"
    if sent:
        line += f"; the {sent} accepted are in the ledger, and a rerun skips them"
    else:
        line += "; none was accepted"
    return f"{line} (fix: {last.fix})"


def _stopped(to: str, exc: _Unreachable, item: HealItem, sent: int, total: int) -> str:
    """The one line of a run the target stopped part-way: what was sent stays in the ledger."""
    line = f"{to} stopped answering after {sent} of {total} replay(s): {exc.words}"
    if exc.delivered:
        line += (
            f"; {item.shown} may have reached it: a rerun holds it back until a parity report "
            "shows it did not"
        )
    if not sent:
        return f"{line}; nothing was sent (fix: rerun when it answers)"
    return f"{line}; the {sent} sent are in the ledger (fix: rerun when it answers: it skips them)"
