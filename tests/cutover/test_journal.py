"""The state file is an append-only journal, written atomically and read back exactly."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from hookshift.cutover import journal
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


def _three(state: Path) -> None:
    j = _init(state)
    j = journal.append(j, journal.next_entry(j, action="advance", to_stage="mirror-stage"))
    journal.append(j, journal.next_entry(j, action="rollback", to_stage="baseline"))


@pytest.mark.parametrize("line", [2, 3, 4])
def test_an_entry_edited_after_it_was_written_is_named_with_its_line(
    tmp_path: Path, line: int
) -> None:
    state = tmp_path / "cutover.jsonl"
    _three(state)
    lines = state.read_text(encoding="utf-8").splitlines(keepends=True)
    entry = json.loads(lines[line - 1])
    entry["to"] = "vendor-switched"
    lines[line - 1] = json.dumps(entry, ensure_ascii=False) + "\n"
    state.write_text("".join(lines), encoding="utf-8")
    with pytest.raises(InputError) as info:
        journal.read(state)
    text = info.value.line()
    if line == 2:  # the init entry's chain also covers the header: the two are named
        assert text.startswith(f"{state}:1: {HEADER_OR_INIT}")
    else:
        assert text.startswith(f"{state}:{line}: this entry was changed after it was written")
    assert "fix: put the journal back as it was written" in text and "\n" not in text


HEADER_OR_INIT = (
    "the header (line 1, with the settings) or the init entry (line 2) was changed after it "
    "was written"
)


def test_an_edited_header_is_named_at_line_1(tmp_path: Path) -> None:
    """The settings are what a hand edits: the line that holds them is named first."""
    state = tmp_path / "cutover.jsonl"
    _three(state)
    lines = state.read_text(encoding="utf-8").splitlines(keepends=True)
    header = json.loads(lines[0])
    header["settings"]["path"] = "/elsewhere"
    lines[0] = json.dumps(header) + "\n"
    state.write_text("".join(lines), encoding="utf-8")
    with pytest.raises(InputError) as info:
        journal.read(state)
    assert info.value.line().startswith(f"{state}:1: {HEADER_OR_INIT}")


def test_a_journal_saved_with_crlf_line_ends_is_refused_with_the_way_back(
    tmp_path: Path,
) -> None:
    """hookshift writes LF only; CRLF means another program saved the file again. What the
    fix given does (sed) puts the bytes back, and the chain holds again."""
    state = tmp_path / "cutover.jsonl"
    _three(state)
    written = state.read_bytes()
    state.write_bytes(written.replace(b"\n", b"\r\n"))
    with pytest.raises(InputError) as info:
        journal.read(state)
    line = info.value.line()
    assert line.startswith(f"{state}:1: not a hookshift cut-over journal: CRLF line ends")
    assert f"sed -i 's/\\r$//' {state}" in line and "\n" not in line
    state.write_bytes(state.read_bytes().replace(b"\r\n", b"\n"))  # what that sed does
    assert state.read_bytes() == written
    assert len(journal.read(state).entries) == 3


def test_a_crlf_line_end_further_down_is_named_with_its_line(tmp_path: Path) -> None:
    state = tmp_path / "cutover.jsonl"
    _three(state)
    lines = state.read_bytes().split(b"\n")
    lines[2] += b"\r"
    state.write_bytes(b"\n".join(lines))
    with pytest.raises(InputError, match=r"cutover\.jsonl:3: .*CRLF line ends"):
        journal.read(state)


def test_a_journal_from_a_newer_hookshift_says_so(tmp_path: Path) -> None:
    state = tmp_path / "cutover.jsonl"
    _three(state)
    lines = state.read_text(encoding="utf-8").splitlines(keepends=True)
    header = json.loads(lines[0])
    header["version"] = journal.VERSION + 1
    lines[0] = json.dumps(header) + "\n"
    state.write_text("".join(lines), encoding="utf-8")
    with pytest.raises(InputError) as info:
        journal.read(state)
    assert info.value.line().startswith(
        f"{state}:1: the cut-over journal is version {journal.VERSION + 1}, written by a newer "
        "hookshift; this one reads versions 1 and 2 (fix: run the hookshift that wrote it"
    )


def test_a_journal_is_never_written_through_a_symlink(tmp_path: Path) -> None:
    """The link stays, the journal it leads to is not replaced behind it: refused."""
    real = tmp_path / "real.jsonl"
    j = _init(real)
    link = tmp_path / "cutover.jsonl"
    link.symlink_to(real)
    before = real.read_bytes()
    via_link = journal.read(link)
    with pytest.raises(InputError, match=r"cutover\.jsonl: the cut-over journal is a symlink"):
        journal.append(via_link, journal.next_entry(j, action="advance", to_stage="mirror-stage"))
    assert link.is_symlink() and real.read_bytes() == before
    fresh = tmp_path / "new.jsonl"
    fresh.symlink_to(tmp_path / "nowhere.jsonl")
    with pytest.raises(InputError, match="is a symlink"):
        _init(fresh)
    assert fresh.is_symlink() and not (tmp_path / "nowhere.jsonl").exists()


def test_a_recomputed_chain_value_breaks_the_next_entry(tmp_path: Path) -> None:
    state = tmp_path / "cutover.jsonl"
    _three(state)
    lines = state.read_text(encoding="utf-8").splitlines(keepends=True)
    first = json.loads(lines[1])
    header = json.loads(lines[0])
    first["note"] = "rewritten"
    first["chain"] = journal.chain_value(journal.header_value(header), first)
    lines[1] = json.dumps(first, ensure_ascii=False) + "\n"
    state.write_text("".join(lines), encoding="utf-8")
    with pytest.raises(InputError, match=r"cutover.jsonl:3: this entry was changed"):
        journal.read(state)


HEADER = {"format": journal.FORMAT, "version": 2, "created": "2026-01-01T00:00:00+00:00"}


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        (None, "settings are null, expected an object"),
        ([], "settings are [], expected an object"),
        ({"min_window": "soon"}, "setting 'min_window' is \"soon\", expected a number"),
        ({"min_events": 2.5}, "setting 'min_events' is 2.5, expected a whole number"),
        ({"resolvers": "1.1.1.1"}, "setting 'resolvers' is \"1.1.1.1\", expected a list"),
        ({"config": 5}, "setting 'config' is 5, expected text"),
    ],
)
def test_a_header_with_settings_of_the_wrong_type_is_one_line(
    tmp_path: Path, settings: object, expected: str
) -> None:
    state = tmp_path / "cutover.jsonl"
    _init(state)
    lines = state.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[0] = json.dumps({**HEADER, "settings": settings}) + "\n"
    state.write_text("".join(lines), encoding="utf-8")
    with pytest.raises(InputError) as info:
        journal.read(state)
    assert info.value.line().startswith(f"{state}:1: not a hookshift cut-over journal: {expected}")


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("to", "nowhere", "stage 'nowhere' is not one of baseline"),
        ("action", "teleport", "action 'teleport' is not one of"),
        ("gates", "all good", "gates is not a list of objects"),
        ("evidence", [], "evidence is not an object"),
        ("files", [1], "files is not a list"),
        ("seq", True, "seq is not a whole number"),
    ],
)
def test_an_entry_with_a_field_of_the_wrong_type_is_one_line(
    tmp_path: Path, field: str, value: object, expected: str
) -> None:
    state = tmp_path / "cutover.jsonl"
    _init(state)
    lines = state.read_text(encoding="utf-8").splitlines(keepends=True)
    entry = json.loads(lines[1])
    entry[field] = value
    lines[1] = json.dumps(entry) + "\n"
    state.write_text("".join(lines), encoding="utf-8")
    with pytest.raises(InputError) as info:
        journal.read(state)
    assert info.value.line().startswith(f"{state}:2: not a hookshift cut-over journal")
    assert expected in info.value.line()


def _legacy(state: Path, entries: list[dict[str, object]]) -> None:
    header = {**HEADER, "version": 1, "settings": {"path": "/callback"}}
    state.write_text(
        "".join(json.dumps(line) + "\n" for line in [header, *entries]), encoding="utf-8"
    )


LEGACY_INIT = {
    "seq": 1, "time": "2026-01-01T00:00:00+00:00", "action": "init", "from": None,
    "to": "baseline", "gates": [], "evidence": {}, "files": [], "note": "",
}  # fmt: skip


def test_a_journal_from_before_the_chain_is_read_and_appended_without_one(
    tmp_path: Path,
) -> None:
    state = tmp_path / "cutover.jsonl"
    _legacy(state, [LEGACY_INIT])
    j = journal.read(state)
    assert not j.chained and j.stage == "baseline"
    j = journal.append(j, journal.next_entry(j, action="advance", to_stage="mirror-stage"))
    assert j.stage == "mirror-stage" and j.last.chain is None
    assert "chain" not in state.read_text(encoding="utf-8")


def test_a_chain_cannot_start_mid_way(tmp_path: Path) -> None:
    state = tmp_path / "cutover.jsonl"
    second = {**LEGACY_INIT, "seq": 2, "action": "advance", "to": "mirror-stage", "chain": "0" * 64}
    _legacy(state, [LEGACY_INIT, second])
    with pytest.raises(InputError, match=r"cutover.jsonl:3: .*chain value in a version 1"):
        journal.read(state)
    state.write_text(
        json.dumps({**HEADER, "settings": {}}) + "\n" + json.dumps(LEGACY_INIT) + "\n",
        encoding="utf-8",
    )
    with pytest.raises(InputError, match=r"cutover.jsonl:2: .*entry has no chain value"):
        journal.read(state)


def test_text_with_unicode_line_separators_reads_back(tmp_path: Path) -> None:
    state = tmp_path / "cutover.jsonl"
    j = _init(state)
    note = "first\u2028second\u2029third\x85fourth"
    j = journal.append(j, journal.next_entry(j, action="adopt", to_stage="baseline", note=note))
    assert journal.read(state).last.note == note


def test_an_open_intent_does_not_move_the_stage(tmp_path: Path) -> None:
    state = tmp_path / "cutover.jsonl"
    j = _init(state)
    j = journal.append(j, journal.next_entry(j, action="begin", to_stage="mirror-stage"))
    assert j.stage == "baseline" and j.pending is not None
    assert j.entered("mirror-stage") is None
    j = journal.append(j, journal.next_entry(j, action="abort", to_stage="baseline"))
    assert j.stage == "baseline" and j.pending is None
    assert j.entered("baseline") == j.entries[0]


def test_a_fifo_as_the_state_file_is_refused_without_waiting(tmp_path: Path) -> None:
    fifo = tmp_path / "state.jsonl"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match="state file is not a regular file"):
        journal.read(fifo)


def test_bytes_that_are_not_utf8_are_reported_at_their_own_line(tmp_path: Path) -> None:
    state = tmp_path / "state.jsonl"
    _init(state)
    header, entry = state.read_bytes().split(b"\n")[:2]
    state.write_bytes(header + b"\n" + entry[:-1] + b'\xff"}\n')
    with pytest.raises(
        InputError, match=r"state\.jsonl:2: not a hookshift cut-over journal: not UTF-8"
    ):
        journal.read(state)
