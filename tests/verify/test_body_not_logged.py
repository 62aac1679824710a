"""A body nginx kept on disk is logged empty: its own class, never a false FAIL."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest

from hookshift.verify.parity import ParityOptions, run_parity
from hookshift.verify.report import FORMATS, render
from tests.verify.data import T0, body, message, nginx_line, rid, write_lines, write_messages

# the module, not `hookshift.verify.parity` the function the package exports under that name
parity_module = importlib.import_module("hookshift.verify.parity")


def _spooled(tmp_path: Path, spooled: tuple[int, ...] = (1, 2)) -> tuple[Path, Path]:
    """Four callbacks, all in the queue; the parity log has no body for `spooled`."""
    lines = []
    for n in range(4):
        line = nginx_line(rid(n), T0 + n * 1000, body(n))
        if n in spooled:  # what nginx logs when the body went to a temporary file
            line = line.replace(f'"body":{json.dumps(body(n), ensure_ascii=False)}', '"body":""')
            assert '"body":""' in line
        lines.append(line)
    app = write_lines(tmp_path / "p.log", lines)
    queue = write_messages(
        tmp_path / "q.jsonl",
        [message(f"m{n}", body(n), T0 + n * 1000 + 9, request_id=rid(n)) for n in range(4)],
    )
    return app, queue


@pytest.mark.parametrize("sql", [False, True])
def test_an_unlogged_body_is_its_own_class_and_the_run_passes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sql: bool
) -> None:
    if sql:  # the path for very many differing bodies compares them in SQL
        monkeypatch.setattr(parity_module, "PYTHON_COMPARE_MAX", 0)
    app, queue = _spooled(tmp_path)
    report = run_parity(f"nginx:{app}", f"jsonl:{queue}", ParityOptions(grace_s=0))
    c = report.counts
    assert (c["body_not_logged"], c["mismatched"], c["matched"], c["compared"]) == (2, 0, 2, 2)
    assert report.verdict == "pass", report.reason
    assert "2 with no body in the log" in report.reason
    assert any("client_body_buffer_size" in w for w in report.warnings)
    assert sorted(s["key"] for s in report.samples["body_not_logged"]) == [rid(1), rid(2)]
    for fmt in FORMATS:
        shown = render(report, fmt)
        assert "body_not_logged" in shown and "client_body_buffer_size" in shown, fmt


@pytest.mark.parametrize("key", ["sha256", "json:MSGID", "bizppurio"])
def test_with_a_key_from_the_body_an_unlogged_body_is_counted_not_failed(
    tmp_path: Path, key: str
) -> None:
    app, queue = _spooled(tmp_path, spooled=(3,))
    options = ParityOptions(grace_s=0, key=None if key == "bizppurio" else key)
    if key == "bizppurio":
        options = ParityOptions(grace_s=0, profile="bizppurio")
    report = run_parity(f"nginx:{app}", f"jsonl:{queue}", options)
    c = report.counts
    assert c["body_not_logged"] == 1 and c["missing_in_queue"] == 0 and c["mismatched"] == 0
    assert c["unkeyed_app"] == 0
    assert report.verdict == "pass", report.reason


def test_a_real_mismatch_still_fails_beside_an_unlogged_body(tmp_path: Path) -> None:
    app, _ = _spooled(tmp_path, spooled=(1,))
    queue = write_messages(
        tmp_path / "q2.jsonl",
        [
            message(f"m{n}", body(n, result="9999" if n == 2 else "7000"), T0, request_id=rid(n))
            for n in range(4)
        ],
    )
    report = run_parity(f"nginx:{app}", f"jsonl:{queue}", ParityOptions(grace_s=0))
    assert (report.counts["mismatched"], report.counts["body_not_logged"]) == (1, 1)
    assert report.verdict == "fail"
