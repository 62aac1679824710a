"""The per-key tally: perfect keys are only counted, every other key is kept for the detail."""

from __future__ import annotations

import itertools
import random
from collections import Counter
from collections.abc import Iterator
from typing import Any

import duckdb
import pytest

from hookshift.verify import tally
from hookshift.verify.tally import (
    APP_ACCEPTED,
    APP_BAD,
    APP_NOT_MIRRORED,
    APP_REJECTED,
    NO_TIME,
    QUEUE,
    QUEUE_BAD,
    QUEUE_REPLAY,
)

T0 = 1_795_852_500_000
BODY, OTHER = 11, 22  # body hashes


def row(s: int, hk: int, bh: int, t: int | None, c: int, mh: int = 0) -> tuple[Any, ...]:
    """A row of record_rows as the scan writes it: the side is in the class code."""
    assert (s == 1) == bool(c & (QUEUE | QUEUE_REPLAY | QUEUE_BAD))
    return (hk, bh, t, c | (NO_TIME if t is None else 0) | (mh << 32))


# key -> rows (side, key hash, body hash, time, code[, MessageId hash])
ROWS = {
    "perfect": [row(0, 1, BODY, T0, APP_ACCEPTED), row(1, 1, BODY, T0 + 40, QUEUE, 1)],
    "perfect, queue first": [
        row(0, 2, BODY, T0 + 60_000, APP_ACCEPTED),
        row(1, 2, BODY, T0 + 59_990, QUEUE, 2),
    ],
    "other body": [row(0, 3, BODY, T0, APP_ACCEPTED), row(1, 3, OTHER, T0 + 40, QUEUE, 3)],
    "app twice": [
        row(0, 4, BODY, T0, APP_ACCEPTED),
        row(0, 4, BODY, T0 + 5, APP_ACCEPTED),
        row(1, 4, BODY, T0 + 40, QUEUE, 4),
    ],
    "replayed": [row(0, 5, BODY, T0, APP_ACCEPTED), row(1, 5, BODY, T0 + 40, QUEUE_REPLAY, 5)],
    "no time": [row(0, 6, BODY, None, APP_ACCEPTED), row(1, 6, BODY, T0 + 40, QUEUE, 6)],
    "queue twice": [row(1, 7, BODY, T0, QUEUE, 7), row(1, 7, BODY, T0 + 1, QUEUE, 8)],
    "not mirrored": [row(0, 8, BODY, T0, APP_NOT_MIRRORED), row(1, 8, BODY, T0 + 40, QUEUE, 9)],
    "rejected": [row(0, 9, BODY, T0, APP_REJECTED), row(1, 9, BODY, T0 + 40, QUEUE, 10)],
    "queue only": [row(1, 10, BODY, T0, QUEUE, 11)],
}
PERFECT = {"perfect", "perfect, queue first"}


@pytest.fixture
def con() -> Iterator[Any]:
    connection = duckdb.connect()
    connection.execute(
        "CREATE TEMP TABLE record_rows (hk UBIGINT, bh UBIGINT, t BIGINT, m UBIGINT)"
    )
    rows = [r for rs in ROWS.values() for r in rs]
    rows += [(None, 0, None, APP_BAD), (None, 5, T0, QUEUE | 12 << 32)]  # no keys
    connection.executemany("INSERT INTO record_rows VALUES (?, ?, ?, ?)", rows)
    yield connection
    connection.close()


def hks(names: set[str]) -> set[int]:
    return {ROWS[n][0][0] for n in names}


# bucket bits 16: the keys' own buckets, the dirty ones grouped from dirty_rows; 0: one bucket,
# dirty, so every row is grouped
PATHS = [(16, "dirty_rows"), (0, "record_rows")]


@pytest.mark.parametrize("rows_per_partition", [1, 3, 1000])
@pytest.mark.parametrize(("bucket_bits", "grouped"), PATHS)
def test_only_one_accepted_record_and_one_message_with_the_same_bytes_is_perfect(
    con: Any, rows_per_partition: int, bucket_bits: int, grouped: str
) -> None:
    bulk = tally.tally(con, rows_per_partition, bucket_bits)
    others = {int(r[0]) for r in con.execute("SELECT hk FROM unsettled_keys").fetchall()}
    assert bulk.rows == grouped
    assert bulk.keys == len(PERFECT)
    assert others == hks(set(ROWS) - PERFECT)
    assert bulk.lags == Counter({40: 1, -10: 1})  # SentTimestamp - nginx time, per key


