"""apply/remove under faults: kill -9 at every step, planted links, a second writer, owners,
read-only files and directories, full disks, a missing nginx, unwritable output."""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import stat
import struct
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

from hookshift.errors import InputError, OperationError
from hookshift.mirror.apply import (
    CHECKPOINT_LOG_ENV,
    PAUSE_ENV,
    apply_plan,
    keep_problem,
    pending_change,
    recover,
)
from hookshift.mirror.plan import make_plan
from hookshift.mirror.remove import LEGACY_NOTE, remove_marked
from hookshift.mirror.state import ConfigState
from hookshift.nginx import binary
from tests.mirror.helpers import STAGE_URL, options, snapshot

VERSION = (1, 22, 1)
REPO = Path(__file__).resolve().parents[2]

MAIN = """\
worker_processes 1;
error_log logs/error.log;
pid logs/nginx.pid;
events { worker_connections 64; }
http {
    access_log logs/access.log;
    include conf.d/*.conf;
}
"""
SITE = """\
server {
    listen 127.0.0.1:18080;
    server_name hooks.example.com;
    location /vendor/cb {
        proxy_pass http://127.0.0.1:9;
    }
}
"""


def multi_file(root: Path) -> Path:
    """A config whose http level is in nginx.conf and whose site is in conf.d/b.conf."""
    (root / "conf.d").mkdir(parents=True)
    (root / "logs").mkdir()
    (root / "nginx.conf").write_text(MAIN)
    (root / "conf.d" / "b.conf").write_text(SITE)
    return root / "nginx.conf"


def _plan(config: Path, ca_file: Path):  # type: ignore[no-untyped-def]
    return make_plan(options(config, "/vendor/cb", ca_file), VERSION)


def _apply(config: Path, ca_file: Path, nginx_bin: str, backup_dir: Path):  # type: ignore[no-untyped-def]
    recover(config)  # what `hookshift mirror apply` does before planning
    return apply_plan(
        _plan(config, ca_file), nginx_bin=nginx_bin, backup_dir=backup_dir, prefix=config.parent
    )


def _remove(config: Path, nginx_bin: str, backup_dir: Path):  # type: ignore[no-untyped-def]
    return remove_marked(config, nginx_bin=nginx_bin, backup_dir=backup_dir, prefix=config.parent)


SCRIPT = """
import sys
from pathlib import Path
from tests.mirror.test_writesafe import _apply, _remove
op, config, ca, bk, nginx = sys.argv[1:6]
if op == "apply":
    _apply(Path(config), Path(ca), nginx, Path(bk))
else:
    _remove(Path(config), nginx, Path(bk))
print("done")
"""


def _start(op: str, config: Path, ca_file: Path, nginx_bin: str, bk: Path, **env: str):  # type: ignore[no-untyped-def]
    argv = [sys.executable, "-c", SCRIPT, op, str(config), str(ca_file), str(bk), nginx_bin]
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **env}
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=full_env)


@contextlib.contextmanager
def paused(
    op: str, config: Path, ca_file: Path, nginx_bin: str, bk: Path, label: str
) -> Iterator[None]:
    """A hookshift `op` stopped at checkpoint `label`; killed with SIGKILL on exit."""
    proc = _start(op, config, ca_file, nginx_bin, bk, **{PAUSE_ENV: label})
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline().decode()
        assert f"paused at {label}" in line, line + proc.stderr.read().decode()
        yield
    finally:
        proc.kill()
        proc.wait()


def checkpoints(op: str, config: Path, ca_file: Path, nginx_bin: str, bk: Path) -> list[str]:
    log = config.parent.parent / f"{op}-checkpoints.txt"
    proc = _start(op, config, ca_file, nginx_bin, bk, **{CHECKPOINT_LOG_ENV: str(log)})
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()
    return log.read_text().split()


