"""Files verify writes are the owner's only (0600; directories it makes 0700), whatever the
umask: they hold callbacks, or the ids, keys, hashes and counts that point at them. The
metrics textfile is the exception: node_exporter reads it as a user of its own."""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from hookshift.errors import InputError
from hookshift.logfile import precreate_log
from hookshift.verify.archive import INDEX_NAME, META, Archive, archive_queue_url
from hookshift.verify.follow import FollowState, write_state
from hookshift.verify.watch import Outputs, Watcher, publish
from tests.verify.data import T0, body, message, nginx_line, rid, write_lines, write_messages
from tests.verify.test_cli import _clean, hookshift


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def open_umask() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def _modes(directory: Path) -> dict[str, int]:
    return {p.name: mode(p) for p in sorted(directory.iterdir())}


def test_archive_directory_segments_index_and_record_are_owner_only(tmp_path: Path) -> None:
    root = tmp_path / "new" / "archive"
    url = "https://sqs.ap-northeast-2.amazonaws.com/123456789012/cb"
    with Archive(root, url) as archive:
        assert archive.append([message("m1", body(1), 1)]) == 1
        # while it is open SQLite keeps the index's -wal and -shm beside it
        files = _modes(root)
        assert {INDEX_NAME, INDEX_NAME + "-wal", INDEX_NAME + "-shm", META} <= set(files)
        assert any(name.endswith(".jsonl") for name in files)
        assert set(files.values()) == {0o600}, files
    assert mode(root) == 0o700 and mode(root.parent) == 0o700  # and the parent it made
    assert archive_queue_url(root) == url


@pytest.mark.e2e
def test_a_report_file_is_owner_only_also_over_an_older_open_one(tmp_path: Path) -> None:
    app, queue = _clean(tmp_path)
    out = tmp_path / "report.html"
    out.write_text("old")
    out.chmod(0o644)
    fresh = tmp_path / "fresh.json"
    for path, fmt in ((out, "html"), (fresh, "json")):
        result = hookshift(
            "verify", "parity", "--app", f"nginx:{app}", "--queue", f"jsonl:{queue}",
            "--format", fmt, "--out", str(path),
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert mode(path) == 0o600


def test_the_parity_log_is_made_as_debian_makes_nginx_logs(tmp_path: Path) -> None:
    log = tmp_path / "hookshift-parity.log"
    assert precreate_log(log)
    assert mode(log) == 0o640 and log.read_bytes() == b""
    if os.geteuid() == 0:
        info = log.stat()
        assert pwd.getpwuid(info.st_uid).pw_name == "www-data"
        assert grp.getgrgid(info.st_gid).gr_name == "adm"
    # an existing, world-readable log keeps its lines and loses the world's read
    log.write_text("kept\n")
    log.chmod(0o644)
    assert not precreate_log(log)
    assert mode(log) == 0o640 and log.read_text() == "kept\n"


def test_the_parity_log_path_may_not_be_a_symlink(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("x")
    secret.chmod(0o600)
    link = tmp_path / "hookshift-parity.log"
    link.symlink_to(secret)
    with pytest.raises(InputError, match="symlink"):
        precreate_log(link)
    assert mode(secret) == 0o600 and secret.stat().st_uid == os.geteuid()


def test_an_archive_made_open_is_closed_when_pulled_into_again(tmp_path: Path) -> None:
    root = tmp_path / "archive"
    root.mkdir(mode=0o755)
    old = root / "seg-old.jsonl"
    old.write_text('{"MessageId": "m0", "Body": "x"}\n')
    old.chmod(0o644)
    with Archive(root) as archive:
        assert "m0" in archive
    assert mode(root) == 0o700 and mode(old) == 0o600


def test_an_index_left_open_by_an_older_run_is_closed_with_its_companions(tmp_path: Path) -> None:
    root = tmp_path / "archive"
    with Archive(root) as archive:
        archive.append([message("m1", body(1), 1)])
    (root / INDEX_NAME).chmod(0o644)
    (root / (INDEX_NAME + "-wal")).write_bytes(b"")  # a kill left it behind
    (root / (INDEX_NAME + "-wal")).chmod(0o644)
    with Archive(root) as archive:
        assert "m1" in archive
        assert set(_modes(root).values()) == {0o600}


def _watched_files(root: Path) -> tuple[str, str]:
    app = write_lines(root / "parity.log", [nginx_line(rid(1), T0, body(1))])
    queue = write_messages(
        root / "archive" / "seg-1.jsonl", [message("m1", body(1), T0 + 9, request_id=rid(1))]
    )
    return f"nginx:{app}", f"archive:{queue.parent}"


def test_the_watch_state_is_owner_only_and_the_metrics_file_readable(tmp_path: Path) -> None:
    app, queue = _watched_files(tmp_path)
    state_dir = tmp_path / "new" / "watch"
    textfile = tmp_path / "textfile"  # node_exporter's textfile directory
    textfile.mkdir()
    outputs = Outputs(metrics_file=textfile / "hookshift.prom")
    with Watcher(app, queue, state_dir) as watcher:
        state = watcher.update()
        publish(state, state_dir, outputs, lambda level, text: None)
        files = _modes(state_dir)
        assert {"watch.sqlite", "watch.sqlite-wal", "watch.sqlite-shm"} <= set(files)
        assert {"watch-state.json", "alert-state.json"} <= set(files)
        assert set(files.values()) == {0o600}, files
    assert mode(state_dir) == 0o700 and mode(state_dir.parent) == 0o700
    # counts and times only, read by node_exporter as a user of its own
    assert mode(textfile / "hookshift.prom") == 0o644


def test_a_state_directory_made_by_hand_keeps_its_mode_and_old_files_are_closed(
    tmp_path: Path,
) -> None:
    app, queue = _watched_files(tmp_path)
    state_dir = tmp_path / "watch"
    state_dir.mkdir(mode=0o750)  # an operator's choice (`install -d -m 0750`)
    with Watcher(app, queue, state_dir) as watcher:
        watcher.update()
    for name in ("watch.sqlite", "watch-state.json"):
        (state_dir / name).chmod(0o644)  # an older hookshift wrote them so
    with Watcher(app, queue, state_dir) as watcher:
        watcher.update()
        assert set(_modes(state_dir).values()) == {0o600}
    assert mode(state_dir) == 0o750


def test_a_state_directory_that_holds_the_metrics_file_is_readable_by_node_exporter(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from hookshift.cli import main

    app, queue = _watched_files(tmp_path)
    state_dir = tmp_path / "watch"
    for metrics, expected in ((None, 0o700), (state_dir / "hookshift.prom", 0o755)):
        shutil.rmtree(state_dir, ignore_errors=True)
        extra = ["--metrics-file", str(metrics)] if metrics else ["--html", f"{state_dir}/p.html"]
        with pytest.raises(SystemExit) as exited:
            main(["verify", "watch", "--app", app, "--queue", queue, "--state", str(state_dir),
                  "--once", *extra])  # fmt: skip
        assert exited.value.code == 0, capsys.readouterr().err
        assert mode(state_dir) == expected
        assert mode(state_dir / "watch-state.json") == 0o600


def test_the_pull_heartbeat_is_owner_only_also_over_an_older_open_one(tmp_path: Path) -> None:
    path = tmp_path / "follow-state.json"
    write_state(path, FollowState(queue_url="https://sqs.x/1/q", archive="a", pid=1, started_at=0))
    assert mode(path) == 0o600
    path.chmod(0o644)
    write_state(path, FollowState(queue_url="https://sqs.x/1/q", archive="a", pid=1, started_at=1))
    assert mode(path) == 0o600