# what a key can be, as rows (side, body hash, time offset, code); None: the time is missing
KINDS: dict[str, list[tuple[int, int, int | None, int]]] = {
    "perfect": [(0, BODY, 0, APP_ACCEPTED), (1, BODY, 40, QUEUE)],
    "other body": [(0, BODY, 0, APP_ACCEPTED), (1, OTHER, 40, QUEUE)],
    "twice on both sides": [
        (s, BODY, t, c) for s, c in ((0, APP_ACCEPTED), (1, QUEUE)) for t in (0, 9)
    ],
    "app twice": [(0, BODY, 0, APP_ACCEPTED), (0, BODY, 5, APP_ACCEPTED), (1, BODY, 40, QUEUE)],
    "queue twice": [(0, BODY, 0, APP_ACCEPTED), (1, BODY, 40, QUEUE), (1, BODY, 41, QUEUE)],
    # two of the three messages cancel in the bit_xor: only the count tells
    "queue thrice": [(0, BODY, 0, APP_ACCEPTED), *[(1, BODY, 40 + i, QUEUE) for i in range(3)]],
    "replayed": [(0, BODY, 0, APP_ACCEPTED), (1, BODY, 40, QUEUE_REPLAY)],
    "no time": [(0, BODY, None, APP_ACCEPTED), (1, BODY, 40, QUEUE)],
    "rejected": [(0, BODY, 0, APP_REJECTED), (1, BODY, 40, QUEUE)],
    "queue only": [(1, BODY, 40, QUEUE)],
    "app only": [(0, BODY, 0, APP_ACCEPTED)],
    # the app only rejected it and the mirror's copy was lost (missing_in_queue)
    "rejected only": [(0, BODY, 0, APP_REJECTED)],
    "rejected, then accepted": [(0, BODY, 0, APP_REJECTED), (0, BODY, 9, APP_ACCEPTED)],
}


def many_keys(seed: int, anomalies: float, kinds: list[str] | None = None) -> list[tuple[Any, ...]]:
    """Keys with random hashes, each of a random kind (perfect or one of `kinds`) and lag."""
    rng = random.Random(seed)
    others = kinds if kinds is not None else list(KINDS)[1:]
    rows = []
    for _ in range(3000):
        hk = rng.getrandbits(64)
        kind = "perfect" if rng.random() > anomalies else rng.choice(others)
        lag = rng.randint(-50, 5000)
        for side, bh, t, code in KINDS[kind]:
            time = None if t is None else T0 + t + (lag if side else 0)
            rows.append(row(side, hk, bh, time, code, rng.getrandbits(16)))
    return rows


def by_hand(rows: list[tuple[Any, ...]]) -> tuple[int, Counter[int], set[int]]:
    """Perfect keys, their lags and the other keys, key by key."""
    keys: dict[int, list[tuple[Any, ...]]] = {}
    for r in rows:
        keys.setdefault(r[0], []).append(r)
    lags: Counter[int] = Counter()
    others = set()
    for hk, rs in keys.items():
        codes = sorted(r[3] & 255 for r in rs)
        if codes == [APP_ACCEPTED, QUEUE] and rs[0][1] == rs[1][1]:
            app, queue = sorted(rs, key=lambda r: r[3] & 255)
            lags[queue[2] - app[2]] += 1
        else:
            others.add(hk)
    return sum(lags.values()), lags, others


def table_r(rows: list[tuple[Any, ...]]) -> Any:
    con = duckdb.connect()
    con.execute("CREATE TEMP TABLE record_rows (hk UBIGINT, bh UBIGINT, t BIGINT, m UBIGINT)")
    columns = [list(c) for c in zip(*rows, strict=True)]
    con.execute(
        "INSERT INTO record_rows SELECT unnest($1::UBIGINT[]), unnest($2::UBIGINT[]), "
        "unnest($3::BIGINT[]), unnest($4::UBIGINT[])",
        columns,
    )
    return con


