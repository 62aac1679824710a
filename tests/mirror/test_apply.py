"""apply/remove: refuse a broken original, roll back a rejected result, idempotent, crash-safe."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from hookshift.errors import InputError, OperationError
from hookshift.mirror.apply import PAUSE_ENV, Edit, apply_plan, recover, write_edits
from hookshift.mirror.plan import make_plan
from hookshift.mirror.remove import remove_marked
from hookshift.mirror.state import ConfigState
from hookshift.nginx import binary
from tests.mirror.helpers import copy_case, options, snapshot
from tests.nginx.test_shadow import debian_stock

VERSION = (1, 22, 1)
REPO = Path(__file__).resolve().parents[2]


def _plan(config: Path, ca_file: Path, **kw: object):  # type: ignore[no-untyped-def]
    return make_plan(options(config, "/vendor/cb", ca_file, **kw), VERSION)  # type: ignore[arg-type]


@pytest.mark.e2e
def test_apply_refuses_when_the_original_fails_nginx_t(
    tmp_path: Path, nginx_bin: str, ca_file: Path
) -> None:
    config = copy_case("location_include", tmp_path)
    (config.parent / "locations" / "10-app.conf").write_text("location / { no_such_directive; }\n")
    before = snapshot(config.parent)
    plan = _plan(config, ca_file)
    with pytest.raises(InputError, match=r"nginx -t fails on the original.*no_such_directive"):
        apply_plan(plan, nginx_bin=nginx_bin, backup_dir=tmp_path / "bk", prefix=config.parent)
    assert snapshot(config.parent) == before


@pytest.fixture
def nginx(each_nginx: str) -> str:
    """Each nginx binary there is (conftest's each_nginx)."""
    return each_nginx


def _plan_for(config: Path, nginx: str, ca_file: Path, **kw: object):  # type: ignore[no-untyped-def]
    options_ = options(config, "/vendor/cb", ca_file, **kw)  # type: ignore[arg-type]
    return make_plan(options_, binary.nginx_version(nginx))


def _files(root: Path) -> dict[Path, tuple[int, int, bytes]]:
    """Every file under `root` (logs left out, hidden ones in): inode, mtime and bytes."""
    return {
        p: (p.stat().st_ino, p.stat().st_mtime_ns, p.read_bytes())
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink() and "logs" not in p.relative_to(root).parts
    }


@pytest.mark.e2e
def test_a_result_nginx_rejects_is_refused_before_any_file_is_written(
    tmp_path: Path, nginx: str, ca_file: Path
) -> None:
    """Not written and put back: never written (same inode, same time), no backup made."""
    config = copy_case("location_include", tmp_path)
    before = _files(config.parent)
    plan = _plan_for(config, nginx, ca_file, trusted_ca=tmp_path / "missing-ca.pem")
    assert len(plan.changes) == 3
    with pytest.raises(
        OperationError, match=r"^nginx -t rejected the result, nothing changed: .*missing-ca\.pem"
    ) as refused:
        apply_plan(plan, nginx_bin=nginx, backup_dir=tmp_path / "bk", prefix=config.parent)
    assert ".hookshift-check-" not in str(refused.value)
    assert _files(config.parent) == before
    assert not (tmp_path / "bk").exists()
    assert ConfigState.of(config).load().intent is None


@pytest.mark.e2e
def test_a_rejected_result_names_the_users_file_and_line(tmp_path: Path, nginx: str) -> None:
    """nginx ran on copies of the files; its error names the user's file, at the line the
    user's file has (line 3: the file starts with a comment)."""
    config = copy_case("location_include", tmp_path)
    site = config.parent / "locations" / "20-callback.conf"
    old = site.read_text()
    new = old.replace("{\n", "{\n    no_such_directive on;\n", 1)
    before = _files(config.parent)
    with pytest.raises(
        OperationError, match="nginx -t rejected the result, nothing changed"
    ) as refused:
        write_edits(
            [Edit(site, old, new)],
            config=config,
            nginx_bin=nginx,
            backup_dir=tmp_path / "bk",
            reload=False,
            prefix=config.parent,
        )
    assert str(refused.value).endswith(f'unknown directive "no_such_directive" in {site}:3')
    assert _files(config.parent) == before


KILLED_AT_SECOND_T = """#!/bin/sh
case " $* " in *" -t "*) echo t >> {calls}
  if [ "$(wc -l < {calls})" -eq 2 ]; then kill -9 $PPID; fi;; esac
exec {nginx} "$@"
"""


@pytest.mark.e2e
def test_a_kill_during_the_check_of_a_rejected_result_leaves_the_users_files_as_they_were(
    tmp_path: Path, nginx: str, ca_file: Path
) -> None:
    """apply's second ``nginx -t`` (the result's; seconds on a big config) is killed: the
    files on disk are still the user's, which nginx accepts, and a rerun finds nothing to undo
    and no copy left behind."""
    config = copy_case("location_include", tmp_path)
    before = _files(config.parent)
    wrapper = tmp_path / "nginx"
    wrapper.write_text(KILLED_AT_SECOND_T.format(calls=tmp_path / "calls", nginx=nginx))
    wrapper.chmod(0o755)
    missing_ca = tmp_path / "missing-ca.pem"  # a result nginx rejects
    argv = [sys.executable, "-c", APPLY_SCRIPT, str(config), str(missing_ca), str(tmp_path / "bk")]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([*argv, str(wrapper)], capture_output=True, env=env, check=False)
    assert done.returncode == -9, done.stderr.decode()
    assert (tmp_path / "calls").read_text() == "t\nt\n"
    kept = {p: v for p, v in _files(config.parent).items() if ".hookshift-check-" not in p.name}
    assert kept == before
    assert binary.test_config(config, nginx_bin=nginx, prefix=config.parent).ok
    assert recover(config) == ()  # nothing was written, so nothing to undo
    apply_plan(
        _plan_for(config, nginx, ca_file),
        nginx_bin=nginx,
        backup_dir=tmp_path / "bk",
        prefix=config.parent,
    )
    remove_marked(config, nginx_bin=nginx, backup_dir=tmp_path / "bk", prefix=config.parent)
    assert {p: v[2] for p, v in _files(config.parent).items()} == {
        p: v[2] for p, v in before.items()
    }, "a copy left by the killed run stays behind"


@pytest.mark.e2e
@pytest.mark.parametrize("absolute", [True, False], ids=["absolute-includes", "relative-includes"])
def test_debians_stock_layout_is_checked_before_writing_and_applied(
    tmp_path: Path, nginx: str, ca_file: Path, absolute: bool
) -> None:
    """nginx.conf including conf.d/*.conf and sites-enabled/*, links to sites-available: the
    check on copies runs (no note says it could not), the result is written, links stay."""
    config = debian_stock(tmp_path, absolute)
    root = config.parent
    opts = options(config, "/bizppurio/callback", ca_file)
    plan = make_plan(opts, binary.nginx_version(nginx))
    assert {c.path.name for c in plan.changes} >= {"nginx.conf", "hooks"}
    result = apply_plan(plan, nginx_bin=nginx, backup_dir=tmp_path / "bk", prefix=root)
    assert not [n for n in result.notes if "could not check the result" in n], result.notes
    assert (root / "sites-enabled" / "hooks").is_symlink()
    assert "hookshift" in (root / "sites-available" / "hooks").read_text()
    assert not list(root.glob(".hookshift-check-*"))
    remove_marked(config, nginx_bin=nginx, backup_dir=tmp_path / "bk", prefix=root)
    bad = make_plan(replace(opts, trusted_ca=tmp_path / "missing.pem"), binary.nginx_version(nginx))
    before = _files(root)
    with pytest.raises(OperationError, match="nginx -t rejected the result, nothing changed"):
        apply_plan(bad, nginx_bin=nginx, backup_dir=tmp_path / "bk", prefix=root)
    assert _files(root) == before


@pytest.mark.e2e
def test_where_no_copy_can_be_checked_the_result_is_checked_in_place_and_the_user_told(
    tmp_path: Path, nginx_bin: str, ca_file: Path
) -> None:
    """A site file whose name an include cannot spell (``[``): as before, the result is
    written, checked in place, and put back when nginx rejects it."""
    config = copy_case("location_include", tmp_path)
    (config.parent / "locations" / "05-x[1].conf").write_text("location /x { return 204; }\n")
    before = snapshot(config.parent)
    result = apply_plan(
        _plan(config, ca_file),
        nginx_bin=nginx_bin,
        backup_dir=tmp_path / "bk",
        prefix=config.parent,
    )
    assert [n for n in result.notes if "could not check the result before it was written" in n]
    assert "05-x[1].conf holds a glob character" in " ".join(result.notes)
    remove_marked(config, nginx_bin=nginx_bin, backup_dir=tmp_path / "bk", prefix=config.parent)
    assert snapshot(config.parent) == before
    plan = _plan(config, ca_file, trusted_ca=tmp_path / "missing-ca.pem")
    with pytest.raises(OperationError, match=r"nginx -t rejected the result, original restored"):
        apply_plan(plan, nginx_bin=nginx_bin, backup_dir=tmp_path / "bk", prefix=config.parent)
    assert snapshot(config.parent) == before


@pytest.mark.e2e
def test_apply_twice_changes_nothing_the_second_time(
    tmp_path: Path, nginx_bin: str, ca_file: Path
) -> None:
    config = copy_case("location_include", tmp_path)
    first = apply_plan(
        _plan(config, ca_file),
        nginx_bin=nginx_bin,
        backup_dir=tmp_path / "bk",
        prefix=config.parent,
    )
    assert len(first.changed) == 3
    applied = snapshot(config.parent)
    again = _plan(config, ca_file)
    assert again.already_applied and not again.changes
    second = apply_plan(again, nginx_bin=nginx_bin, backup_dir=tmp_path / "bk")
    assert second.no_change
    assert snapshot(config.parent) == applied


@pytest.mark.e2e
def test_a_different_plan_on_an_applied_config_upgrades_it_in_one_edit(
    tmp_path: Path, nginx_bin: str, ca_file: Path
) -> None:
    """hookshift's lines of an earlier plan are replaced by the new plan's in one validated
    apply; the result is what the new plan writes on the original, and remove restores it."""
    config = copy_case("location_include", tmp_path)
    original = snapshot(config.parent)
    apply_plan(
        _plan(config, ca_file),
        nginx_bin=nginx_bin,
        backup_dir=tmp_path / "bk",
        prefix=config.parent,
    )
    upgrade = _plan(config, ca_file, timeout=1.5)
    assert not upgrade.already_applied and upgrade.changes
    assert any("replaces hookshift's lines" in w for w in upgrade.warnings)
    apply_plan(upgrade, nginx_bin=nginx_bin, backup_dir=tmp_path / "bk", prefix=config.parent)
    upgraded = snapshot(config.parent)

    remove_marked(config, nginx_bin=nginx_bin, backup_dir=tmp_path / "bk", prefix=config.parent)
    assert snapshot(config.parent) == original
    fresh = _plan(config, ca_file, timeout=1.5)
    assert {c.path: c.new_text.encode() for c in fresh.changes} == {
        p: b for p, b in upgraded.items() if b != original[p]
    }
    assert _plan(config, ca_file).changes, "the original takes a fresh plan"


@pytest.mark.e2e
def test_mode_and_owner_are_kept_and_backups_hold_the_originals(
    tmp_path: Path, nginx_bin: str, ca_file: Path
) -> None:
    config = copy_case("location_include", tmp_path)
    servers = config.parent / "servers.conf"
    original = servers.read_bytes()
    os.chmod(servers, 0o640)
    os.chown(servers, 1234, 2345)
    result = apply_plan(
        _plan(config, ca_file),
        nginx_bin=nginx_bin,
        backup_dir=tmp_path / "bk",
        prefix=config.parent,
    )
    st = servers.stat()
    assert (st.st_mode & 0o7777, st.st_uid, st.st_gid) == (0o640, 1234, 2345)
    assert result.backup_dir is not None
    assert original in [p.read_bytes() for p in result.backup_dir.iterdir()]


def test_a_held_lock_refuses_a_second_writer(tmp_path: Path, nginx_bin: str, ca_file: Path) -> None:
    config = copy_case("location_include", tmp_path)
    with (
        ConfigState.of(config).locked(),
        pytest.raises(OperationError, match="another hookshift"),
    ):
        apply_plan(_plan(config, ca_file), nginx_bin=nginx_bin, backup_dir=tmp_path / "bk")


@pytest.mark.e2e
def test_a_failed_reload_restores_the_original(
    tmp_path: Path, nginx_bin: str, ca_file: Path
) -> None:
    config = copy_case("location_include", tmp_path)
    before = snapshot(config.parent)
    with pytest.raises(OperationError, match="reload failed, original restored"):
        # nothing runs with this config, so `nginx -s reload` cannot signal a master
        apply_plan(
            _plan(config, ca_file),
            nginx_bin=nginx_bin,
            backup_dir=tmp_path / "bk",
            reload=True,
            prefix=config.parent,
        )
    assert snapshot(config.parent) == before


@pytest.mark.e2e
def test_remove_on_a_clean_config_is_a_no_op(tmp_path: Path, nginx_bin: str) -> None:
    config = copy_case("debian", tmp_path)
    assert remove_marked(config, nginx_bin=nginx_bin, backup_dir=tmp_path / "bk").no_change


APPLY_SCRIPT = """
import sys
from pathlib import Path
from hookshift.mirror.apply import apply_plan
from hookshift.mirror.plan import make_plan
from tests.mirror.helpers import options
config, ca, bk, nginx = sys.argv[1:5]
plan = make_plan(options(Path(config), "/vendor/cb", Path(ca)), (1, 22, 1))
apply_plan(plan, nginx_bin=nginx, backup_dir=Path(bk), prefix=Path(config).parent)
print("done")
"""


@pytest.mark.e2e
@pytest.mark.parametrize(
    "label",
    [
        "backed-up",
        "temp-written:nginx.conf",
        "written:nginx.conf",
        "temp-written:servers.conf",
        "written:servers.conf",
        "written:20-callback.conf",
    ],
)
def test_kill_9_leaves_each_file_entirely_old_or_entirely_new(
    label: str, tmp_path: Path, nginx_bin: str, ca_file: Path
) -> None:
    config = copy_case("location_include", tmp_path)
    before = snapshot(config.parent)
    planned = {c.path: c.new_text.encode() for c in _plan(config, ca_file).changes}
    argv = [
        sys.executable,
        "-c",
        APPLY_SCRIPT,
        str(config),
        str(ca_file),
        str(tmp_path / "bk"),
        nginx_bin,
    ]
    env = {**os.environ, PAUSE_ENV: label, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(argv, stderr=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline().decode()
        assert f"paused at {label}" in line, line
    finally:
        proc.kill()
        proc.wait()
    after = snapshot(config.parent)
    new_files = 0
    for path, data in before.items():
        assert after[path] in (data, planned.get(path, data)), f"{path} is half-written"
        new_files += after[path] != data
    assert (
        new_files
        == {
            "backed-up": 0,
            "temp-written:nginx.conf": 0,
            "written:nginx.conf": 1,
            "temp-written:servers.conf": 1,
            "written:servers.conf": 2,
            "written:20-callback.conf": 3,
        }[label]
    )
    # http level first, then server, then location: every state in between is valid
    assert binary.test_config(config, nginx_bin=nginx_bin, prefix=config.parent).ok
    # the lock died with the process: the next run takes it, undoes the unfinished change,
    # cleans up and does the job
    recover(config)
    writer = {"nginx_bin": nginx_bin, "backup_dir": tmp_path / "bk", "prefix": config.parent}
    assert apply_plan(_plan(config, ca_file), **writer).changed  # type: ignore[arg-type]
    remove_marked(config, nginx_bin=nginx_bin, backup_dir=tmp_path / "bk", prefix=config.parent)
    assert snapshot(config.parent) == before, "no temp file left behind"


def test_a_relay_socket_in_a_missing_directory_is_refused_before_writing(
    tmp_path: Path, nginx_bin: str, ca_file: Path
) -> None:
    config = copy_case("location_include", tmp_path)
    before = snapshot(config.parent)
    plan = _plan(config, ca_file, relay_socket=str(tmp_path / "no-such-dir" / "relay.sock"))
    with pytest.raises(InputError, match="relay socket's directory does not exist"):
        apply_plan(plan, nginx_bin=nginx_bin, backup_dir=tmp_path / "bk", prefix=config.parent)
    assert snapshot(config.parent) == before


def test_a_relay_socket_path_too_long_for_unix_sockets_is_an_input_error(
    tmp_path: Path, ca_file: Path
) -> None:
    config = copy_case("location_include", tmp_path)
    with pytest.raises(InputError, match="longer than 107 bytes"):
        _plan(config, ca_file, relay_socket="/run/" + "x" * 120 + ".sock")


@pytest.mark.e2e
def test_apply_makes_the_parity_log_private_before_nginx_opens_it(
    tmp_path: Path, nginx_bin: str, ca_file: Path
) -> None:
    """nginx would create the log 0644 (readable by every local user); it holds callbacks."""
    config = copy_case("location_include", tmp_path)
    log = config.parent / "logs" / "parity.log"
    old_umask = os.umask(0o022)
    try:
        apply_plan(
            _plan(config, ca_file, parity_log=log),
            nginx_bin=nginx_bin,
            backup_dir=tmp_path / "bk",
            prefix=config.parent,
        )
    finally:
        os.umask(old_umask)
    assert log.is_file()
    assert log.stat().st_mode & 0o777 == 0o640


@pytest.mark.e2e
def test_a_refused_apply_leaves_no_parity_log_behind(
    tmp_path: Path, nginx_bin: str, ca_file: Path
) -> None:
    config = copy_case("location_include", tmp_path)
    log = config.parent / "logs" / "parity.log"
    plan = _plan(config, ca_file, parity_log=log, trusted_ca=tmp_path / "missing-ca.pem")
    with pytest.raises(OperationError):
        apply_plan(plan, nginx_bin=nginx_bin, backup_dir=tmp_path / "bk", prefix=config.parent)
    assert not log.exists()


@pytest.mark.parametrize(
    "damage",
    [
        '{"records": {"F": {"lines": [1, 2, 3], "splits": 0}}}',
        '{"records": {"F": {"lines": ["x  # hookshift"], "splits": "0"}}}',
        '{"records": ["F"]}',
        '{"intent": {"op": "apply", "files": [{"path": 1}]}}',
        "[1, 2]",
        "{not json",
        "\xff\xfe",
    ],
)
def test_a_damaged_state_file_is_named_in_the_users_words(tmp_path: Path, damage: str) -> None:
    config = tmp_path / "nginx.conf"
    config.write_text("events {}\n")
    state = ConfigState.of(config)
    state.directory.mkdir(parents=True, exist_ok=True)
    state.file.write_bytes(damage.replace("F", str(config)).encode("utf-8", "surrogateescape"))
    with pytest.raises(InputError) as err:
        state.load()
    line = err.value.line()
    assert line.startswith(f"{state.file}: hookshift's state for {config} is damaged")
    assert "object" not in line and "Expecting" not in line and "codec" not in line


@pytest.mark.e2e
@pytest.mark.parametrize("where", ["in the http block", "in a file it includes"])
def test_a_map_hash_size_set_after_the_start_of_http_still_passes_nginx_t(
    tmp_path: Path, nginx_bin: str, ca_file: Path, where: str
) -> None:
    """nginx fixes the map hash sizes at the first map: hookshift's goes after the line that
    sets them (ingress-nginx writes map_hash_bucket_size into every config it renders)."""
    config = copy_case("location_include", tmp_path)
    text = config.read_text()
    if where == "in the http block":
        sizes = "    map_hash_bucket_size 128;\n"
    else:
        (config.parent / "hashes.conf").write_text("map_hash_max_size 4096;\n")
        sizes = "    include hashes.conf;\n"
    config.write_text(text.replace("http {\n", "http {\n    access_log logs/a.log;\n" + sizes))
    original = snapshot(config.parent)
    applied = apply_plan(
        _plan(config, ca_file),
        nginx_bin=nginx_bin,
        backup_dir=tmp_path / "bk",
        prefix=config.parent,
    )  # nginx -t passed on the result
    assert applied.changed
    lines = config.read_text().splitlines()
    assert lines.index(sizes.rstrip("\n")) < next(
        i for i, line in enumerate(lines) if line.lstrip().startswith("map $request_uri")
    )
    remove_marked(config, nginx_bin=nginx_bin, backup_dir=tmp_path / "bk2", prefix=config.parent)
    assert snapshot(config.parent) == original


@pytest.mark.e2e
def test_remove_refuses_to_strand_an_edited_line_of_a_block_it_takes_out(
    tmp_path: Path, nginx_bin: str, ca_file: Path
) -> None:
    """An operator changed `return 204;` in hookshift's internal location: taking out the
    rest of the block would leave the edited return at server level, answering every
    callback itself (the vendor gets 200, the app nothing). Remove refuses, writing nothing."""
    config = copy_case("location_include", tmp_path)
    apply_plan(
        _plan(config, ca_file),
        nginx_bin=nginx_bin,
        backup_dir=tmp_path / "bk",
        prefix=config.parent,
    )
    site = config.parent / "servers.conf"
    text = site.read_text()
    assert "return 204;  # hookshift" in text
    site.write_text(text.replace("return 204;  # hookshift", "return 200;  # hookshift", 1))
    edited = snapshot(config.parent)
    with pytest.raises(InputError) as err:
        remove_marked(
            config, nginx_bin=nginx_bin, backup_dir=tmp_path / "bk2", prefix=config.parent
        )
    line = err.value.line()
    assert f"{site}:" in line and "`return 200;  # hookshift` sits inside a block" in line
    assert snapshot(config.parent) == edited