@pytest.mark.e2e
@pytest.mark.parametrize("op", ["apply", "remove"])
def test_kill_9_at_every_checkpoint_leaves_a_config_nginx_accepts_and_a_rerun_finishes(
    op: str, tmp_path: Path, nginx_bin: str, ca_file: Path
) -> None:
    bk = tmp_path / "bk"

    def fresh(name: str) -> tuple[Path, dict[Path, bytes]]:
        """A config ready for `op`, and the bytes the op must end with."""
        config = multi_file(tmp_path / name)
        if op == "apply":
            planned = snapshot(config.parent)
            planned.update({c.path: c.new_text.encode() for c in _plan(config, ca_file).changes})
            return config, planned
        original = snapshot(config.parent)
        _apply(config, ca_file, nginx_bin, bk)
        return config, original

    probe, _ = fresh("probe")
    labels = checkpoints(op, probe, ca_file, nginx_bin, bk)
    assert {
        "copies-written",
        "checked",
        "backed-up",
        "intent-recorded",
        "tested",
        "committed",
    } <= set(labels)
    for name in ("nginx.conf", "b.conf"):
        assert {f"temp-written:{name}", f"written:{name}"} <= set(labels)
    # definitions (http level, nginx.conf) before their uses on apply, after them on remove
    first, second = ("nginx.conf", "b.conf") if op == "apply" else ("b.conf", "nginx.conf")
    assert labels.index(f"written:{first}") < labels.index(f"written:{second}")

    for label in labels:
        config, final = fresh(label.replace(":", "-"))
        with paused(op, config, ca_file, nginx_bin, bk, label):
            pass
        pending = pending_change(config)
        unrecorded = ("copies-written", "checked", "backed-up", "committed")
        assert (pending is None) == (label in unrecorded), label
        test = binary.test_config(config, nginx_bin=nginx_bin, prefix=config.parent)
        assert test.ok, f"killed at {label}: nginx -t fails: {test.error}"
        if op == "apply":
            _apply(config, ca_file, nginx_bin, bk)
        else:
            _remove(config, nginx_bin, bk)
        assert snapshot(config.parent) == final, f"killed at {label}: rerun did not finish"
        assert ConfigState.of(config).load().intent is None


@pytest.mark.e2e
def test_a_second_apply_with_another_backup_dir_is_refused(
    tmp_path: Path, nginx_bin: str, ca_file: Path
) -> None:
    config = multi_file(tmp_path / "conf")
    with (
        paused("apply", config, ca_file, nginx_bin, tmp_path / "bk1", "backed-up"),
        pytest.raises(OperationError, match="another hookshift is changing the nginx config"),
    ):
        _apply(config, ca_file, nginx_bin, tmp_path / "bk2")
    assert not (tmp_path / "bk2").exists()


@pytest.mark.e2e
def test_a_link_planted_at_a_temp_name_during_nginx_t_is_never_followed(
    tmp_path: Path, nginx_bin: str, ca_file: Path
) -> None:
    config = multi_file(tmp_path / "conf")
    outside = tmp_path / "outside" / "secret"
    outside.parent.mkdir()
    outside.write_bytes(b"private\n")
    outside.chmod(0o600)
    # a "nginx" that, while it runs, plants links where the temp files used to be written
    wrapper = tmp_path / "nginx-planting-links"
    links = " ".join(
        f'"{p.parent}/.{p.name}.$PPID.hookshift-tmp"'
        for p in (config, config.parent / "conf.d/b.conf")
    )
    wrapper.write_text(
        f'#!/bin/sh\nfor l in {links}; do ln -sfn "{outside}" "$l"; done\nexec {nginx_bin} "$@"\n'
    )
    wrapper.chmod(0o755)
    planned = {c.path: c.new_text.encode() for c in _plan(config, ca_file).changes}
    apply_plan(
        _plan(config, ca_file),
        nginx_bin=str(wrapper),
        backup_dir=tmp_path / "bk",
        prefix=config.parent,
    )
    assert outside.read_bytes() == b"private\n"
    assert stat.S_IMODE(outside.stat().st_mode) == 0o600
    for path, data in planned.items():
        assert not path.is_symlink() and path.read_bytes() == data


@pytest.mark.e2e
def test_a_debian_sites_enabled_symlink_stays_a_symlink(
    tmp_path: Path, nginx_bin: str, ca_file: Path
) -> None:
    config = multi_file(tmp_path / "conf")
    available = config.parent / "sites-available"
    available.mkdir()
    (config.parent / "conf.d" / "b.conf").rename(available / "b.conf")
    (config.parent / "conf.d" / "b.conf").symlink_to("../sites-available/b.conf")
    original = (available / "b.conf").read_bytes()
    _apply(config, ca_file, nginx_bin, tmp_path / "bk")
    link = config.parent / "conf.d" / "b.conf"
    assert link.is_symlink() and b"# hookshift" in (available / "b.conf").read_bytes()
    _remove(config, nginx_bin, tmp_path / "bk")
    assert link.is_symlink() and (available / "b.conf").read_bytes() == original


USER_LINE = "        proxy_set_header X-Team ops; # hookshift\n"


