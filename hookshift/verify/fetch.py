"""Fetch a few records, bodies and all, out of inputs that may be larger than RAM.

The parity scan keeps no text (verify/tally.py): it ends knowing, for each record it must show
(samples) or compare canonically (raw bodies that differ), its key hash, its file and its row in
the row table. A second full read of both inputs to find a few dozen records would cost as much
as the scan, so this module seeks instead: it reads the line at every block boundary of a file,
finds those anchor lines in the row table (same SQL, so the same hashes), and so learns which
bytes hold each wanted record. Only those bytes are read, with the very same row SQL, so what is
found is exactly what a full read finds.

The row table is written by parallel threads without ordering (ordering it costs scan time and
memory): each thread appends the blocks of lines it
parsed, in file order, so the rows form a few runs, each in file order with gaps where another
thread's blocks were. An anchor line at every block boundary then bounds each record on both
sides in its own run (see `blocks_of`). Mostly the two anchors around a record are neighbours
in the file as well, and then the rows between them are the lines between them, one for one:
the record is a known line of that block, and only that line is handed to DuckDB (see
`exact_span`). Files that cannot be cut at line boundaries (gzip, CSV with quoted newlines) and
records not found where expected are read whole, but only the files that hold them: slower,
never wrong.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, BinaryIO

from hookshift.verify.tally import HK, F, key_table

MIN_BLOCK = 16 * 1024
MAX_ANCHORS = 32768  # anchor lines read per file, at most
# An anchor costs about as much as 10 kB of block read around a wanted record (a seek, two
# reads and its share of a DuckDB read, against DuckDB reading JSON at about 1 GB/s): so many
# anchors that their cost equals the blocks' is the cheapest, sqrt(wanted * size / 10 kB).
ANCHOR_COST_BYTES = 10_000
LITERAL_MAX = 20_000  # wanted keys as an IN list up to this many, else a table
# At most this many bytes between anchors, so that every piece of a file that one thread parses
# (DuckDB's JSON reader hands out about 16 MiB at a time) holds at least two anchor lines.
MAX_BLOCK = 4 * 1024 * 1024


@dataclass(frozen=True)
class Hint:
    """Where the scan saw one wanted record: key hash, file index, place in the row table."""

    hk: int
    f: int
    pos: int


@dataclass(frozen=True)
class Side:
    """One side's inputs and how to read them (the same SQL as the scan)."""

    name: str  # "app" | "queue"
    files: list[Path]
    rows_sql: Callable[[list[Path]], str]  # row SQL over some files (a private rejects table)
    key_sql: str  # the key over the row SQL's rid and body
    rows: str  # the side's rows of the row table record_rows (a rowid range)
    where: str  # which rows count (ok, and the time window)
    columns: tuple[str, ...]
    line_per_record: bool  # False for CSV (a quoted field may hold a newline)

    def keyed_sql(self, files: list[Path], where: str = "true") -> str:
        """The rows of `files` that count (and match `where`), with their key k and its hash."""
        return f"""
            SELECT *, {HK} AS hk FROM (
                SELECT *, {self.key_sql} AS k FROM ({self.rows_sql(files)})
                WHERE {self.where} AND ({where})
            )"""


@dataclass(frozen=True)
class Anchors:
    """Anchor lines of one file: their places in the row table and their byte offsets."""

    size: int
    positions: list[int]  # increasing
    offsets: list[int]  # same length; increasing within a run of the row table

    @cached_property
    def in_file_order(self) -> list[int]:
        return sorted(self.offsets)


@dataclass
class FetchStats:
    """How the records were found (tests pin the fast path with it)."""

    window_bytes: int = 0
    files_read_whole: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- pure planning