@pytest.mark.parametrize("rows_per_partition", [1000, 2_500_000])
@pytest.mark.parametrize(
    ("anomalies", "bucket_bits", "both_twice", "grouped"),
    [
        (0.1, 16, False, "dirty_rows"),  # 3,000 keys in 65,536 buckets: a tenth of them dirty
        (0.01, 8, False, "dirty_rows"),  # about 12 keys a bucket: a few dirty, with perfect keys
        (0.1, 6, False, "record_rows"),  # 47 keys a bucket: nearly every bucket dirty
        (
            0.1,
            16,
            True,
            "dirty_rows",
        ),  # keys twice on both sides: their buckets found by pair counts
    ],
)
def test_on_many_keys_the_tally_gives_what_a_key_by_key_count_gives(
    rows_per_partition: int,
    anomalies: float,
    bucket_bits: int,
    both_twice: bool,
    grouped: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the join in as many passes as the grouping (1 for 2,500,000 rows a partition, else 4)
    monkeypatch.setattr(tally, "JOIN_ROWS_PER_PASS", rows_per_partition)
    kinds = [k for k in list(KINDS)[1:] if both_twice or k != "twice on both sides"]
    rows = many_keys(7, anomalies, kinds)
    con = table_r(rows)
    bulk = tally.tally(con, rows_per_partition, bucket_bits)
    others = {int(r[0]) for r in con.execute("SELECT hk FROM unsettled_keys").fetchall()}
    assert bulk.rows == grouped
    assert (bulk.keys, bulk.lags, others) == by_hand(rows)
    con.close()


def perfect_keys_and(kind: str, n: int = 40) -> list[tuple[Any, ...]]:
    """n perfect keys and one key of `kind`, in one bucket of the sketch (bucket bits 0)."""
    rows = []
    for hk, name in [(k, "perfect") for k in range(1, n + 1)] + [(n + 1, kind)]:
        for side, bh, t, code in KINDS[name]:
            time = None if t is None else T0 + hk + t
            rows.append(row(side, hk, bh + hk, time, code, hk))
    return rows


@pytest.mark.parametrize("kind", sorted(set(KINDS) - {"perfect", "twice on both sides"}))
def test_the_sketch_finds_a_bucket_dirty_whatever_the_other_key_is(kind: str) -> None:
    con = table_r(perfect_keys_and(kind))
    assert tally.sketch(con, 0) == [0]
    clean = table_r(perfect_keys_and("perfect"))
    assert tally.sketch(clean, 0) == []
    assert clean.execute("SELECT na, clean FROM bucket_sketch").fetchall() == [(41, True)]


def test_one_key_twice_on_both_sides_passes_the_sketch_but_not_the_pair_count() -> None:
    rows = perfect_keys_and("twice on both sides")
    con = table_r(rows)
    assert tally.sketch(con, 0) == []  # as many of each, the same bodies
    assert con.execute("SELECT na FROM bucket_sketch").fetchall() == [(42,)]
    assert (
        sum(tally.pair_lags(con, "record_rows")[0].values()) == 44
    )  # 40 pairs, and 2 x 2 for the key
    bulk = tally.tally(con, bucket_bits=0)
    assert bulk.rows == "record_rows"  # its bucket is all the buckets: every key was grouped
    others = {int(r[0]) for r in con.execute("SELECT hk FROM unsettled_keys").fetchall()}
    assert (bulk.keys, bulk.lags, others) == by_hand(rows)
    # with 4 buckets, only the key's own bucket (41 & 3 = 1) is grouped
    bulk = tally.tally(con, bucket_bits=2)
    assert bulk.rows == "dirty_rows"
    assert con.execute("SELECT DISTINCT hk & 3 FROM dirty_rows").fetchall() == [(1,)]
    others = {int(r[0]) for r in con.execute("SELECT hk FROM unsettled_keys").fetchall()}
    assert (bulk.keys, bulk.lags, others) == by_hand(rows)


def test_the_tally_passes_over_the_rows_once_per_partition_but_never_too_often() -> None:
    assert tally.partitions(1_000, 2_500_000) == 1
    assert tally.partitions(20_000_000, 2_500_000) == 8
    assert tally.partitions(20_000_099, 2_500_000) == 8  # a power of two: a mask of the hash
    assert tally.partitions(12_000_000, 2_500_000) == 4
    assert tally.partitions(tally.PARTITIONS_MAX * 2_500_000, 2_500_000) == tally.PARTITIONS_MAX
    # past that, r no longer fits in memory: one pass, DuckDB's aggregate spills by itself
    assert tally.partitions(200_000_000, 2_500_000) == 1


@pytest.mark.parametrize(("bucket_bits", "grouped"), PATHS)
def test_the_detail_counts_each_side_of_the_other_keys(
    con: Any, bucket_bits: int, grouped: str
) -> None:
    bulk = tally.tally(con, bucket_bits=bucket_bits)
    assert bulk.rows == grouped
    tally.create_detail(con, bulk.rows)
    detail = {
        int(r[0]): r[1:]
        for r in con.execute(
            "SELECT hk, an, anm, arej, qn, qrep, qd, same FROM key_detail"
        ).fetchall()
    }
    times = {int(r[0]): r[1:] for r in con.execute("SELECT hk, ta, tr FROM key_detail").fetchall()}
    assert detail[3] == (1, 0, 0, 1, 0, 1, False)  # other body
    assert detail[4] == (2, 0, 0, 1, 0, 1, True)  # app twice
    assert detail[5] == (1, 0, 0, 1, 1, 1, True)  # replayed
    assert detail[7] == (0, 0, 0, 2, 0, 2, False)  # queue twice: two messages
    assert detail[8][:3] == (0, 1, 0) and detail[9][:3] == (0, 0, 1)
    # the first accepted record's time, and the first rejected one's (a key the app only
    # rejected is judged by it)
    assert times[3] == (T0, None) and times[9] == (None, T0)


def test_unkeyed_and_malformed_records_are_counted_per_side(con: Any) -> None:
    assert tally.null_counts(con) == {
        "malformed_app": 1,
        "malformed_queue": 0,
        "unkeyed_app": 0,
        "unkeyed_queue": 1,
        "unkeyed_app_unlogged": 0,
        "unkeyed_accepted": 0,
        "by_request_id_app": 0,
        "by_request_id_queue": 0,
    }


@pytest.mark.parametrize(("bucket_bits", "grouped"), PATHS)
def test_spread_counts_records_per_minute_but_leaves_the_other_keys_to_the_detail(
    con: Any, bucket_bits: int, grouped: str
) -> None:
    bulk = tally.tally(con, bucket_bits=bucket_bits)
    assert bulk.rows == grouped
    seen = tally.spread(con, bulk.rows)
    assert seen.minutes[(T0, "app")] == 1  # the perfect key; "perfect, queue first" is later
    assert seen.minutes[(T0, "queue")] == 2  # both perfect keys' messages
    assert seen.minutes[(T0 + 60_000, "app")] == 1
    assert seen.oldest == T0 and seen.newest == T0 + 60_000


def test_two_rows_of_any_other_codes_never_look_perfect(con: Any) -> None:
    codes = [APP_ACCEPTED, APP_NOT_MIRRORED, APP_REJECTED, QUEUE, QUEUE_REPLAY]
    codes += [c | NO_TIME for c in codes] + [APP_BAD, QUEUE_BAD]
    pairs = list(itertools.product(codes, repeat=2))
    looks_perfect = {
        (a, b)
        for a, b in pairs
        if con.execute(
            f"SELECT {tally.PERFECT} FROM (SELECT 2 AS n, bit_xor({tally.ROW_MARK}) AS x "
            "FROM (SELECT 7::UBIGINT AS bh, unnest([$1::UBIGINT, $2::UBIGINT]) AS m))",
            [a, b],
        ).fetchone()[0]
    }
    assert looks_perfect == {(APP_ACCEPTED, QUEUE), (QUEUE, APP_ACCEPTED)}


def test_the_spread_reads_each_class_code_as_the_sql_rules_say(con: Any) -> None:
    """spread() groups by class code and reads the codes in Python (cheaper than evaluating
    COUNTED and SEEN on every row); watch evaluates SEEN in SQL: they must agree."""
    for code in (APP_ACCEPTED, APP_NOT_MIRRORED, APP_REJECTED, QUEUE, QUEUE_REPLAY):
        counted, seen, queue = con.execute(
            f"SELECT {tally.COUNTED}, {tally.SEEN}, {tally.IS_QUEUE}"
            " FROM (SELECT $1::UBIGINT AS m)",
            [code],
        ).fetchone()
        side = ("queue" if queue else "app") if counted else None
        assert tally.spread_code(code) == (side, seen), code
    # a rejected record's time counts for the newest and the oldest, not in the minutes
    assert tally.spread_code(APP_REJECTED) == (None, True)
    assert tally.spread_code(APP_NOT_MIRRORED) == (None, False)


def test_a_rejected_record_can_be_the_newest_and_the_oldest(con: Any) -> None:
    con.execute(
        "INSERT INTO record_rows VALUES (99, 1, ?, ?), (98, 1, ?, ?), (97, 1, ?, ?)",
        [T0 + 600_000, APP_REJECTED, T0 - 600_000, APP_REJECTED, T0 + 900_000, APP_NOT_MIRRORED],
    )
    tally.tally(con)
    seen = tally.spread(con)
    assert (seen.oldest, seen.newest) == (T0 - 600_000, T0 + 600_000)
    assert seen.minutes[(T0 + 600_000, "app")] == 0 and (T0 - 600_000, "app") not in seen.minutes
