"""Durable writes are whole or absent; a second lock holder is refused at once."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest

from hookshift.durable import (
    ReplacedError,
    directory_lock,
    exclusive_lock,
    replace_file,
    write_atomic,
    write_exclusive,
)
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


def test_replace_file_keeps_owner_and_mode_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "nginx.conf"
    target.write_bytes(b"old\n")
    target.chmod(0o640)
    os.chown(target, 1234, 2345)
    replace_file(target, b"new\n", expected=os.lstat(target))
    st = target.stat()
    assert (target.read_bytes(), st.st_mode & 0o7777, st.st_uid, st.st_gid) == (
        b"new\n",
        0o640,
        1234,
        2345,
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nginx.conf"]


def test_replace_file_refuses_a_target_swapped_for_a_symlink_meanwhile(tmp_path: Path) -> None:
    target = tmp_path / "nginx.conf"
    target.write_bytes(b"old\n")
    outside = tmp_path / "elsewhere"
    outside.write_bytes(b"secret\n")
    outside.chmod(0o600)
    expected = os.lstat(target)

    def swap() -> None:
        target.unlink()
        target.symlink_to(outside)

    with pytest.raises(ReplacedError, match="was replaced"):
        replace_file(target, b"new\n", expected=expected, before_rename=swap)
    assert target.is_symlink() and outside.read_bytes() == b"secret\n"
    assert outside.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["elsewhere", "nginx.conf"]


def test_replace_file_refuses_a_target_written_in_place_meanwhile(tmp_path: Path) -> None:
    """Same file, new bytes (`>>`, an editor that keeps the inode): replacing would lose them."""
    target = tmp_path / "nginx.conf"
    target.write_bytes(b"old\n")
    expected = os.lstat(target)

    def append() -> None:
        with target.open("ab") as handle:
            handle.write(b"# a colleague's line\n")

    with pytest.raises(ReplacedError, match="was changed by someone else"):
        replace_file(target, b"new\n", expected=expected, before_rename=append)
    assert target.read_bytes() == b"old\n# a colleague's line\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nginx.conf"]


def test_write_exclusive_never_follows_a_planted_link(tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.write_bytes(b"secret\n")
    (tmp_path / "copy").symlink_to(outside)
    with pytest.raises(FileExistsError):
        write_exclusive(tmp_path / "copy", b"x")
    assert outside.read_bytes() == b"secret\n"


def test_a_directory_lock_refuses_a_second_holder(tmp_path: Path) -> None:
    with (
        directory_lock(tmp_path, "busy: another writer"),
        pytest.raises(OperationError, match="busy: another writer"),
        directory_lock(tmp_path, "busy: another writer"),
    ):
        pass
    assert list(tmp_path.iterdir()) == []  # nothing created in the config's directory


# an ACL as the kernel stores it (`system.posix_acl_access`): version 2, then (tag, perm, id)
# entries; user::rw- user:1234:r-- group::r-- mask::r-- other::---
_NO_ID = 0xFFFFFFFF
_ACL = struct.pack("<I", 2) + b"".join(
    struct.pack("<HHI", tag, perm, ident)
    for tag, perm, ident in (
        (0x01, 6, _NO_ID),
        (0x02, 4, 1234),
        (0x04, 4, _NO_ID),
        (0x10, 4, _NO_ID),
        (0x20, 0, _NO_ID),
    )
)


def test_replace_file_keeps_the_files_acl_and_user_attributes(tmp_path: Path) -> None:
    target = tmp_path / "site.conf"
    target.write_bytes(b"server { }\n")
    try:
        os.setxattr(target, "system.posix_acl_access", _ACL)
        os.setxattr(target, "user.deploy", b"ticket-42")
    except OSError as exc:  # a file system without extended attributes has nothing to keep
        pytest.skip(f"extended attributes not supported under {tmp_path}: {exc}")
    mode = target.stat().st_mode
    replace_file(target, b"server { listen 80; }\n", expected=os.lstat(target))
    assert target.read_bytes() == b"server { listen 80; }\n"
    assert os.getxattr(target, "system.posix_acl_access") == _ACL
    assert os.getxattr(target, "user.deploy") == b"ticket-42"
    assert target.stat().st_mode == mode  # the mask's bits, shown as the group's
