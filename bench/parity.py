"""Parity at scale: `hookshift verify parity` against the floor (DuckDB only reading every record
and extracting its key) and a plain Python dict join, on Bizppurio-shaped data.

``python -m bench.parity`` (or ``make bench``). Size: ``HOOKSHIFT_BENCH_PARITY_N`` app records
(default 1,000,000; the target is 10,000,000 in <= 60 s and <= 1.5 GB peak RSS, <= 2x the floor).
Each measurement runs in its own process, so its peak RSS is its own.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.results import machine_line, write_section

DEFAULT_N = 1_000_000
DICT_JOIN_MAX = 1_000_000  # the Python baseline runs on at most this many records per side
ROUNDS = int(os.environ.get("HOOKSHIFT_BENCH_PARITY_ROUNDS", "5"))
# a memory limit below the row table of 10 M + 10 M records (about 640 MB): it spills to disk
SMALL_MEMORY = "512MB"


def _child(kind: str, app: str, queue: str, limit: int) -> dict[str, Any]:
    """One measurement, in this (fresh) process; imports are not timed (nor are they in the
    floor, which times its two queries only)."""
    import duckdb  # noqa: F401

    from hookshift.verify.parity import ParityOptions, run_parity

    started = time.perf_counter()
    result: dict[str, Any] = {}
    if kind in ("parity", "parity-small-memory"):
        # grace 0: the planted losses near the end count as missing, not in flight
        memory = SMALL_MEMORY if kind == "parity-small-memory" else ParityOptions().memory_limit
        options = ParityOptions(grace_s=0, memory_limit=memory)
        report = run_parity(f"nginx:{app}", f"jsonl:{queue}", options)
        result = {"counts": report.counts, "verdict": report.verdict, "phases": report.timings_s}
    elif kind == "floor":
        result = {"floor": _floor(app, queue)}
    elif kind == "dict":
        result = _dict_join(app, queue, limit)
    result["seconds"] = time.perf_counter() - started
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def _floor(app: str, queue: str) -> dict[str, float]:
    """The fastest DuckDB read of both inputs with key extraction (two readers; the faster)."""
    import duckdb

    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    con.execute("SET preserve_insertion_order = false")
    readers = {
        "read_json": (
            f"SELECT sum(hash(request_id)) FROM read_json('{app}', format='newline_delimited',"
            " columns={'request_id': 'VARCHAR'})",
            f"SELECT sum(hash(MessageAttributes.nginx_request_id.StringValue)) FROM read_json("
            f"'{queue}', format='newline_delimited', columns={{'MessageAttributes': "
            "'STRUCT(nginx_request_id STRUCT(StringValue VARCHAR))'})",
        ),
        "raw lines + json extract": (
            f"SELECT sum(hash(line->>'request_id')) FROM read_csv('{app}', "
            "columns={'line': 'VARCHAR'}, delim=E'\\x1f', quote='', escape='', header=false, "
            "auto_detect=false)",
            f"SELECT sum(hash(line->'MessageAttributes'->'nginx_request_id'->>'StringValue')) "
            f"FROM read_csv('{queue}', columns={{'line': 'VARCHAR'}}, delim=E'\\x1f', quote='',"
            " escape='', header=false, auto_detect=false)",
        ),
    }
    times = {}
    for name, (a, q) in readers.items():
        t = time.perf_counter()
        con.execute(a).fetchall()
        con.execute(q).fetchall()
        times[name] = time.perf_counter() - t
    return times


def _dict_join(app: str, queue: str, limit: int) -> dict[str, Any]:
    """The obvious Python: json.loads every line, a dict of request id -> body, look up."""
    bodies: dict[str, str] = {}
    with open(app, encoding="utf-8") as fh:
        for n, line in enumerate(fh):
            if n >= limit:
                break
            rec = json.loads(line)
            bodies[rec["request_id"]] = rec["body"]
    matched = mismatched = missing_in_app = 0
    with open(queue, encoding="utf-8") as fh:
        for n, line in enumerate(fh):
            if n >= limit:
                break
            msg = json.loads(line)
            rid = msg["MessageAttributes"]["nginx_request_id"]["StringValue"]
            body = bodies.pop(rid, None)
            if body is None:
                missing_in_app += 1
            elif body == msg["Body"]:
                matched += 1
            else:
                mismatched += 1
    return {"records": limit, "matched": matched, "missing_in_queue": len(bodies)}


def _measure(kind: str, app: Path, queue: Path, limit: int = 0) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "bench.parity", "--child", kind, str(app), str(queue), str(limit)],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    import duckdb

    from bench.parity_data import expected, generate

    n = int(os.environ.get("HOOKSHIFT_BENCH_PARITY_N", DEFAULT_N))
    with tempfile.TemporaryDirectory(prefix="hookshift-bench-parity-") as tmp:
        con = duckdb.connect()
        t = time.perf_counter()
        app, queue = generate(con, n, Path(tmp))
        generated_s = time.perf_counter() - t
        planted = expected(con, n)
        con.close()
        size_mb = (app.stat().st_size + queue.stat().st_size) / 1e6
        queue_n = sum(1 for _ in queue.open("rb"))
        print(
            f"bench.parity: {n:,} + {queue_n:,} records, {size_mb:,.0f} MB, generated in "
            f"{generated_s:.1f} s",
            file=sys.stderr,
        )
        # alternate the runs and keep each one's best: the machine is shared, and the best of
        # a few is the closest to what the code costs
        floors, parities = [], []
        for _ in range(max(ROUNDS, 1)):
            floors.append(_measure("floor", app, queue))
            parities.append(_measure("parity", app, queue))
        floor = min(floors, key=lambda r: min(r["floor"].values()))
        parity = min(parities, key=lambda r: r["seconds"])
        parity["all_seconds"] = [round(r["seconds"], 2) for r in parities]
        floor["all_seconds"] = [round(min(r["floor"].values()), 2) for r in floors]
        small = _measure("parity-small-memory", app, queue)
        limit = min(n, DICT_JOIN_MAX)
        dict_join = _measure("dict", app, queue, limit)
    # the default size is `make bench`'s section; other sizes keep their own beside it
    section = "parity" if n == DEFAULT_N else f"parity-{n}"
    runs = {"floor": floor, "parity": parity, "small": small, "dict": dict_join}
    write_section(section, _markdown(n, queue_n, size_mb, runs, planted))
    print("bench.parity: written to bench/RESULTS.md", file=sys.stderr)


def _markdown(
    n: int, queue_n: int, size_mb: float, runs: dict[str, dict[str, Any]], planted: dict[str, int]
) -> str:
    floor, parity, small, dict_join = runs["floor"], runs["parity"], runs["small"], runs["dict"]
    floor_s = min(floor["floor"].values())
    fastest = min(floor["floor"], key=floor["floor"].get)
    scaled = dict_join["seconds"] * n / dict_join["records"]
    subset = dict_join["records"] < n
    rows = [
        ("DuckDB scan + key extraction (the floor)", floor_s, floor["peak_rss_mb"], ""),
        ("`hookshift verify parity`", parity["seconds"], parity["peak_rss_mb"], ""),
        (
            f"`hookshift verify parity --memory-limit {SMALL_MEMORY}`",
            small["seconds"],
            small["peak_rss_mb"],
            "one run; planted anomalies found: "
            + ("yes" if all(small["counts"][k] == v for k, v in planted.items()) else "NO"),
        ),
        (
            "plain Python dict join" + (" (scaled from a subset)" if subset else ""),
            scaled,
            dict_join["peak_rss_mb"],
            f"measured {dict_join['seconds']:.1f} s on {dict_join['records']:,} + "
            f"{dict_join['records']:,} records, scaled linearly"
            if subset
            else "",
        ),
    ]
    lines = [
        "## Parity (`hookshift verify parity`)",
        "",
        machine_line(),
        "",
        f"{n:,} app records (hookshift parity log) against {queue_n:,} queue messages "
        f"(archive JSONL), Bizppurio-shaped bodies with Korean text and `&+%=`; "
        f"{size_mb:,.0f} MB in all. Key `request_id` (the default). Each row is one fresh "
        "process; peak RSS is that process's maximum resident set.",
        "",
        "| run | time (s) | peak RSS (MB) | vs floor | note |",
        "|---|---:|---:|---:|---|",
    ]
    for name, seconds, rss, note in rows:
        lines.append(f"| {name} | {seconds:.2f} | {rss:,.0f} | {seconds / floor_s:.2f}x | {note} |")
    ratios = [
        round(p / f, 2) for p, f in zip(parity["all_seconds"], floor["all_seconds"], strict=True)
    ]
    found = parity["counts"]
    checks = ", ".join(
        f"{k} {found[k]:,}" + ("" if found[k] == v else f" (planted {v:,}!)")
        for k, v in planted.items()
    )
    all_found = all(found[k] == v for k, v in planted.items())
    lines += [
        "",
        f"Best of {len(parity['all_seconds'])} alternating runs: parity "
        f"{parity['all_seconds']} s, floor {floor['all_seconds']} s; parity over the floor of "
        f"the same round {ratios}, median {statistics.median(ratios):.2f}x. Parity's phases "
        "(best run): "
        + ", ".join(f"{k} {v:.2f} s" for k, v in parity["phases"].items())
        + " (the rest: key choice, counts, timeline, samples).",
        f"Floor reader: {fastest} (both readers: "
        + ", ".join(f"{k} {v:.2f} s" for k, v in floor["floor"].items())
        + ").",
        f"Parity found exactly the planted anomalies: {'yes' if all_found else 'NO'} ({checks}).",
        "",
        "The floor reads only the key. Parity reads every record once (scan: key hash, body "
        "hash, time, class and place of each record into a narrow table), settles every key "
        "that is one accepted record and one message with the same bytes by counting "
        "(tally: an aggregate over buckets of the key hash and a hash join; only the buckets "
        "holding other keys are grouped key by key), and reads the records it shows or compares "
        "canonically from the files that hold them (fetch: anchor lines found in the row "
        "table say which line, or which block; no second read of the inputs). Parity's time is "
        "the `run_parity` call; the floor's is its two queries (neither counts imports).",
        "",
        "Target (issue 4): 10 M + 10 M in <= 60 s, <= 1.5 GB peak RSS, <= 2x the floor. "
        "Run with `HOOKSHIFT_BENCH_PARITY_N=10000000 python -m bench.parity` for that size; "
        "on a shared machine the figures are noisy.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "--child":
        print(json.dumps(_child(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))))
    else:
        main()
