"""Tally both sides per key: one narrow row per record, then a class per key.

Reading the JSON is the cost no parity run can avoid; everything after it has to be small next to
it. So the scan keeps no text: each record becomes a narrow row of table ``record_rows`` (key hash,
body hash, time, and class code, file index and MessageId hash packed in one integer). Almost every
key is then "one accepted app record, one message, the same bytes", which two cheap aggregates
decide: the count, and the bit_xor over the key's rows of the body hash xor a hash of the class
code, which is hash(accepted) xor hash(message) exactly when the two bodies are the same and the
codes are those two (any other pair of codes gives another value: checked for every pair in the
tests; different bodies give it with probability 2^-64). Those keys are only counted, with their
lag; the other keys (usually a handful) are listed in ``unsettled_keys`` and get the full per-key
detail in table ``key_detail``; their bodies are fetched afterwards (verify/fetch.py).

Grouping every row by key is the costliest step after the scan (DuckDB's hash aggregate), so
most keys are never grouped. A cheap aggregate over 65,536 buckets of the key hash (`sketch`) finds
the clean buckets: every row an accepted record or a plain message, as many of each, and the
same multiset of (key, body) pairs on both sides (a signed sum of their hashes is zero; a
bucket where they differ sums to zero with probability about 2^-62). A hash
join of accepted records with messages then gives every pair's lag, and counts the pairs: if
the clean buckets hold exactly one pair per accepted record, every key in them is one record
and one message with the same bytes (equal counts per key, and the sum of squares of the
counts equals their sum only when each is 1). Only the rows of the other buckets (table
``dirty_rows``) are grouped key by key, and their pairs are taken back out of the join's lags. When
the pair count disagrees (a key twice on both sides: the sketch's counts match), pairs counted
per bucket find its buckets, which join the dirty ones. When many buckets are dirty, every row
is grouped key by key instead: the same answers, at the full cost. The figures behind these
choices are in docs/parity-engine.md.

Keys are grouped on a 64-bit hash: a collision (about 1e-5 for ten million keys a side) pairs two
different callbacks, which then show as duplicates or mismatched, never as a silent match.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# class codes of a row (one bit each, and a bit for "no time")
APP_ACCEPTED = 1
APP_NOT_MIRRORED = 2
APP_REJECTED = 4
QUEUE = 8
QUEUE_REPLAY = 16
APP_BAD = 32
QUEUE_BAD = 64
NO_TIME = 128

# record_rows has four columns, hk, bh, t and m: m packs the class code, the file index, a bit
# for a record keyed by its request id (it lacks the key: keys.KeySpec.fallback_sql) and a 32-bit
# MessageId hash (it only tells a key's few messages apart), because every column of record_rows
# costs scan time whatever its width. These read them back.
C = "(m & 255)"
F = "((m >> 8) & 8388607)"
MH = "(m >> 32)"
FILES_MAX = 8_388_608
BY_REQUEST_ID_BIT = 1 << 31
_QUEUE_BITS = QUEUE | QUEUE_REPLAY | QUEUE_BAD
IS_APP = f"(m & {_QUEUE_BITS} = 0)"
IS_QUEUE = f"(m & {_QUEUE_BITS} <> 0)"
# the rows the timeline counts: accepted app records and messages
COUNTED = f"({C} & 7 = {APP_ACCEPTED} OR {IS_QUEUE})"
# a plain message: the mirror's copy (not a heal replay)
PLAIN_COPY = f"({C} & {_QUEUE_BITS} = {QUEUE})"
# the rows whose times make the newest and the oldest record (the window's end when nothing
# else gives one): those and the rejected app records, whose keys are judged by their time too
SEEN = f"({C} & 7 IN ({APP_ACCEPTED}, {APP_REJECTED}) OR {IS_QUEUE})"

ROW_MARK = f"xor(bh, hash({C}))"  # body hash xor a hash of the class code
# one accepted app record and one message, with the same bytes
PERFECT = f"n = 2 AND x = xor(hash({APP_ACCEPTED}::UBIGINT), hash({QUEUE}::UBIGINT))"

BUCKET_MS = 60_000
ROWS_PER_PARTITION = 2_500_000
# Each partition reads all of record_rows again: cheap while record_rows is in memory (cheaper than
# one pass over all of it), ruinous once record_rows has spilled to disk. Beyond this many
# partitions, one pass lets DuckDB's own out-of-core aggregate partition and spill instead.
PARTITIONS_MAX = 16
HK = "CASE WHEN k IS NULL THEN NULL ELSE hash(k) END"
# The sketch's buckets (tally): 65,536 groups stay in the CPU's caches, and a dirty bucket brings
# only its own keys' rows to dirty_rows. Past this share of dirty buckets, dirty_rows would be most
# of record_rows: every key is grouped instead.
BUCKET_BITS = 16
DIRTY_MAX = 0.25
JOIN_ROWS_PER_PASS = 10_000_000
# A key twice on both sides passes the sketch; the join's pairs, counted per coarse bucket
# (64 of them), show which coarse bucket holds it, and all of that bucket is grouped.
COARSE_BITS = 6


@dataclass
class Bulk:
    """What the perfect keys add up to (they have no other trace after the tally)."""

    keys: int = 0
    lags: Counter[int] = field(default_factory=Counter)  # SentTimestamp - nginx time -> keys
    # the table that holds every row of the keys in unsettled_keys: "dirty_rows" or all of
    # "record_rows"
    rows: str = "record_rows"


@dataclass(frozen=True)
class Strays:
    """A few messages sent far from the app's records (parity.on_bulk): how many, and how far
    the farthest is before the first app record and after the last (0: none on that side)."""

    count: int
    before_ms: int
    after_ms: int


@dataclass
class Spread:
    """Both sides per minute, the newest and the oldest record (keys and duplicates aside; the
    rejected app records count for the newest and the oldest only)."""

    # (start, side) -> rows; per minute unless spread() was asked for finer buckets
    minutes: Counter[tuple[int, str]] = field(default_factory=Counter)
    newest: int | None = None
    oldest: int | None = None
    # what tells a mirror's copy sent far from the rest (parity.on_bulk): the newest and the
    # oldest app record, the same of every record but the mirror's copies (the app's and heal's
    # replays, sent when heal ran), and the mirror's copies per minute (or bucket): start ->
    # [messages, oldest, newest]
    app_newest: int | None = None
    app_oldest: int | None = None
    kept_newest: int | None = None
    kept_oldest: int | None = None
    queue_spans: dict[int, list[int]] = field(default_factory=dict)
    strays: Strays | None = None  # set with the bulk's newest and oldest by parity.on_bulk


def create_rows(
    con: Any,
    key_sql: str,
    app_where: str,
    queue_where: str,
    app_view: str,
    queue_view: str,
    *,
    fallback_sql: str = "NULL::VARCHAR",
    more_app: Callable[[], str | None] | None = None,
) -> int:
    """Table record_rows: one narrow row per record of both sides (malformed ones too, with no key),
    the app's first; returns how many rows are the app's.

    A record `key_sql` finds no key in is keyed by `fallback_sql` (its request id), marked with
    BY_REQUEST_ID_BIT. `more_app`, called once the app's rows are written, may give SQL of
    more app rows (lines repaired after the scan): they go in before the queue's.

    The rows are written without preserving their order (ordering them costs scan time and
    memory): each thread's rows still follow the file,
    which is all verify/fetch.py needs to seek with a rowid. The app's rows are written first,
    so a side is a range of rowids, which DuckDB prunes by.
    """
    no_time = f"CASE WHEN t_ms IS NULL THEN {NO_TIME} ELSE 0 END"
    app_code = (
        f"CASE WHEN NOT ok THEN {APP_BAD} WHEN cls = 'a' THEN {APP_ACCEPTED} "
        f"WHEN cls = 'n' THEN {APP_NOT_MIRRORED} ELSE {APP_REJECTED} END"
    )
    queue_code = (
        f"CASE WHEN NOT ok THEN {QUEUE_BAD} WHEN replay IS NULL THEN {QUEUE} "
        f"ELSE {QUEUE_REPLAY} END"
    )

    def rows(view: str, code: str, mid: str, where: str) -> str:
        if fallback_sql == "NULL::VARCHAR":  # a key with no fallback: nothing more per row
            keyed, by_rid = f"SELECT *, {key_sql} AS k FROM {view}", "0"
        else:
            keyed = f"""
                SELECT *, coalesce(k0, kf) AS k FROM (
                    SELECT *, CASE WHEN k0 IS NULL THEN {fallback_sql} END AS kf FROM (
                        SELECT *, {key_sql} AS k0 FROM {view}))"""
            by_rid = f"CASE WHEN kf IS NULL THEN 0 ELSE {BY_REQUEST_ID_BIT} END"
        m = f"({code} | {no_time} | (f::UBIGINT << 8) | {by_rid} | ({mid} << 32))"
        return f"""
            SELECT CASE WHEN ok THEN {HK} END AS hk, hash(body) AS bh, t_ms AS t,
                {m}::UBIGINT AS m
            FROM ({keyed})
            WHERE NOT ok OR ({where})"""

    (ordered,) = con.execute("SELECT current_setting('preserve_insertion_order')").fetchone()
    con.execute("SET preserve_insertion_order = false")
    try:
        con.execute("CREATE TEMP TABLE record_rows AS " + rows(app_view, app_code, "0", app_where))
        extra = more_app() if more_app is not None else None
        if extra is not None:
            con.execute("INSERT INTO record_rows " + rows(f"({extra})", app_code, "0", app_where))
        row = con.execute("SELECT count(*) FROM record_rows").fetchone()
        mid = "coalesce(hash(mid) >> 32, 0)"
        con.execute("INSERT INTO record_rows " + rows(queue_view, queue_code, mid, queue_where))
    finally:
        con.execute(f"SET preserve_insertion_order = {bool(ordered)}")
    return int(row[0]) if row else 0


def side_rows(side: int, app_rows: int) -> str:
    """The rows of one side (0 app, 1 queue) as a rowid range."""
    return f"rowid < {app_rows}" if side == 0 else f"rowid >= {app_rows}"


def partitions(rows: int, rows_per_partition: int = ROWS_PER_PARTITION) -> int:
    """How many passes over record_rows the tally makes (see PARTITIONS_MAX): a power of two, so
    that a partition is some low bits of the key hash (a mask costs less than a modulo), and a
    partition at most twice the rows."""
    wanted = max(1, -(-rows // rows_per_partition))
    return 1 << (wanted.bit_length() - 1) if wanted <= PARTITIONS_MAX else 1


def key_partitions(con: Any, table: str, rows_per_partition: int) -> list[str]:
    """The keyed rows of `table` in `partitions`: one condition each, on low bits of the key
    hash (the passes of the grouping and of the join)."""
    row = con.execute(f"SELECT count(*) FROM {table} WHERE hk IS NOT NULL").fetchone()
    parts = partitions(int(row[0]) if row else 0, rows_per_partition)
    if parts == 1:
        return ["hk IS NOT NULL"]
    return [f"hk IS NOT NULL AND (hk & {parts - 1}) = {part}" for part in range(parts)]


def tally(
    con: Any, rows_per_partition: int = ROWS_PER_PARTITION, bucket_bits: int = BUCKET_BITS
) -> Bulk:
    """Count the perfect keys (with their lags) into a Bulk and list the others in table
    unsettled_keys.

    The clean buckets' keys are counted from the sketch and the join (module docstring); the
    rows of the other buckets go to table dirty_rows and are grouped key by key (`group_keys`).
    """
    most = DIRTY_MAX * (1 << bucket_bits)
    coarse = (1 << min(COARSE_BITS, bucket_bits)) - 1
    dirty = sketch(con, bucket_bits)
    if len(dirty) > most:
        return group_keys(con, "record_rows", rows_per_partition)
    pairs = pair_lags(con, "record_rows", coarse)
    dirty_pairs = _dirty_rows(con, dirty, bucket_bits, coarse)
    over = _overcounted(con, pairs, dirty_pairs, coarse)
    if over:
        # a key twice (or more) on both sides, which the sketch's counts cannot see: its
        # coarse bucket has more pairs than accepted records, so all of it is grouped
        dirty += [
            int(b)
            for (b,) in con.execute(
                f"SELECT b FROM bucket_sketch"
                f" WHERE clean AND b & {coarse} IN ({', '.join(map(str, over))})"
            ).fetchall()
        ]
        if len(dirty) > most:
            return group_keys(con, "record_rows", rows_per_partition)
        dirty_pairs = _dirty_rows(con, dirty, bucket_bits, coarse)
        if _overcounted(con, pairs, dirty_pairs, coarse):  # cannot happen; never guess
            return group_keys(con, "record_rows", rows_per_partition)
    bulk = group_keys(con, "dirty_rows", rows_per_partition)
    for c, lags in pairs.items():
        clean = lags - dirty_pairs.get(c, Counter())
        bulk.keys += sum(clean.values())
        bulk.lags += clean
    return bulk


def sketch(con: Any, bucket_bits: int = BUCKET_BITS) -> list[int]:
    """The buckets of the key hash that are not clean; table bucket_sketch (b, na, clean) keeps each
    bucket's accepted records and verdict.

    A bucket is clean when its rows are accepted records and plain messages (with a time and
    a body), as many of each, and the signed sum of the (key xor body) hashes, accepted records
    plus and messages minus, is zero: each key has as many of each, with the same bodies.
    """
    v = "(xor(hk, bh) >> 1)::BIGINT"
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE bucket_sketch AS
        SELECT b, na, na = nq AND na + nq = n AND s = 0 AS clean FROM (
            SELECT hk & {(1 << bucket_bits) - 1} AS b,
                count(*) FILTER ({C} = {APP_ACCEPTED} AND bh IS NOT NULL) AS na,
                count(*) FILTER ({C} = {QUEUE} AND bh IS NOT NULL) AS nq,
                count(*) AS n,
                sum(CASE WHEN {C} = {APP_ACCEPTED} THEN {v} ELSE -{v} END) AS s
            FROM record_rows WHERE hk IS NOT NULL GROUP BY b
        )
    """)
    return [
        int(b) for (b,) in con.execute("SELECT b FROM bucket_sketch WHERE NOT clean").fetchall()
    ]