@pytest.mark.e2e
def test_remove_takes_out_only_the_lines_apply_wrote(
    tmp_path: Path, nginx_bin: str, ca_file: Path
) -> None:
    config = multi_file(tmp_path / "conf")
    site = config.parent / "conf.d" / "b.conf"
    site.write_text(SITE.replace("        proxy_pass", USER_LINE + "        proxy_pass"))
    before = snapshot(config.parent)
    _apply(config, ca_file, nginx_bin, tmp_path / "bk")
    result = _remove(config, nginx_bin, tmp_path / "bk")
    assert snapshot(config.parent) == before, "the user's own marked line stays"
    foreign = [n for n in result.notes if "did not add it" in n]
    assert len(foreign) == 1 and re.search(r"b\.conf:\d+: ends in `# hookshift` but", foreign[0])


@pytest.mark.e2e
def test_remove_names_an_edited_line_and_one_that_lost_its_marker(
    tmp_path: Path, nginx_bin: str, ca_file: Path
) -> None:
    config = multi_file(tmp_path / "conf")
    _apply(config, ca_file, nginx_bin, tmp_path / "bk")
    site = config.parent / "conf.d" / "b.conf"
    text = site.read_text()
    mirror_line = next(line for line in text.splitlines() if line.strip().startswith("mirror "))
    # a line of the callback's own location, which stays (one of hookshift's own blocks would
    # be refused: the edited line would be stranded outside it)
    edited = next(line for line in text.splitlines() if "client_body_buffer_size" in line)
    text = text.replace(mirror_line, mirror_line.replace("  # hookshift", ""))
    text = text.replace(edited, edited.replace("128k", "256k"))
    site.write_text(text)
    result = _remove(config, nginx_bin, tmp_path / "bk")
    notes = "\n".join(result.notes)
    assert "lost its `# hookshift` marker" in notes
    assert "was edited or deleted" in notes and "client_body_buffer_size 128k" in notes
    assert "ends in `# hookshift` but hookshift did not add it" in notes
    left = site.read_text()
    assert mirror_line.replace("  # hookshift", "") in left
    assert edited.replace("128k", "256k") in left


@pytest.mark.e2e
def test_a_config_applied_without_a_record_is_removed_the_old_way_with_a_warning(
    tmp_path: Path, nginx_bin: str, ca_file: Path
) -> None:
    config = multi_file(tmp_path / "conf")
    before = snapshot(config.parent)
    _apply(config, ca_file, nginx_bin, tmp_path / "bk")
    ConfigState.of(config).file.unlink()  # what an earlier hookshift left: no record
    result = _remove(config, nginx_bin, tmp_path / "bk")
    assert snapshot(config.parent) == before
    assert LEGACY_NOTE in result.notes


@pytest.mark.e2e
def test_remove_after_the_files_were_put_back_by_other_means_is_a_quiet_no_op(
    tmp_path: Path, nginx_bin: str, ca_file: Path
) -> None:
    config = multi_file(tmp_path / "conf")
    before = snapshot(config.parent)
    _apply(config, ca_file, nginx_bin, tmp_path / "bk")
    for path, data in before.items():  # e.g. a cut-over rollback writing recorded bytes
        path.write_bytes(data)
    result = _remove(config, nginx_bin, tmp_path / "bk")
    assert result.no_change and result.notes == ()
    assert ConfigState.of(config).load().records == {}


@pytest.mark.e2e
def test_remove_with_a_hand_broken_marker_refuses_what_nginx_rejects(
    tmp_path: Path, nginx_bin: str, ca_file: Path
) -> None:
    config = multi_file(tmp_path / "conf")
    _apply(config, ca_file, nginx_bin, tmp_path / "bk")
    text = config.read_text()
    opening = next(line for line in text.splitlines() if line.strip().startswith("upstream "))
    config.write_text(text.replace(opening, opening.replace("  # hookshift", "")))
    edited = snapshot(config.parent)
    with pytest.raises(OperationError, match="nginx -t rejected the result, nothing changed"):
        _remove(config, nginx_bin, tmp_path / "bk")
    assert snapshot(config.parent) == edited
    assert ConfigState.of(config).load().intent is None


@pytest.mark.e2e
def test_remove_with_a_missing_nginx_binary_writes_nothing(
    tmp_path: Path, nginx_bin: str, ca_file: Path
) -> None:
    config = multi_file(tmp_path / "conf")
    _apply(config, ca_file, nginx_bin, tmp_path / "bk")
    applied = snapshot(config.parent)
    with pytest.raises(InputError, match="nginx binary not found: /nonexistent"):
        _remove(config, "/nonexistent", tmp_path / "bk")
    assert snapshot(config.parent) == applied


