"""hookshift's state for a config (its record of lines and of an unfinished change) is
trusted only where no other user could have put it: the next run writes back the files an
unfinished change names, as whoever runs it (root, usually)."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from hookshift.errors import InputError
from hookshift.mirror.apply import pending_change, recover
from hookshift.mirror.state import STATE_ENV, ConfigState, FileRecord, Saved

CONFIG = "events {}\nhttp { server { listen 8080; } }\n"


@pytest.fixture
def umask_000() -> Iterator[None]:
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def _config(tmp_path: Path) -> Path:
    (tmp_path / "etc").mkdir()
    config = tmp_path / "etc" / "nginx.conf"
    config.write_text(CONFIG)
    return config


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.usefixtures("umask_000")
def test_every_state_directory_made_is_its_owner_s_only_whatever_the_umask(
    tmp_path: Path,
) -> None:
    root = tmp_path / "home" / ".local" / "state" / "hookshift"
    state = ConfigState.of(_config(tmp_path), root)
    state.save(Saved({"x": FileRecord(("    mirror /m;  # hookshift",), 0)}, None))
    made = [d for d in (state.directory, *state.directory.parents) if d.is_relative_to(tmp_path)]
    made.remove(tmp_path)
    assert made and all(_mode(d) == 0o700 for d in made), [(d, oct(_mode(d))) for d in made]
    assert _mode(state.file) == 0o600


def _plant(state: ConfigState, victim: Path, evil: Path) -> None:
    """What another user who can write the state dir leaves: an "unfinished change" whose
    undo would write `evil`'s bytes over `victim`."""
    state.directory.mkdir(parents=True, exist_ok=True)
    digest = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in (victim, evil)}
    intent = {"op": "apply", "reload": False, "files": [
        {"path": str(victim), "backup": str(evil), "old": digest[evil], "new": digest[victim]}
    ]}  # fmt: skip
    data = {"config": str(state.config), "records": {}, "intent": intent}
    state.file.write_text(json.dumps(data))


@pytest.mark.parametrize("how", ["world-writable", "another-owner"])
def test_a_state_another_user_could_have_written_is_refused_and_nothing_is_undone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    root = tmp_path / "state"
    monkeypatch.setenv(STATE_ENV, str(root))
    config = _config(tmp_path)
    victim, evil = tmp_path / "passwd", tmp_path / "evil"
    victim.write_text("root:x:0:0:root:/root:/bin/bash\n")
    evil.write_text("pwned::0:0:root:/root:/bin/bash\n")
    state = ConfigState.of(config)
    _plant(state, victim, evil)
    if how == "world-writable":
        root.chmod(0o777)
    elif os.geteuid() == 0:
        os.chown(state.file, 65534, 65534)
    else:
        pytest.skip("giving a file to another user needs root")
    with pytest.raises(InputError) as refused:
        recover(config)
    line = str(refused.value)
    assert "cannot be trusted" in line and "\n" not in line and "fix:" in line
    assert victim.read_text() == "root:x:0:0:root:/root:/bin/bash\n"
    assert pending_change(config) is None  # said by the refusal, not acted on


def test_a_state_dir_others_may_write_is_refused_before_anything_is_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    monkeypatch.setenv(STATE_ENV, str(shared / "hookshift"))
    state = ConfigState.of(_config(tmp_path))
    with pytest.raises(InputError, match="may be written by other users"):
        state.save(Saved({"x": FileRecord(("    mirror /m;  # hookshift",), 0)}, None))
    assert not state.file.exists()


def test_a_sticky_world_writable_directory_above_is_fine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Like /tmp: others may add names there, not rename or remove ours."""
    sticky = tmp_path / "sticky"
    sticky.mkdir()
    sticky.chmod(0o1777)
    monkeypatch.setenv(STATE_ENV, str(sticky / "hookshift"))
    state = ConfigState.of(_config(tmp_path))
    saved = Saved({"x": FileRecord(("    mirror /m;  # hookshift",), 0)}, None)
    state.save(saved)
    assert state.load() == saved