def _overcounted(
    con: Any, pairs: dict[int, Counter[int]], dirty_pairs: dict[int, Counter[int]], coarse: int
) -> list[int]:
    """Coarse buckets whose clean buckets hold more pairs than accepted records."""
    records = dict(
        con.execute(f"""
            SELECT b & {coarse}, sum(na) FROM bucket_sketch
            WHERE clean AND b NOT IN (SELECT b FROM dirty_buckets) GROUP BY 1
        """).fetchall()
    )
    return [
        c
        for c in sorted(set(pairs) | set(records))
        if sum(pairs.get(c, Counter()).values()) - sum(dirty_pairs.get(c, Counter()).values())
        != int(records.get(c, 0))
    ]


def _dirty_rows(
    con: Any, dirty: list[int], bucket_bits: int, coarse: int
) -> dict[int, Counter[int]]:
    """Table dirty_rows: the rows of the `dirty` buckets (listed in dirty_buckets); and their
    pairs."""
    key_table(con, "dirty_buckets", dirty, column="b")
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE dirty_rows AS
        SELECT * FROM record_rows WHERE hk IS NOT NULL AND hk & {(1 << bucket_bits) - 1} IN (
            SELECT b FROM dirty_buckets)
    """)
    return pair_lags(con, "dirty_rows", coarse)


def pair_lags(con: Any, table: str, coarse: int = 0) -> dict[int, Counter[int]]:
    """Pairs of an accepted record and a plain message with the same key hash in `table`: per
    coarse bucket (key hash & `coarse`), their lags (SentTimestamp - nginx time) -> pairs.

    In passes over partitions of the key hash, so that the join's hash table stays small: one
    pass over the largest inputs outgrows the memory limit beside record_rows.
    """
    out: dict[int, Counter[int]] = {}
    for part in key_partitions(con, table, JOIN_ROWS_PER_PASS):
        for c, lag, n in con.execute(f"""
            SELECT a.hk & {coarse}, q.t - a.t, count(*)
            FROM (SELECT hk, t FROM {table} WHERE {C} = {APP_ACCEPTED} AND {part}) a
            JOIN (SELECT hk, t FROM {table} WHERE {C} = {QUEUE} AND {part}) q ON a.hk = q.hk
            GROUP BY ALL
        """).fetchall():
            out.setdefault(int(c), Counter())[int(lag)] += int(n)
    return out


def group_keys(con: Any, table: str, rows_per_partition: int = ROWS_PER_PARTITION) -> Bulk:
    """Every key of `table` grouped: the perfect ones counted into a Bulk, the others listed in
    table unsettled_keys.

    Per partition of the key hash: one aggregate per key, folded at once into (other key or lag)
    groups, so the output is a few hundred rows plus one per other key whatever the input size.
    Nothing per key is kept: for the largest inputs a table of them would not fit the memory limit
    beside record_rows.
    """
    bulk = Bulk(rows=table)
    others: list[int] = []
    for part in key_partitions(con, table, rows_per_partition):
        for other, lag, n in con.execute(f"""
            SELECT other, lag, count(*) FROM (
                SELECT CASE WHEN {PERFECT} THEN NULL ELSE hk END AS other,
                    CASE WHEN {PERFECT} THEN d END AS lag
                FROM (
                    SELECT hk, count(*) AS n, bit_xor({ROW_MARK}) AS x,
                        sum(CASE WHEN {IS_APP} THEN -t ELSE t END)::BIGINT AS d
                    FROM {table} WHERE {part} GROUP BY hk
                )
            ) GROUP BY ALL
        """).fetchall():
            if other is not None:
                others.append(int(other))
            else:
                bulk.keys += int(n)
                bulk.lags[int(lag)] += int(n)
    key_table(con, "unsettled_keys", others)
    return bulk


def spread(con: Any, rows: str = "record_rows", bucket_ms: int = BUCKET_MS) -> Spread:
    """Accepted app records and messages per minute, or per `bucket_ms` (of every key but those in
    unsettled_keys, which the caller replaces with their per-key view), the newest and the oldest
    (of those and of the rejected app records); `rows` holds every row of the keys in
    unsettled_keys (Bulk.rows)."""
    counted = f"hk IS NOT NULL AND {COUNTED} AND t IS NOT NULL"
    out = Spread()
    minute = f"t // {bucket_ms} * {bucket_ms}"
    # grouped by class code, read by spread_code: cheaper than COUNTED and SEEN on every row
    for start, code, n, newest, oldest in con.execute(f"""
        SELECT {minute}, {C}, count(*), max(t), min(t)
        FROM record_rows WHERE hk IS NOT NULL AND t IS NOT NULL GROUP BY ALL
    """).fetchall():
        side, seen = spread_code(int(code))
        if side is not None:
            out.minutes[(int(start), side)] += int(n)
        if seen:
            out.newest = _max(out.newest, newest)
            out.oldest = _min(out.oldest, oldest)
        if seen and side != "queue":
            out.app_newest = _max(out.app_newest, newest)
            out.app_oldest = _min(out.app_oldest, oldest)
        if int(code) & _QUEUE_BITS == QUEUE:
            add_span(out.queue_spans, int(start), int(n), int(oldest), int(newest))
        elif seen:
            out.kept_newest = _max(out.kept_newest, newest)
            out.kept_oldest = _min(out.kept_oldest, oldest)
    for start, side, n in con.execute(f"""
        SELECT {minute}, {IS_QUEUE}::INTEGER, count(*)
        FROM {rows} WHERE {counted} AND hk IN (SELECT hk FROM unsettled_keys) GROUP BY ALL
    """).fetchall():
        out.minutes[(int(start), "app" if side == 0 else "queue")] -= int(n)
    return out


def add_span(spans: dict[int, list[int]], start: int, n: int, oldest: int, newest: int) -> None:
    """Count `n` messages from `oldest` to `newest` in the bucket at `start` of `spans`."""
    span = spans.get(start)
    if span is None:
        spans[start] = [n, oldest, newest]
    else:
        span[0], span[1], span[2] = span[0] + n, min(span[1], oldest), max(span[2], newest)


def spread_code(code: int) -> tuple[str | None, bool]:
    """What a row of class code `code` is to the spread: the side whose minutes count it (None
    for none: COUNTED), and whether its time is one of the newest and the oldest record's
    (SEEN)."""
    if code & _QUEUE_BITS:
        return "queue", True
    app = code & 7
    return ("app" if app == APP_ACCEPTED else None), app in (APP_ACCEPTED, APP_REJECTED)


def create_detail(con: Any, rows: str = "record_rows") -> None:
    """Table key_detail: the full per-key detail of the keys that are not perfect, from `rows`,
    which holds every row of those keys (Bulk.rows)."""
    app, queue, c = IS_APP, IS_QUEUE, C
    con.execute(f"""
        CREATE TEMP TABLE key_detail AS
        SELECT hk,
            count(*) FILTER ({app} AND {c} & 7 = {APP_ACCEPTED})::INTEGER AS an,
            count(*) FILTER ({app} AND {c} & 7 = {APP_NOT_MIRRORED})::INTEGER AS anm,
            count(*) FILTER ({app} AND {c} & 7 = {APP_REJECTED})::INTEGER AS arej,
            min(bh) FILTER ({app} AND {c} & 7 = {APP_ACCEPTED}) AS ah,
            min(t) FILTER ({app} AND {c} & 7 = {APP_ACCEPTED}) AS ta,
            -- a key the app only rejected is judged by its first rejected record's time
            min(t) FILTER ({app} AND {c} & 7 = {APP_REJECTED}) AS tr,
            count(*) FILTER ({queue})::INTEGER AS qn,
            count(*) FILTER ({queue} AND {c} & {QUEUE_REPLAY} <> 0)::INTEGER AS qrep,
            min(bh) FILTER ({queue}) AS qh,
            min(t) FILTER ({queue}) AS tq,
            -- the first copy the mirror sent: a replay's time is when heal ran, not the mirror's
            min(t) FILTER ({queue} AND {c} & {QUEUE_REPLAY} = 0) AS tm,
            count(DISTINCT {MH}) FILTER ({queue})::INTEGER AS qd,
            coalesce(min(bh) FILTER ({app} AND {c} & 7 = {APP_ACCEPTED})
                = min(bh) FILTER ({queue}), false) AS same
        FROM {rows} WHERE hk IN (SELECT hk FROM unsettled_keys) GROUP BY hk
    """)


def null_counts(con: Any) -> dict[str, int]:
    """Malformed records and records without a key, per side: those with no key at all
    (unkeyed; the accepted ones apart: the verdict cannot vouch for them) and those keyed by
    their request id instead (by_request_id)."""
    # an accepted record with an empty body has no key when the key comes from the body:
    # nginx kept that body on disk and logged none (counted apart, as body_not_logged)
    unlogged = f"{C} & {APP_ACCEPTED} <> 0 AND bh = hash(''::VARCHAR)"
    unkeyed = f"hk IS NULL AND {IS_APP} AND {C} & {APP_BAD} = 0 AND NOT ({unlogged})"
    by_rid = f"hk IS NOT NULL AND m & {BY_REQUEST_ID_BIT} <> 0"
    row = con.execute(f"""
        SELECT count(*) FILTER ({C} & {APP_BAD} <> 0), count(*) FILTER ({C} & {QUEUE_BAD} <> 0),
            count(*) FILTER ({unkeyed}),
            count(*) FILTER (hk IS NULL AND {IS_QUEUE} AND {C} & {QUEUE_BAD} = 0),
            count(*) FILTER (hk IS NULL AND {IS_APP} AND {unlogged}),
            count(*) FILTER ({unkeyed} AND {C} & 7 = {APP_ACCEPTED}),
            count(*) FILTER ({by_rid} AND {IS_APP}),
            count(*) FILTER ({by_rid} AND {IS_QUEUE})
        FROM record_rows WHERE hk IS NULL OR m & {BY_REQUEST_ID_BIT} <> 0
    """).fetchone()
    v = [int(x or 0) for x in (row or (0,) * 8)]
    return {
        "malformed_app": v[0],
        "malformed_queue": v[1],
        "unkeyed_app": v[2],
        "unkeyed_queue": v[3],
        "unkeyed_app_unlogged": v[4],
        "unkeyed_accepted": v[5],
        "by_request_id_app": v[6],
        "by_request_id_queue": v[7],
    }


def hints(con: Any, among: str, hks: list[int], per_key: int) -> tuple[list[Any], dict[int, int]]:
    """Where the scan saw the records of `hks` among the rows `among` (one side), the earliest
    `per_key` of each: (key hash, file index, rowid) rows, and how many each key has there."""
    if not hks:
        return [], {}
    key_table(con, "wanted", hks)
    rows = con.execute(f"""
        SELECT hk, {F}, rowid FROM record_rows
        WHERE {among} AND hk IN (SELECT hk FROM wanted)
        QUALIFY row_number() OVER (PARTITION BY hk ORDER BY t NULLS LAST) <= {per_key}
    """).fetchall()
    expected: Counter[int] = Counter(int(r[0]) for r in rows)
    return rows, dict(expected)


def key_table(con: Any, name: str, hks: list[int], column: str = "hk") -> None:
    """A temp table `name` of key hashes (or buckets), for a query to pick rows of record_rows by
    (IN)."""
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT unnest($1::UBIGINT[]) AS {column}",
        [[int(h) for h in hks]],
    )


def _max(a: int | None, b: Any) -> int | None:
    if b is None:
        return a
    return int(b) if a is None else max(a, int(b))


def _min(a: int | None, b: Any) -> int | None:
    if b is None:
        return a
    return int(b) if a is None else min(a, int(b))