@pytest.mark.e2e
def test_remove_finds_nginx_in_sbin_with_crons_path(
    tmp_path: Path, nginx_bin: str, ca_file: Path
) -> None:
    if not nginx_bin.startswith(("/usr/sbin/", "/usr/local/sbin/", "/sbin/")):
        pytest.skip("nginx is not installed in an sbin directory here")
    config = multi_file(tmp_path / "conf")
    before = snapshot(config.parent)
    _apply(config, ca_file, nginx_bin, tmp_path / "bk")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "hookshift",
            "mirror",
            "remove",
            "--config",
            str(config),
            "--backup-dir",
            str(tmp_path / "bk"),
            "--nginx-prefix",
            str(config.parent),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert snapshot(config.parent) == before


def test_keep_problem_refuses_what_cannot_keep_owner_and_mode(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_text("x")
    os.chown(path, 0, 0)
    path.chmod(0o644)
    st = path.stat()
    assert keep_problem(st, 0, {0}) is None
    assert "owned by uid 0" in (keep_problem(st, 1000, {1000, 0}) or ("", ""))[0]
    os.chown(path, 1000, 0)
    assert "gid 0" in (keep_problem(path.stat(), 1000, {1000}) or ("", ""))[0]
    assert keep_problem(path.stat(), 1000, {1000, 0}) is None
    path.chmod(0o444)
    assert "read-only (mode 0444)" in (keep_problem(path.stat(), 0, {0}) or ("", ""))[0]


@pytest.mark.e2e
def test_a_non_root_apply_on_a_root_owned_file_is_refused_before_writing(
    tmp_path: Path, nginx_bin: str, ca_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = multi_file(tmp_path / "conf")
    before = snapshot(config.parent)
    monkeypatch.setattr(os, "geteuid", lambda: 4242)
    monkeypatch.setattr(os, "getegid", lambda: 4242)
    monkeypatch.setattr(os, "getgroups", lambda: [4242])
    with pytest.raises(InputError, match="owned by uid 0; running as uid 4242"):
        _apply(config, ca_file, nginx_bin, tmp_path / "bk")
    assert snapshot(config.parent) == before
    assert not list((tmp_path / "bk").glob("*/manifest.json"))


NOBODY_MAIN = (
    "import sys; sys.path[:0] = sys.argv[1:3]; del sys.argv[1:3]; "
    "from hookshift.cli import main; main()"
)


@pytest.mark.e2e
def test_apply_as_an_unprivileged_user_refuses_a_root_owned_file(
    nginx_bin: str, ca_file: Path
) -> None:
    system_python = Path("/usr/bin/python3")
    if os.geteuid() != 0 or not shutil.which("runuser") or not system_python.exists():
        pytest.skip("needs root, runuser and /usr/bin/python3")
    version = subprocess.run(
        [str(system_python), "-c", "import sys; print(sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if version != str(sys.version_info[:2]):
        pytest.skip("the system python cannot load this virtualenv's packages")
    shared = Path(tempfile.mkdtemp(prefix="hookshift-nobody-", dir="/tmp"))
    try:
        shared.chmod(0o777)
        config = multi_file(shared / "conf")
        for directory in (config.parent, config.parent / "conf.d"):
            directory.chmod(0o777)  # the caller may write the directories, not the files
        # sticky, or the parity log's place is refused first (anyone could replace it)
        (config.parent / "logs").chmod(0o1777)
        ca = shared / "ca.pem"
        shutil.copy(ca_file, ca)
        ca.chmod(0o644)
        before = snapshot(config.parent)
        args = [
            "mirror",
            "apply",
            "--config",
            str(config),
            "--path",
            "/vendor/cb",
            "--stage-url",
            STAGE_URL,
            "--trusted-ca",
            str(ca),
            "--no-dns-check",
            "--parity-log",
            str(config.parent / "logs" / "parity.log"),
            "--relay-socket",
            str(config.parent / "relay.sock"),
            "--nginx-bin",
            nginx_bin,
            "--backup-dir",
            str(shared / "bk"),
            "--nginx-prefix",
            str(config.parent),
        ]
        done = subprocess.run(
            [
                "runuser",
                "-u",
                "nobody",
                "--",
                str(system_python),
                "-c",
                NOBODY_MAIN,
                str(REPO),
                sysconfig.get_paths()["purelib"],
                *args,
            ],
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "HOOKSHIFT_STATE_DIR": str(shared / "state")},
        )
        assert done.returncode == 2, done.stderr
        assert "owned by uid 0; running as uid" in done.stderr and "Traceback" not in done.stderr
        assert snapshot(config.parent) == before
        assert all(p.stat().st_uid == 0 for p in before)
    finally:
        shutil.rmtree(shared)


@pytest.mark.e2e
def test_a_read_only_file_is_refused_not_replaced(
    tmp_path: Path, nginx_bin: str, ca_file: Path
) -> None:
    config = multi_file(tmp_path / "conf")
    site = config.parent / "conf.d" / "b.conf"
    site.chmod(0o444)
    before = snapshot(config.parent)
    with pytest.raises(InputError, match=r"b.conf is read-only \(mode 0444\)"):
        _apply(config, ca_file, nginx_bin, tmp_path / "bk")
    assert snapshot(config.parent) == before
    assert stat.S_IMODE(site.stat().st_mode) == 0o444


# Linux inode flags, set as `chattr` does (no process): FS_IOC_SETFLAGS is _IOW('f', 2, long).
_FS_IOC_SETFLAGS = (1 << 30) | (struct.calcsize("l") << 16) | (ord("f") << 8) | 2
_FS_IOC_GETFLAGS = (2 << 30) | (struct.calcsize("l") << 16) | (ord("f") << 8) | 1


@contextlib.contextmanager
def _chattr(path: Path, flag: int) -> Iterator[None]:
    """`path` with inode flag `flag` (0x10 immutable, 0x20 append-only) set meanwhile; the test
    is skipped where it cannot be set (not root, a file system without flags)."""
    if os.geteuid() != 0:
        pytest.skip("needs root to set an inode flag (chattr)")
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        try:
            old = int.from_bytes(fcntl.ioctl(fd, _FS_IOC_GETFLAGS, bytes(8))[:4], sys.byteorder)
            fcntl.ioctl(fd, _FS_IOC_SETFLAGS, (old | flag).to_bytes(8, sys.byteorder))
        except OSError as exc:
            pytest.skip(f"cannot set inode flags on {path}: {exc.strerror}")
        try:
            yield
        finally:
            fcntl.ioctl(fd, _FS_IOC_SETFLAGS, old.to_bytes(8, sys.byteorder))
    finally:
        os.close(fd)


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("flag", "on_directory", "said"),
    [
        (0x10, False, r"b.conf is immutable \(chattr \+i\)"),
        (0x20, False, r"b.conf is append-only \(chattr \+a\)"),
        (0x20, True, r"b.conf is in .*conf.d, which is append-only \(chattr \+a\)"),
    ],
    ids=["immutable file", "append-only file", "append-only directory"],
)
def test_a_file_protected_by_an_inode_flag_is_refused_before_anything_is_written(
    tmp_path: Path, nginx_bin: str, ca_file: Path, flag: int, on_directory: bool, said: str
) -> None:
    """No rename can replace an immutable or append-only file (or one in an append-only
    directory), root's neither, whatever the mode says: refused up front in one line, with no
    backup made and no other file written first and put back."""
    config = multi_file(tmp_path / "conf")
    site = config.parent / "conf.d" / "b.conf"
    before = _files(config.parent)
    with _chattr(site.parent if on_directory else site, flag):
        with pytest.raises(InputError, match=said) as refused:
            _apply(config, ca_file, nginx_bin, tmp_path / "bk")
        assert "chattr -" in (refused.value.fix or "")
        assert _files(config.parent) == before
    assert not (tmp_path / "bk").exists()


def _files(root: Path) -> dict[Path, tuple[int, int, bytes]]:
    """Every file under `root` (logs left out): inode, mtime and bytes (a file written and put
    back differs)."""
    return {
        p: (p.stat().st_ino, p.stat().st_mtime_ns, p.read_bytes())
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink() and "logs" not in p.relative_to(root).parts
    }


@pytest.mark.e2e
def test_a_config_applied_through_a_symlinked_directory_is_removed_through_its_real_path(
    tmp_path: Path, nginx_bin: str, ca_file: Path
) -> None:
    """What apply recorded is found however the config is named later (/etc/nginx a link to
    /srv/nginx): remove gives every file back byte for byte, with no line called foreign."""
    config = multi_file(tmp_path / "real")
    (tmp_path / "etc").symlink_to(config.parent)
    before = snapshot(config.parent)
    _apply(tmp_path / "etc" / "nginx.conf", ca_file, nginx_bin, tmp_path / "bk")
    assert snapshot(config.parent) != before
    removed = _remove(config, nginx_bin, tmp_path / "bk")
    assert removed.notes == ()
    assert snapshot(config.parent) == before
    assert ConfigState.of(config).load().records == {}


@pytest.mark.e2e
def test_a_file_included_by_two_paths_is_removed_once_with_no_line_called_foreign(
    tmp_path: Path, nginx_bin: str, ca_file: Path
) -> None:
    """Debian's sites-enabled link and a second include of the file in sites-available: nginx
    reads one file twice, by two names. apply records its lines under the name it planned
    on; remove takes them out once and does not call them another's under the other name."""
    config = multi_file(tmp_path / "conf")
    available = config.parent / "sites-available"
    available.mkdir()
    (config.parent / "conf.d" / "b.conf").rename(available / "b.conf")
    (config.parent / "conf.d" / "b.conf").symlink_to("../sites-available/b.conf")
    config.write_text(
        config.read_text().replace(
            "include conf.d/*.conf;", "include conf.d/*.conf;\n    include sites-available/b.conf;"
        )
    )
    before = snapshot(config.parent)
    _apply(config, ca_file, nginx_bin, tmp_path / "bk")
    removed = _remove(config, nginx_bin, tmp_path / "bk")
    assert removed.notes == ()
    assert snapshot(config.parent) == before


@pytest.mark.e2e
@pytest.mark.parametrize("op", ["apply", "remove"])
def test_a_backup_dir_an_include_glob_would_read_is_refused_and_not_made(
    tmp_path: Path, nginx_bin: str, ca_file: Path, op: str
) -> None:
    """`include conf.d/*;` reads every file and directory there, and nginx -t fails on a
    directory: a backup directory made there would break the user's own config for good."""
    config = multi_file(tmp_path / "conf")
    config.write_text(config.read_text().replace("include conf.d/*.conf;", "include conf.d/*;"))
    if op == "remove":
        _apply(config, ca_file, nginx_bin, tmp_path / "bk")
    before = _files(config.parent)
    backups = config.parent / "conf.d" / "backups"
    with pytest.raises(
        InputError, match=r"is where `include conf.d/\*;` at .*nginx.conf:\d+ reads"
    ):
        if op == "apply":
            _apply(config, ca_file, nginx_bin, backups)
        else:
            _remove(config, nginx_bin, backups)
    assert not backups.exists()
    assert _files(config.parent) == before
    assert binary.test_config(config, nginx_bin=nginx_bin, prefix=config.parent).ok


def _root_mounts() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to mount")


@contextlib.contextmanager
def mounted(target: Path, *args: str) -> Iterator[None]:
    done = subprocess.run(["mount", *args, str(target)], capture_output=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount here: {done.stderr.decode().strip()}")
    try:
        yield
    finally:
        subprocess.run(["umount", str(target)], check=True)


@contextlib.contextmanager
def read_only(directory: Path) -> Iterator[None]:
    with mounted(directory, "--bind", str(directory)):
        subprocess.run(["mount", "-o", "remount,bind,ro", str(directory)], check=True)
        yield


@contextlib.contextmanager
def full_tmpfs(directory: Path) -> Iterator[None]:
    """`directory` on a 64 KiB tmpfs; call `fill` after putting files in it."""
    directory.mkdir(parents=True, exist_ok=True)
    with mounted(directory, "-t", "tmpfs", "-o", "size=64k", "tmpfs"):
        yield


def fill(directory: Path) -> None:
    fd = os.open(directory / ".filler", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        with contextlib.suppress(OSError):
            while True:
                os.write(fd, b"\0" * 512)
    finally:
        os.close(fd)


@pytest.mark.e2e
def test_an_unwritable_config_directory_is_one_line_and_leaves_no_backup(
    tmp_path: Path, nginx_bin: str, ca_file: Path
) -> None:
    _root_mounts()
    config = multi_file(tmp_path / "conf")
    before = snapshot(config.parent)
    with read_only(config.parent / "conf.d"), pytest.raises(InputError, match="cannot write in"):
        _apply(config, ca_file, nginx_bin, tmp_path / "bk")
    assert snapshot(config.parent) == before
    assert not list((tmp_path / "bk").glob("*"))


@pytest.mark.e2e
def test_a_full_disk_for_the_config_restores_and_leaves_no_backup(
    tmp_path: Path, nginx_bin: str, ca_file: Path
) -> None:
    _root_mounts()
    root = tmp_path / "conf"
    with full_tmpfs(root):
        config = multi_file(root)
        plan = _plan(config, ca_file)
        before = snapshot(config.parent)
        fill(root)
        with pytest.raises(InputError, match="No space left on device; original restored"):
            apply_plan(plan, nginx_bin=nginx_bin, backup_dir=tmp_path / "bk", prefix=root)
        assert snapshot(config.parent) == {
            **before,
            root / ".filler": (root / ".filler").read_bytes(),
        }
        assert not list(root.rglob("*.hookshift-tmp"))
    assert not list((tmp_path / "bk").glob("*"))
    assert ConfigState.of(config).load().intent is None


@pytest.mark.e2e
def test_a_full_disk_for_the_backup_writes_nothing_and_leaves_no_empty_backup(
    tmp_path: Path, nginx_bin: str, ca_file: Path
) -> None:
    _root_mounts()
    config = multi_file(tmp_path / "conf")
    before = snapshot(config.parent)
    bk = tmp_path / "bk"
    with full_tmpfs(bk):
        fill(bk)
        with pytest.raises(InputError, match=r"cannot write the backup in .*No space left"):
            _apply(config, ca_file, nginx_bin, bk)
        assert sorted(p.name for p in bk.iterdir()) == [".filler"]
    assert snapshot(config.parent) == before


def _plan_args(config: Path, ca_file: Path, nginx_bin: str) -> list[str]:
    """`mirror plan`'s options for the callback of `multi_file`, everything in its tree."""
    return [
        "--config",
        str(config),
        "--path",
        "/vendor/cb",
        "--stage-url",
        STAGE_URL,
        "--parity-log",
        str(config.parent / "logs" / "parity.log"),
        "--trusted-ca",
        str(ca_file),
        "--relay-socket",
        str(config.parent / "relay.sock"),
        "--no-dns-check",
        "--nginx-bin",
        nginx_bin,
    ]


def _cli(args: list[str], stdout: int | IO[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hookshift", "mirror", *args],
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        check=False,
    )


@pytest.mark.e2e
def test_mirror_commands_with_stdout_on_a_full_device_say_one_line(
    tmp_path: Path, nginx_bin: str, ca_file: Path
) -> None:
    config = multi_file(tmp_path / "conf")
    before = snapshot(config.parent)
    common = _plan_args(config, ca_file, nginx_bin)
    apply_args = [
        *common,
        "--backup-dir",
        str(tmp_path / "bk"),
        "--nginx-prefix",
        str(config.parent),
    ]
    with open("/dev/full", "w") as full:
        for args in (["plan", *common], ["apply", *apply_args]):
            done = _cli(args, full)
            assert done.returncode == 2, done.stderr
            assert "Traceback" not in done.stderr
            errors = [line for line in done.stderr.splitlines() if "error" in line]
            assert (
                errors == [errors[0]]
                and "cannot write to standard output: No space left on device" in errors[0]
            )
        assert snapshot(config.parent) == before, "apply with unwritable output changes nothing"
        remove = [
            "remove",
            "--config",
            str(config),
            "--format",
            "json",
            "--nginx-bin",
            nginx_bin,
            "--backup-dir",
            str(tmp_path / "bk"),
            "--nginx-prefix",
            str(config.parent),
        ]
        done = _cli(remove, full)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert "cannot write to standard output" in done.stderr


@pytest.mark.e2e
def test_remove_after_an_apply_killed_before_its_rename_leaves_no_temp_file(
    tmp_path: Path, nginx_bin: str, ca_file: Path
) -> None:
    """The undo of the killed apply takes its temp file too: remove gives back the files as
    they were, and nothing beside them."""
    config = multi_file(tmp_path / "conf")
    original = snapshot(config.parent)
    with paused("apply", config, ca_file, nginx_bin, tmp_path / "bk", "temp-written:b.conf"):
        pass
    assert list((config.parent / "conf.d").glob(".*hookshift-tmp"))  # what the kill left
    _remove(config, nginx_bin, tmp_path / "bk")
    assert snapshot(config.parent) == original
    assert not list(config.parent.rglob(".*hookshift-tmp"))


@pytest.mark.e2e
def test_a_backup_dir_that_cannot_be_made_is_refused_before_the_diff_is_shown(
    tmp_path: Path, nginx_bin: str, ca_file: Path
) -> None:
    """Nothing changes, so nothing is shown as a change: the refusal is the one line."""
    config = multi_file(tmp_path / "conf")
    before = snapshot(config.parent)
    (tmp_path / "a-file").write_text("")
    done = _cli(
        [
            "apply",
            *_plan_args(config, ca_file, nginx_bin),
            "--nginx-prefix",
            str(config.parent),
            "--backup-dir",
            str(tmp_path / "a-file" / "bk"),
        ],
        subprocess.PIPE,
    )
    assert done.returncode == 2 and done.stdout == "", done.stdout[:200]
    assert done.stderr.strip().endswith(
        "(fix: pass --backup-dir DIR in a directory you may write)"
    ), done.stderr
    assert snapshot(config.parent) == before


@pytest.mark.e2e
def test_an_edit_made_in_place_while_nginx_t_runs_is_kept_and_the_apply_refused(
    tmp_path: Path, nginx_bin: str, ca_file: Path
) -> None:
    """A colleague appends to the site file (same inode) during apply's first nginx -t, which
    takes seconds on a big config: writing the planned text would lose their line."""
    config = multi_file(tmp_path / "conf")
    site = config.parent / "conf.d" / "b.conf"
    slow = tmp_path / "nginx"
    slow.write_text(
        "#!/bin/sh\n"
        f'case " $* " in *" -t "*) if [ ! -e {tmp_path}/edited ]; then : > {tmp_path}/edited; '
        f"echo '# colleague: added by hand' >> {site}; fi;; esac\n"
        f'exec {nginx_bin} "$@"\n'
    )
    slow.chmod(0o755)
    plan = _plan(config, ca_file)
    with pytest.raises(OperationError, match=r"b\.conf changed since the plan was made"):
        apply_plan(plan, nginx_bin=str(slow), backup_dir=tmp_path / "bk", prefix=config.parent)
    assert site.read_text() == SITE + "# colleague: added by hand\n"
    assert "hookshift" not in config.read_text() and not (tmp_path / "bk").exists()


@pytest.mark.e2e
def test_an_already_applied_plan_undone_since_by_remove_is_refused_not_called_done(
    tmp_path: Path, nginx_bin: str, ca_file: Path
) -> None:
    """Planned while applied ("no change"), then a remove ran before the apply took the lock:
    saying "already applied" would leave the user believing the mirror is there."""
    config = multi_file(tmp_path / "conf")
    _apply(config, ca_file, nginx_bin, tmp_path / "bk")
    stale = _plan(config, ca_file)
    assert stale.already_applied
    _remove(config, nginx_bin, tmp_path / "bk")
    before = snapshot(config.parent)
    with pytest.raises(OperationError, match="changed since the plan was made"):
        apply_plan(stale, nginx_bin=nginx_bin, backup_dir=tmp_path / "bk", prefix=config.parent)
    assert snapshot(config.parent) == before


@pytest.mark.e2e
def test_a_record_that_cannot_be_kept_after_the_writes_is_one_line_saying_what_stands(
    tmp_path: Path, nginx_bin: str, ca_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The files are written and nginx -t passed when hookshift's state cannot take the
    record (a full or read-only disk): the user is told that, and how the next run settles it."""
    _root_mounts()
    monkeypatch.setenv("HOOKSHIFT_STATE_DIR", str(tmp_path / "state"))
    config = multi_file(tmp_path / "conf")
    directory = ConfigState.of(config).directory
    directory.mkdir(parents=True)
    calls = tmp_path / "tests"
    wrapper = tmp_path / "nginx"
    # the third nginx -t (after the original's and the result's on copies) is apply's check
    # of the result in place: then the state dir goes read-only
    wrapper.write_text(
        "#!/bin/sh\n"
        f'case " $* " in *" -t "*) echo t >> {calls};\n'
        f'  if [ "$(wc -l < {calls})" -eq 3 ]; then mount --bind {directory} {directory} && '
        f"mount -o remount,ro,bind {directory}; fi;; esac\n"
        f'exec {nginx_bin} "$@"\n'
    )
    wrapper.chmod(0o755)
    try:
        with pytest.raises(OperationError) as failed:
            apply_plan(
                _plan(config, ca_file),
                nginx_bin=str(wrapper),
                backup_dir=tmp_path / "bk",
                prefix=config.parent,
            )
    finally:
        subprocess.run(["umount", str(directory)], check=False, capture_output=True)
    line = str(failed.value)
    assert "the change is in place and nginx -t passes, but hookshift could not record it" in line
    assert "Read-only file system" in line and "\n" not in line
    assert "hookshift" in config.read_text()  # as said: in place
    # and as said, the next run puts the files back before doing anything else
    assert "undone first" in recover(config)[0]
    assert "hookshift" not in config.read_text()


@pytest.mark.e2e
def test_a_hard_linked_file_is_changed_at_its_own_path_and_the_user_told(
    tmp_path: Path, nginx_bin: str, ca_file: Path
) -> None:
    config = multi_file(tmp_path / "conf")
    site = config.parent / "conf.d" / "b.conf"
    other = tmp_path / "sites-available-b.conf"
    os.link(site, other)
    result = _apply(config, ca_file, nginx_bin, tmp_path / "bk")
    assert "hookshift" in site.read_text() and other.read_text() == SITE
    assert [n for n in result.notes if "hard links" in n] == [
        f"{site} had 1 other name(s) (hard links): they keep the text from before this change, "
        "and only this path has it (nginx reads this path); make the other name a symlink if "
        "it should follow"
    ]
