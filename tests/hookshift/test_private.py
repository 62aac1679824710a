"""What holds callbacks is written only into the owner's own files and directories: a symlink
planted where hookshift writes is refused, not followed (root would chmod, truncate or
overwrite its target), and a directory another user may write is refused before anything is
written in it."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from hookshift.errors import InputError
from hookshift.private import connect_private, make_dirs, open_private, owner_only, write_private
from hookshift.verify.archive import Archive

PASSWD = "root:x:0:0:root:/root:/bin/bash\n"


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """A file another user points a link at (a copy of /etc/passwd, 0644)."""
    path = tmp_path / "passwd"
    path.write_text(PASSWD)
    path.chmod(0o644)
    return path


def _untouched(victim: Path) -> bool:
    return victim.read_text() == PASSWD and stat.S_IMODE(victim.stat().st_mode) == 0o644


@pytest.mark.parametrize(
    "write",
    [
        lambda p: owner_only(p),
        lambda p: write_private(p, "{}\n"),
        lambda p: open_private(p).close(),
        lambda p: connect_private(p).close(),
    ],
    ids=["owner_only", "write_private", "open_private", "connect_private"],
)
def test_a_link_where_a_private_file_goes_is_refused_in_one_line(
    tmp_path: Path, victim: Path, write: Callable[[Path], None]
) -> None:
    link = tmp_path / "state" / "watch.sqlite"
    link.parent.mkdir(mode=0o700)
    link.symlink_to(victim)
    with pytest.raises(InputError) as refused:
        write(link)
    assert str(refused.value).startswith(f"{link}: is a symlink, not a file hookshift wrote")
    assert _untouched(victim) and link.is_symlink()


def test_a_fifo_where_a_private_file_goes_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "state.json"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match="not a regular file"):
        owner_only(fifo)


def test_a_directory_anyone_may_write_is_refused_before_anything_is_written(
    tmp_path: Path,
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(InputError, match=r"may be written by other users \(mode 0777\)"):
        make_dirs(shared)
    with pytest.raises(InputError, match="may be written by other users"):
        make_dirs(shared / "watch")  # a directory made inside one: swapped at will
    assert list(shared.iterdir()) == [shared / "watch"]  # made, then refused: nothing in it
    sticky = tmp_path / "sticky"
    sticky.mkdir()
    sticky.chmod(0o1777)
    make_dirs(sticky / "watch")  # as under /tmp: others cannot rename or remove ours
    assert stat.S_IMODE((sticky / "watch").stat().st_mode) == 0o700


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a directory to another user needs root")
def test_another_user_s_directory_is_refused(tmp_path: Path) -> None:
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o755)
    os.chown(theirs, 65534, 65534)
    with pytest.raises(InputError, match=r"belongs to another user \(uid 65534\)"):
        make_dirs(theirs)


def test_an_archive_with_a_planted_segment_link_is_refused_and_its_target_untouched(
    tmp_path: Path, victim: Path
) -> None:
    """`verify pull` repairs a segment's torn last line (truncates it) and makes it 0600:
    through a link, that would reach any file."""
    archive = tmp_path / "archive"
    archive.mkdir(mode=0o700)
    (archive / "seg-0.jsonl").symlink_to(victim)
    with pytest.raises(InputError, match="is a symlink, not a file hookshift wrote"):
        Archive(archive).open()
    assert _untouched(victim)