def block_size(size: int, wanted: int, min_block: int = MIN_BLOCK) -> int:
    """Bytes between anchors for `wanted` records in a file of `size` bytes."""
    anchors = min(MAX_ANCHORS, max(1, math.isqrt(wanted * size // ANCHOR_COST_BYTES)))
    return min(MAX_BLOCK, max(min_block, -(-size // anchors)))


def blocks_of(anchors: Anchors, pos: int) -> list[tuple[int, int]]:
    """The bytes that hold the record at row `pos`.

    Let lo be the last anchor at or before `pos` in the row table and hi the next one. The
    record is in the run of lo, after it, or in the run of hi, before it. Whichever it is, no
    anchor of its run lies between it and that anchor in the file, so it is before the next
    anchor line of the file after lo, or after the one before hi (each piece a thread parses
    holds anchors: MAX_BLOCK). When lo and hi are neighbours in the file, both are one block.
    """
    i = bisect.bisect_right(anchors.positions, pos) - 1
    lo = anchors.offsets[i] if i >= 0 else None
    hi = anchors.offsets[i + 1] if i + 1 < len(anchors.offsets) else None
    if lo is None and hi is None:
        return [(0, anchors.size)]
    in_file = anchors.in_file_order
    ranges = []
    if lo is not None:
        after = bisect.bisect_right(in_file, lo)
        ranges.append((lo, in_file[after] if after < len(in_file) else anchors.size))
    if hi is not None:
        before = bisect.bisect_left(in_file, hi) - 1
        ranges.append((in_file[before] if before >= 0 else 0, hi))
    return sorted(set(ranges))


def exact_span(anchors: Anchors, pos: int) -> tuple[int, int, int, int] | None:
    """(start, end, index, count) when the record at row `pos` should be line `index` of the
    `count` record lines in bytes [start, end): its anchors before and after in the row table
    are neighbours in the file too, so one thread wrote those lines' rows in a row. None
    otherwise (a record before the first anchor or after the last, or across a gap)."""
    i = bisect.bisect_right(anchors.positions, pos) - 1
    if i < 0 or i + 1 >= len(anchors.positions):
        return None
    start, end = anchors.offsets[i], anchors.offsets[i + 1]
    in_file = anchors.in_file_order
    j = bisect.bisect_left(in_file, start)
    if j + 1 >= len(in_file) or in_file[j + 1] != end or end - start > MAX_BLOCK:
        return None
    return start, end, pos - anchors.positions[i], anchors.positions[i + 1] - anchors.positions[i]


def record_line(data: bytes, index: int, count: int) -> tuple[int, int] | None:
    """Where line `index` is in `data`, when `data` is `count` whole lines; None when it is not
    (a blank line, which the reader skips, or a line the scan left out: the block is read)."""
    if data.count(b"\n") != count or not data.endswith(b"\n"):
        return None
    start = 0
    for _ in range(index):
        start = data.index(b"\n", start) + 1
    end = data.index(b"\n", start) + 1
    return (start, end) if data[start:end].strip() else None


def merge_ranges(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted, non-overlapping byte ranges covering the given ones."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted(ranges):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def shortfall(found: dict[int, list[dict[str, Any]]], expected: dict[int, int]) -> list[int]:
    """Wanted keys with fewer records found than needed."""
    return [hk for hk, n in expected.items() if len(found.get(hk, [])) < n]


def unique_positions(
    anchor_rows: list[tuple[Any, Any, Any]], table: dict[tuple[Any, Any, Any], list[int]]
) -> list[int | None]:
    """Each anchor's place in the row table, or None when it is not there or not unique."""
    out: list[int | None] = []
    for ident in anchor_rows:
        places = table.get(ident, [])
        out.append(places[0] if ident[0] is not None and len(places) == 1 else None)
    return out


# --------------------------------------------------------------------------- the edges


def anchor_lines(
    path: Path, wanted: int, min_block: int = MIN_BLOCK
) -> tuple[int, list[int], list[bytes]]:
    """The first whole, non-blank line at every block boundary: (file size, offsets, lines)."""
    size = path.stat().st_size
    step = block_size(size, wanted, min_block)
    offsets: list[int] = []
    lines: list[bytes] = []
    with path.open("rb") as fh:
        for boundary in range(step, size, step):
            fh.seek(boundary - 1)
            fh.readline()  # to the end of the line that holds byte boundary - 1
            start = fh.tell()
            line = fh.readline()
            while line and not line.strip():
                start = fh.tell()
                line = fh.readline()
            if not line or (offsets and start <= offsets[-1]):
                continue
            offsets.append(start)
            lines.append(line if line.endswith(b"\n") else line + b"\n")
    return size, offsets, lines


def locate_anchors(
    con: Any, side: Side, f: int, tmp: Path, wanted: int, min_block: int = MIN_BLOCK
) -> Anchors | None:
    """Anchor lines of file `f` with their places in the row table; None when unusable."""
    size, offsets, lines = anchor_lines(side.files[f], wanted, min_block)
    if not lines:
        return Anchors(size, [], [])
    probe = tmp / f"anchors-{side.name}-{f}.jsonl"
    probe.write_bytes(b"".join(lines))
    ident = f"""
        SELECT CASE WHEN ok THEN {HK} END AS hk, hash(body) AS bh, t_ms AS t
        FROM (SELECT *, {side.key_sql} AS k FROM ({side.rows_sql([probe])}))"""
    # the rows come back in the order of the probe's lines (preserve_insertion_order)
    idents = [(r[0], r[1], r[2]) for r in con.execute(ident).fetchall()]
    if len(idents) != len(lines):
        return None  # a line the reader skipped: the order cannot be trusted
    # The anchors' keys in a table, and the file's rows picked after the keys: with the file
    # test beside the key test, DuckDB hashed the side's rows instead of the keys.
    key_table(con, "anchor_keys", [i[0] for i in idents if i[0] is not None])
    table: dict[tuple[Any, Any, Any], list[int]] = {}
    for pos, hk, bh, t in con.execute(f"""
        SELECT pos, hk, bh, t FROM (
            SELECT rowid AS pos, hk, bh, t, m FROM record_rows
            WHERE {side.rows} AND hk IN (SELECT hk FROM anchor_keys)
        ) WHERE {F} = {f}
    """).fetchall():
        table.setdefault((hk, bh, t), []).append(int(pos))
    known = sorted(
        (p, o)
        for p, o in zip(unique_positions(idents, table), offsets, strict=True)
        if p is not None
    )
    return Anchors(size, [p for p, _ in known], [o for _, o in known])


def _in_list(con: Any, side: Side, hks: list[int]) -> str:
    if len(hks) <= LITERAL_MAX:
        return "(" + ", ".join(str(int(h)) for h in hks) + ")"
    table = f"want_{side.name}"
    key_table(con, table, hks)
    return f"(SELECT hk FROM {table})"


def _read(
    con: Any, side: Side, files: list[Path], hks: list[int], per_key: int
) -> dict[int, list[dict[str, Any]]]:
    """The records of `hks` in `files` (at most `per_key` each, earliest first)."""
    if not files or not hks:
        return {}
    cols = ", ".join(side.columns)
    rows = con.execute(f"""
        SELECT hk, k, {cols} FROM ({side.keyed_sql(files)})
        WHERE hk IN {_in_list(con, side, hks)}
        QUALIFY row_number() OVER (PARTITION BY hk ORDER BY t_ms NULLS LAST, src) <= {per_key}
    """).fetchall()
    names = ("hk", "k", *side.columns)
    out: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        rec = dict(zip(names, row, strict=True))
        out.setdefault(int(rec["hk"]), []).append(rec)
    for recs in out.values():
        recs.sort(key=lambda r: (r["t_ms"] is None, r["t_ms"] or 0, str(r["src"])))
    return out


def _pieces(src: BinaryIO, anchors: Anchors, pos: int) -> list[tuple[int, int]]:
    """The bytes of `src` to hand DuckDB for the record at row `pos`: its line where the
    block around it is the lines its rows say, else its blocks."""
    span = exact_span(anchors, pos)
    if span is not None:
        start, end, index, count = span
        src.seek(start)
        line = record_line(src.read(end - start), index, count)
        if line is not None:
            return [(start + line[0], start + line[1])]
    return blocks_of(anchors, pos)


def _windows(
    con: Any, side: Side, f: int, file_hints: list[Hint], tmp: Path, min_block: int
) -> Path | None:
    """A small file holding the lines or blocks of file `f` where its hinted records are, or
    None."""
    path = side.files[f]
    if not side.line_per_record or path.suffix == ".gz":
        return None
    anchors = locate_anchors(con, side, f, tmp, len(file_hints), min_block)
    if anchors is None:
        return None
    with path.open("rb") as src:
        ranges = merge_ranges([r for h in file_hints for r in _pieces(src, anchors, h.pos)])
    if sum(end - start for start, end in ranges) > anchors.size // 4:
        return None  # reading a quarter of the file in pieces: read it whole instead
    window = tmp / f"fetch-{side.name}-{f}.jsonl"
    with path.open("rb") as src, window.open("wb") as out:
        for start, end in ranges:
            src.seek(start)
            chunk = src.read(end - start)
            out.write(chunk if chunk.endswith(b"\n") else chunk + b"\n")
    return window


def fetch(
    con: Any,
    side: Side,
    hints: list[Hint],
    expected: dict[int, int],
    per_key: int,
    tmp: Path,
    *,
    min_block: int = MIN_BLOCK,
    stats: FetchStats | None = None,
) -> dict[int, list[dict[str, Any]]]:
    """The records of the hinted keys: from their blocks where the files allow, else whole
    files; `expected` says how many records of each key must be found."""
    stats = stats if stats is not None else FetchStats()
    if not hints:
        return {}
    by_file: dict[int, list[Hint]] = {}
    for hint in hints:
        by_file.setdefault(hint.f, []).append(hint)
    windows: list[Path] = []
    origin: dict[str, str] = {}
    whole: set[int] = set()
    for f, file_hints in sorted(by_file.items()):
        window = _windows(con, side, f, file_hints, tmp, min_block)
        if window is None:
            whole.add(f)
            continue
        stats.window_bytes += window.stat().st_size
        windows.append(window)
        origin[str(window)] = str(side.files[f])
    found: dict[int, list[dict[str, Any]]] = {}
    if windows:
        found = _read(con, side, windows, sorted(expected), per_key)
        for recs in found.values():
            for rec in recs:
                rec["src"] = origin.get(str(rec["src"]), rec["src"])
    missing = set(shortfall(found, expected))
    whole |= {h.f for h in hints if h.hk in missing}
    if missing and whole:
        files = [side.files[f] for f in sorted(whole)]
        stats.files_read_whole += [str(p) for p in files]
        found.update(_read(con, side, files, sorted(missing), per_key))
    return found
