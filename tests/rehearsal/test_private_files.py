"""Every file of the rehearsal that holds callbacks (phone numbers, message text) is its owner's
only: files 0600, the run directory 0700, whatever the umask, an older, more open file included.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from hookshift.procs import free_port
from hookshift.rehearsal.app import Ledger, read_ledger
from hookshift.rehearsal.cli import _new_run_dir
from hookshift.rehearsal.load import make_callbacks, send_callbacks


@pytest.fixture(autouse=True)
def _open_umask() -> Iterator[None]:
    """The umask most hosts have: without care, files come out 0644 and directories 0755."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_run_directory_is_made_for_its_owner_only(tmp_path: Path) -> None:
    run_dir = _new_run_dir(tmp_path / "runs")
    assert mode(run_dir) == 0o700
    assert mode(tmp_path / "runs") == 0o700  # made here, so made private too


def test_the_app_s_ledger_is_its_owner_s_only_also_when_an_older_one_was_open(
    tmp_path: Path,
) -> None:
    fresh = Ledger(tmp_path / "new" / "app-ledger.jsonl", fsync=False)
    fresh.append({"body": '{"PHONE":"01000007919"}'})
    fresh.close()
    assert mode(fresh.path) == 0o600
    older = tmp_path / "old-ledger.jsonl"
    older.write_text('{"body":"kept"}\n', encoding="utf-8")
    older.chmod(0o644)
    again = Ledger(older, fsync=False)
    again.append({"body": "added"})
    again.close()
    assert mode(older) == 0o600
    assert [r["body"] for r in read_ledger(older)] == ["kept", "added"]


def test_what_the_load_driver_sent_is_recorded_for_its_owner_only(tmp_path: Path) -> None:
    record = tmp_path / "sent.jsonl"
    nobody = f"http://127.0.0.1:{free_port()}/callback"  # refused at once: no server
    results = send_callbacks(nobody, make_callbacks(2, run_id="private"), rate=500, record=record)
    assert all(r.error for r in results)
    assert mode(record) == 0o600
    assert len(record.read_text(encoding="utf-8").splitlines()) == 2
