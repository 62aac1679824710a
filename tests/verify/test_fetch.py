"""Fetching a few records by key hash: from their blocks when the file allows, else whole."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pytest

from hookshift.verify import fetch as F
from hookshift.verify.sources import (
    AppFields,
    app_rows_sql,
    parse_source,
    queue_rows_sql,
    resolve_files,
)
from hookshift.verify.tally import create_rows, hints, side_rows
from tests.verify.data import T0, body, message, nginx_line, rid, write_lines, write_messages

KEY = "nullif(rid, '')"
N = 3000


@dataclass
class Scanned:
    con: Any
    app: F.Side
    queue: F.Side
    tmp: Path

    def hk(self, n: int) -> int:
        return int(self.con.execute("SELECT hash($1::VARCHAR)", [rid(n)]).fetchone()[0])

    def fetch(
        self, side: F.Side, numbers: list[int], stats: F.FetchStats, per_key: int = 3
    ) -> dict[int, list[dict[str, Any]]]:
        rows, seen = hints(self.con, side.rows, [self.hk(n) for n in numbers], per_key)
        found_at = [F.Hint(int(hk), int(f), int(pos)) for hk, f, pos in rows]
        return F.fetch(
            self.con, side, found_at, seen, per_key, self.tmp, min_block=4096, stats=stats
        )


def scan(tmp: Path, app_target: str, queue_file: Path) -> Scanned:
    """What a parity run has after its scan: the views and the row table record_rows, in file
    order."""
    con = duckdb.connect()
    con.execute("SET preserve_insertion_order = true")
    spec = parse_source(f"nginx:{app_target}", "app")
    app_files = resolve_files(spec)
    con.execute(f"CREATE TEMP VIEW app_rows AS {app_rows_sql(spec, app_files, AppFields())}")
    con.execute(f"CREATE TEMP VIEW queue_rows AS {queue_rows_sql([queue_file])}")
    app_rows = create_rows(con, KEY, "true", "true", "app_rows", "queue_rows")

    def app_sql(files: list[Path]) -> str:
        return app_rows_sql(spec, files, AppFields(), rejects="rej_fetch_app")

    app_cols = ("src", "rid", "t_ms", "body", "cls")
    queue_cols = ("src", "rid", "t_ms", "body", "mid", "replay")
    app_side, queue_side = side_rows(0, app_rows), side_rows(1, app_rows)
    app = F.Side("app", app_files, app_sql, KEY, app_side, "ok", app_cols, True)
    queue = F.Side("queue", [queue_file], queue_rows_sql, KEY, queue_side, "ok", queue_cols, True)
    return Scanned(con, app, queue, tmp)


@pytest.fixture
def scanned(tmp_path: Path) -> Iterator[Scanned]:
    """N callbacks in time order; the queue file ends with a few older ones, out of order
    (a vendor retry mirrored late, like a redelivery in an archive)."""
    write_lines(tmp_path / "p.log", [nginx_line(rid(n), T0 + n, body(n)) for n in range(N)])
    messages = [message(f"m{n}", body(n), T0 + n + 40, request_id=rid(n)) for n in range(N)]
    messages += [message(f"late{n}", body(n), T0 + n + 40, request_id=rid(n)) for n in (5, 77)]
    write_messages(tmp_path / "q.jsonl", messages)
    result = scan(tmp_path, str(tmp_path / "p.log"), tmp_path / "q.jsonl")
    yield result
    result.con.close()


def test_records_are_read_from_their_blocks_only(scanned: Scanned) -> None:
    stats = F.FetchStats()
    wanted = [0, 1, 1234, 2998, N - 1]
    found = scanned.fetch(scanned.app, wanted, stats)
    assert {found[scanned.hk(n)][0]["k"]: found[scanned.hk(n)][0]["body"] for n in wanted} == {
        rid(n): body(n) for n in wanted
    }
    assert stats.files_read_whole == []
    size = scanned.app.files[0].stat().st_size
    assert 0 < stats.window_bytes < size // 4
    assert {rec["src"] for recs in found.values() for rec in recs} == {str(scanned.app.files[0])}


def test_a_record_between_anchors_of_one_run_is_handed_over_as_its_line_alone(
    scanned: Scanned,
) -> None:
    stats = F.FetchStats()
    wanted = [1234, 2000]
    found = scanned.fetch(scanned.app, wanted, stats)
    assert [found[scanned.hk(n)][0]["body"] for n in wanted] == [body(n) for n in wanted]
    assert stats.files_read_whole == []  # found where it was looked for
    lines = scanned.app.files[0].read_bytes().splitlines(keepends=True)
    assert stats.window_bytes == sum(len(lines[n]) for n in wanted)


def test_a_record_far_from_its_time_order_is_found_in_its_block(scanned: Scanned) -> None:
    stats = F.FetchStats()
    found = scanned.fetch(scanned.queue, [5, 77, 2000], stats)
    assert [r["mid"] for r in found[scanned.hk(5)]] == ["m5", "late5"]
    assert [r["mid"] for r in found[scanned.hk(77)]] == ["m77", "late77"]
    assert stats.files_read_whole == []


def test_a_record_not_in_its_block_is_found_by_reading_the_file_whole(scanned: Scanned) -> None:
    rows, seen = hints(scanned.con, scanned.app.rows, [scanned.hk(10)], 3)
    wrong_place = [F.Hint(int(hk), int(f), int(pos) + 2000) for hk, f, pos in rows]
    stats = F.FetchStats()
    found = F.fetch(
        scanned.con, scanned.app, wrong_place, seen, 3, scanned.tmp, min_block=4096, stats=stats
    )
    assert found[scanned.hk(10)][0]["body"] == body(10)
    assert stats.files_read_whole == [str(scanned.app.files[0])]


def test_gzip_files_are_read_whole_and_only_they(tmp_path: Path) -> None:
    write_lines(tmp_path / "p.log.1.gz", [nginx_line(rid(n), T0 + n, body(n)) for n in range(50)])
    write_lines(tmp_path / "p.log", [nginx_line(rid(n), T0 + n, body(n)) for n in range(50, N)])
    write_messages(tmp_path / "q.jsonl", [message("m", body(1), T0, request_id=rid(1))])
    scanned = scan(tmp_path, str(tmp_path / "p.log*"), tmp_path / "q.jsonl")
    stats = F.FetchStats()
    found = scanned.fetch(scanned.app, [3, 2500], stats)
    assert found[scanned.hk(3)][0]["body"] == body(3)
    assert found[scanned.hk(2500)][0]["body"] == body(2500)
    assert stats.files_read_whole == [str(tmp_path / "p.log.1.gz")]
    scanned.con.close()


def test_a_block_runs_from_the_last_anchor_at_or_before_a_place_to_the_next() -> None:
    anchors = F.Anchors(size=1000, positions=[10, 20, 30], offsets=[100, 200, 300])
    assert F.blocks_of(anchors, 5) == [(0, 100)]
    assert F.blocks_of(anchors, 10) == [(100, 200)]
    assert F.blocks_of(anchors, 29) == [(200, 300)]
    assert F.blocks_of(anchors, 99) == [(300, 1000)]
    assert F.blocks_of(F.Anchors(1000, [], []), 7) == [(0, 1000)]


def test_a_record_is_bounded_by_anchor_lines_of_its_own_run() -> None:
    # a 1000-byte file in four pieces of 250 bytes, parsed by two threads: one wrote rows 0-9
    # (the first piece) and 10-19 (the third), the other rows 20-29 (second) and 30-39 (fourth)
    anchors = F.Anchors(
        size=1000,
        positions=[2, 7, 12, 17, 22, 27, 32, 37],
        offsets=[50, 175, 550, 700, 300, 450, 800, 950],
    )
    assert F.blocks_of(anchors, 0) == [(0, 50)]
    assert F.blocks_of(anchors, 3) == [(50, 175)]  # anchors of one run, neighbours in the file
    # around a gap in the run: the end of one piece or the start of the next
    assert F.blocks_of(anchors, 9) == [(175, 300), (450, 550)]
    assert F.blocks_of(anchors, 10) == [(175, 300), (450, 550)]
    # where the first run ends: its last piece's tail or the second run's first piece's head
    assert F.blocks_of(anchors, 19) == [(175, 300), (700, 800)]
    assert F.blocks_of(anchors, 20) == [(175, 300), (700, 800)]
    assert F.blocks_of(anchors, 39) == [(950, 1000)]


def test_a_record_is_a_known_line_when_its_anchors_are_neighbours_in_the_file_too() -> None:
    anchors = F.Anchors(  # the two runs above
        size=1000,
        positions=[2, 7, 12, 17, 22, 27, 32, 37],
        offsets=[50, 175, 550, 700, 300, 450, 800, 950],
    )
    assert F.exact_span(anchors, 3) == (50, 175, 1, 5)  # rows 2..6 are the lines from 50
    assert F.exact_span(anchors, 2) == (50, 175, 0, 5)  # the anchor line itself
    assert F.exact_span(anchors, 24) == (300, 450, 2, 5)
    assert F.exact_span(anchors, 9) is None  # a gap between its anchors: the blocks
    assert F.exact_span(anchors, 19) is None  # the first run ends here
    assert F.exact_span(anchors, 1) is None  # before the first anchor
    assert F.exact_span(anchors, 37) is None  # after the last


def test_a_line_is_taken_only_where_the_block_is_the_lines_the_rows_say() -> None:
    block = b'{"a":1}\n{"a":22}\n{"a":333}\n'
    assert F.record_line(block, 1, 3) == (8, 17)
    assert F.record_line(block, 2, 3) == (17, 27)
    assert F.record_line(block, 1, 4) is None  # a row more than lines: a line was skipped
    assert F.record_line(b'{"a":1}\n\n{"a":2}\n', 1, 3) is None  # blank: the reader skips it
    assert F.record_line(block[:-1], 0, 2) is None  # not whole lines


def test_no_block_is_longer_than_a_parse_piece_allows() -> None:
    assert F.block_size(10**12, 1) == F.MAX_BLOCK


def test_records_are_found_in_their_blocks_when_the_rows_are_in_two_runs(tmp_path: Path) -> None:
    write_lines(tmp_path / "p.log", [nginx_line(rid(n), T0 + n, body(n)) for n in range(N)])
    write_messages(tmp_path / "q.jsonl", [message("m", body(1), T0, request_id=rid(1))])
    scanned = scan(tmp_path, str(tmp_path / "p.log"), tmp_path / "q.jsonl")
    # what two threads writing without order can leave: the file's second half first
    scanned.con.execute(f"""
        CREATE TEMP TABLE runs AS SELECT * FROM record_rows
        ORDER BY {scanned.app.rows.replace("<", ">=")}, rowid < {N // 2}, rowid""")
    scanned.con.execute("DROP TABLE record_rows")
    scanned.con.execute("ALTER TABLE runs RENAME TO record_rows")
    wanted = [0, 1, 1234, N // 2 - 1, N // 2, N // 2 + 1, 2998, N - 1]
    for n in wanted:
        rows, seen = hints(scanned.con, scanned.app.rows, [scanned.hk(n)], 1)
        stats = F.FetchStats()
        found_at = [F.Hint(int(hk), int(f), int(pos)) for hk, f, pos in rows]
        found = F.fetch(
            scanned.con,
            scanned.app,
            found_at,
            seen,
            1,
            tmp_path,
            min_block=4096,
            stats=stats,
        )
        assert found[scanned.hk(n)][0]["body"] == body(n)
        assert stats.files_read_whole == []
        assert 0 < stats.window_bytes < scanned.app.files[0].stat().st_size // 4
    scanned.con.close()


def test_overlapping_blocks_are_read_once() -> None:
    assert F.merge_ranges([(300, 400), (0, 100), (50, 150), (150, 200)]) == [(0, 200), (300, 400)]


def test_more_wanted_records_or_a_bigger_file_get_more_anchors() -> None:
    size = 10**9
    assert F.block_size(size, 1000) < F.block_size(size, 10)
    assert F.block_size(size, 10) < F.block_size(10 * size, 10) <= 10 * F.block_size(size, 10)
    assert F.block_size(10_000, 1000) == F.MIN_BLOCK
