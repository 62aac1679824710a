"""Durable writes are whole or absent; a second lock holder is refused at once."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hookshift.durable import exclusive_lock, write_atomic
from hookshift.errors import OperationError


def test_write_atomic_replaces_the_whole_file_and_keeps_its_mode(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    target.write_text("old")
    target.chmod(0o640)
    write_atomic(target, "새 내용 & more")
    assert target.read_text(encoding="utf-8") == "새 내용 & more"
    assert target.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


def test_write_atomic_leaves_the_old_file_when_the_write_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "journal.jsonl"
    target.write_bytes(b"old\n")

    def failing_replace(src: str, dst: str) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk gone"):
        write_atomic(target, b"new\n")
    assert target.read_bytes() == b"old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["journal.jsonl"]


def test_write_atomic_creates_missing_directories(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "report.html"
    write_atomic(target, b"<html></html>")
    assert target.read_bytes() == b"<html></html>"


def test_a_second_lock_holder_is_refused_with_the_given_message(tmp_path: Path) -> None:
    lock = tmp_path / "x.lock"
    with (
        exclusive_lock(lock, "busy: try later"),
        pytest.raises(OperationError, match="busy: try later"),
        exclusive_lock(lock, "busy: try later"),
    ):
        pass
    with exclusive_lock(lock, "busy"):  # released after the first holder leaves
        pass
