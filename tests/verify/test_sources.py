"""Every source kind reads the same callbacks; malformed records are counted and located."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from hookshift.errors import InputError
from hookshift.verify.parity import ParityOptions, run_parity
from tests.verify.data import T0, body, message, nginx_line, rid, write_lines, write_messages


def _queue(tmp_path: Path, ns: range) -> Path:
    return write_messages(
        tmp_path / "q.jsonl", [message(f"m{n}", body(n), T0 + n * 1000 + 7) for n in ns]
    )


def test_jsonl_app_source_with_object_bodies_and_mixed_time_formats(tmp_path: Path) -> None:
    times = [str(T0 // 1000), T0 + 1000, "2026-11-28T07:55:02Z", (T0 + 3000) / 1000]
    records = [
        {"payload": json.loads(body(0)), "at": times[0]},  # body as an object, epoch seconds
        {"payload": body(1), "at": times[1]},  # body as a string, epoch ms (number)
        {"payload": body(2), "at": times[2]},  # ISO 8601
        {"payload": body(3), "at": times[3]},  # fractional epoch seconds
    ]
    app = write_lines(tmp_path / "app.jsonl", [json.dumps(r, ensure_ascii=False) for r in records])
    options = ParityOptions(
        key="json:MSGID", app_fields=ParityOptions().app_fields.__class__("payload", "id", "at")
    )
    report = run_parity(f"jsonl:{app}", f"jsonl:{_queue(tmp_path, range(4))}", options)
    assert report.counts["matched"] == 4
    assert report.counts["mismatched"] == 0  # the object body matched canonically
    assert report.lag_ms == {"p50": 7, "p99": 7, "max": 7}


def test_csv_app_source_is_an_export_of_the_apps_table(tmp_path: Path) -> None:
    path = tmp_path / "app.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "request_id", "time", "body"])
        for n in range(3):
            writer.writerow([n, rid(n), f"2026-11-28T07:55:0{n}Z", body(n)])
    report = run_parity(
        f"csv:{path}", f"jsonl:{_queue(tmp_path, range(3))}", ParityOptions(key="json:MSGID")
    )
    assert report.counts["matched"] == 3 and report.verdict == "pass"


def test_csv_without_the_body_column_is_an_input_error(tmp_path: Path) -> None:
    path = tmp_path / "app.csv"
    path.write_text("id,payload\n1,x\n", encoding="utf-8")
    with pytest.raises(InputError, match="no column 'body'") as err:
        run_parity(f"csv:{path}", f"jsonl:{_queue(tmp_path, range(1))}", ParityOptions())
    assert err.value.where == f"{path}:1"


def test_aws_cli_messages_documents_pretty_printed_and_concatenated(tmp_path: Path) -> None:
    write_lines(tmp_path / "p.log", [nginx_line(rid(n), T0 + n, body(n)) for n in range(4)])
    docs = [
        {"Messages": [message(f"m{n}", body(n), T0 + n + 5, request_id=rid(n)) for n in (0, 1)]},
        {"Messages": [message(f"m{n}", body(n), T0 + n + 5, request_id=rid(n)) for n in (2, 3)]},
    ]
    doc_file = tmp_path / "receive.json"
    doc_file.write_text("\n".join(json.dumps(d, indent=4, ensure_ascii=False) for d in docs))
    report = run_parity(f"nginx:{tmp_path / 'p.log'}", f"jsonl:{doc_file}", ParityOptions())
    assert report.counts["queue"] == 4 and report.counts["matched"] == 4


def test_archive_source_reads_every_segment(tmp_path: Path) -> None:
    write_lines(tmp_path / "p.log", [nginx_line(rid(n), T0 + n, body(n)) for n in range(4)])
    archive = tmp_path / "archive"
    for seg, ns in (("seg-a", (0, 1)), ("seg-b", (2, 3))):
        write_messages(
            archive / f"{seg}.jsonl",
            [message(f"m{n}", body(n), T0 + n, request_id=rid(n)) for n in ns],
        )
    report = run_parity(f"nginx:{tmp_path / 'p.log'}", f"archive:{archive}", ParityOptions())
    assert report.counts["matched"] == 4
    with pytest.raises(InputError, match="archive directory not found"):
        run_parity(f"nginx:{tmp_path / 'p.log'}", f"archive:{tmp_path / 'nope'}", ParityOptions())


def _with_malformed(tmp_path: Path) -> tuple[Path, Path]:
    lines = [nginx_line(rid(n), T0 + n, body(n)) for n in range(4)]
    lines.insert(2, '{"v":1,"request_id":"torn')  # line 3: cut off by a crash
    lines.insert(4, "[1, 2]")  # line 5: JSON but not a record
    app = write_lines(tmp_path / "p.log", lines)
    with app.open("ab") as fh:
        # line 7: not UTF-8 (read as the queue would get it), and no msec
        fh.write(b'{"v":1,"body":"\xff\xfe not utf-8"}\n')
    queue = [json.dumps(message(f"m{n}", body(n), T0 + n, request_id=rid(n))) for n in range(4)]
    queue.append('{"MessageId": "x"}')  # no Body
    queue.append('{"MessageId": "y", "Bo')  # torn: no MessageId either
    return app, write_lines(tmp_path / "q.jsonl", queue)


def test_malformed_records_are_counted_and_located_by_file_and_line(tmp_path: Path) -> None:
    app, queue = _with_malformed(tmp_path)
    report = run_parity(f"nginx:{app}", f"jsonl:{queue}", ParityOptions())
    assert report.counts["malformed"] == 5
    assert report.counts["malformed_queue"] == 2
    assert report.counts["matched"] == 4 and report.verdict == "pass"
    where = " ".join(report.malformed_examples)
    for expected in (f"{app}:3:", f"{app}:5:", f"{app}:7:", f"{queue}:5:", f"{queue}:6:"):
        assert expected in where


def test_strict_makes_a_malformed_record_fatal(tmp_path: Path) -> None:
    app, queue = _with_malformed(tmp_path)
    with pytest.raises(InputError, match="5 malformed record"):
        run_parity(f"nginx:{app}", f"jsonl:{queue}", ParityOptions(strict=True))


def test_jsonl_app_source_with_nested_field_names(tmp_path: Path) -> None:
    records = [
        {"req": {"id": rid(n), "at": T0 + n * 1000}, "data": {"raw": body(n)}} for n in range(3)
    ]
    records.append({"req": {"id": "x"}})  # no body: malformed
    app = write_lines(tmp_path / "app.jsonl", [json.dumps(r, ensure_ascii=False) for r in records])
    fields = ParityOptions().app_fields.__class__("data.raw", "req.id", "req.at")
    report = run_parity(
        f"jsonl:{app}",
        f"jsonl:{_queue(tmp_path, range(3))}",
        ParityOptions(key="json:MSGID", app_fields=fields),
    )
    assert report.counts["matched"] == 3 and report.counts["malformed"] == 1
    assert report.malformed_examples == [f"{app}:4: no data.raw field"]


def test_lines_that_are_not_utf8_are_found_with_their_numbers_and_repaired(
    tmp_path: Path,
) -> None:
    """Several in one block, one at the end without a newline's company, the rest left alone."""
    from hookshift.verify.sources import repair_undecodable

    euc = "배송".encode("euc-kr")
    lines = [b"ok 1", b"bad " + euc, b"ok 3", b"ok 4", euc + b" bad", b"bad \xff at end"]
    log = tmp_path / "parity.log"
    log.write_bytes(b"\n".join(lines) + b"\n")
    out = tmp_path / "out"
    out.mkdir()
    ((path, copy, numbers),) = repair_undecodable([log], out)
    assert (path, numbers) == (log, [2, 5, 6])
    assert copy.read_bytes().decode("utf-8").splitlines() == [
        line.decode("utf-8", "replace") for line in (lines[1], lines[4], lines[5])
    ]
