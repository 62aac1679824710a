"""The state file is an append-only journal, written atomically and read back exactly."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from cutover import journal
from hookshift.errors import InputError, OperationError


def _init(path: Path) -> journal.Journal:
    first = journal.next_entry(None, action="init", to_stage="baseline", note="start")
    return journal.create(path, {"path": "/callback"}, first)


def test_init_writes_a_header_and_one_entry_that_read_back(tmp_path: Path) -> None:
    state = tmp_path / "cutover.jsonl"
    j = _init(state)
    assert j.stage == "baseline"
    assert j.settings == {"path": "/callback"}
    lines = state.read_text(encoding="utf-8").splitlines()
    assert json.loads(lines[0])["format"] == journal.FORMAT
    assert json.loads(lines[1])["to"] == "baseline"
    assert journal.read(state) == j


def test_append_keeps_the_old_bytes_as_an_exact_prefix(tmp_path: Path) -> None:
    state = tmp_path / "cutover.jsonl"
    j = _init(state)
    before = state.read_bytes()
    change = journal.FileChange("/etc/nginx/nginx.conf", "a" * 64, "b" * 64)
    entry = journal.next_entry(
        j,
        action="advance",
        to_stage="mirror-stage",
        gates=[{"gate": "doctor", "passed": True, "why": "clean"}],
        evidence={"doctor": {"errors": [], "warnings": 0}},
        files=[change],
    )
    j2 = journal.append(j, entry)
    assert state.read_bytes().startswith(before)
    assert j2.stage == "mirror-stage"
    assert j2.last.from_stage == "baseline"
    assert j2.last.files == (change,)
    assert j2.last.gates[0]["gate"] == "doctor"
    assert j2.entered("baseline") == j.last


def test_append_refuses_when_the_file_changed_under_it(tmp_path: Path) -> None:
    state = tmp_path / "cutover.jsonl"
    j = _init(state)
    journal.append(j, journal.next_entry(j, action="advance", to_stage="mirror-stage"))
    with pytest.raises(OperationError, match="changed since it was read"):
        journal.append(j, journal.next_entry(j, action="advance", to_stage="mirror-stage"))


def test_init_refuses_to_overwrite_an_existing_state_file(tmp_path: Path) -> None:
    state = tmp_path / "cutover.jsonl"
    _init(state)
    with pytest.raises(InputError, match="already exists"):
        _init(state)


def test_no_temp_file_is_left_behind(tmp_path: Path) -> None:
    state = tmp_path / "cutover.jsonl"
    _init(state)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cutover.jsonl"]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "file is empty"),
        (b"\xff\xfe garbage\n", "not UTF-8"),
        (b'{"hello": "world"}\n', "header"),
        (b"server { listen 80; }\n", "invalid JSON"),
        (b'{"format": "hookshift-cutover-journal", "version": 99}\n', "version"),
        (b'{"format": "hookshift-cutover-journal", "version": 1}\n', "no entries"),
        (b'{"format": "hookshift-cutover-journal", "version": 1}\n{"seq": 1', "incomplete"),
        (b'{"format": "hookshift-cutover-journal", "version": 1}\n{"seq": 1}\n', "field"),
    ],
)
def test_a_corrupt_or_foreign_file_is_one_line_naming_file_and_line(
    tmp_path: Path, content: bytes, expected: str
) -> None:
    state = tmp_path / "state.jsonl"
    state.write_bytes(content)
    with pytest.raises(InputError) as info:
        journal.read(state)
    line = info.value.line()
    assert "\n" not in line
    assert str(state) in line
    assert expected in line


def test_entries_out_of_sequence_are_rejected(tmp_path: Path) -> None:
    state = tmp_path / "cutover.jsonl"
    _init(state)
    lines = state.read_text(encoding="utf-8").splitlines()
    entry = json.loads(lines[1])
    entry["seq"] = 3
    state.write_text(lines[0] + "\n" + json.dumps(entry) + "\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"cutover.jsonl:2: .*seq 3, expected 1"):
        journal.read(state)


def test_snapshots_are_content_addressed_and_verified(tmp_path: Path) -> None:
    state = tmp_path / "cutover.jsonl"
    digest = journal.store_snapshot(state, b"server {}\r\n")
    assert journal.load_snapshot(state, digest) == b"server {}\r\n"
    (journal.snapshot_dir(state) / digest).write_bytes(b"tampered")
    assert journal.load_snapshot(state, digest) is None
    assert journal.load_snapshot(state, "0" * 64) is None


def test_a_crash_before_the_rename_leaves_the_old_journal_and_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = tmp_path / "cutover.jsonl"
    j = _init(state)
    before = state.read_bytes()

    def crash(src: str, dst: str) -> None:
        raise OSError("power lost")

    monkeypatch.setattr(os, "replace", crash)  # hookshift.durable renames with os.replace
    with pytest.raises(OSError, match="power lost"):
        journal.append(j, journal.next_entry(j, action="advance", to_stage="mirror-stage"))
    assert state.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cutover.jsonl"]
