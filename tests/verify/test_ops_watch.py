"""`verify watch` run as a service is run: on a disk that fills up, with a metrics directory it
may not write, beside logrotate compressing a log, and started a moment before the pull it
watches. None of these may end the watch with a traceback (systemd would restart it every
10 s, each time with a traceback and no word of what is wrong), nor silently drop a check."""

from __future__ import annotations

import contextlib
import errno
import gzip
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.in_process import run_captured
from tests.verify.data import T0, body, message, nginx_line, rid, write_lines, write_messages

ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="mounts a tmpfs (root only)")


def _files(root: Path, app: int, queue: int) -> tuple[Path, Path]:
    log = write_lines(
        root / "parity.log", [nginx_line(rid(n), T0 + n * 1000, body(n)) for n in range(app)]
    )
    messages = [
        message(f"m{n}", body(n), T0 + n * 1000 + 40, request_id=rid(n)) for n in range(queue)
    ]
    write_messages(root / "archive" / "seg-1.jsonl", messages)
    return log, root / "archive"


def _append(log: Path, numbers: range) -> None:
    with log.open("a", encoding="utf-8") as fh:
        fh.writelines(nginx_line(rid(n), T0 + n * 1000, body(n)) + "\n" for n in numbers)


@contextlib.contextmanager
def _tmpfs(path: Path, size: str, *options: str) -> Iterator[Path]:
    """A small tmpfs at `path`: a disk that fills up, or a read-only one."""
    path.mkdir(parents=True, exist_ok=True)
    argv = ["mount", "-t", "tmpfs", "-o", ",".join([f"size={size}", *options]), "tmpfs", str(path)]
    mounted = subprocess.run(argv, capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


def _fill(directory: Path) -> Path:
    """A file that takes every free byte of `directory`'s disk."""
    filler = directory / "filler"
    with filler.open("wb") as fh:
        try:
            while True:
                fh.write(b"\0" * 65536)
                fh.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return filler


class _Lines:
    """The lines a running process writes to one of its streams, waited for one by one."""

    def __init__(self, stream: Iterator[str]) -> None:
        self.lines: list[str] = []
        self._changed = threading.Condition()
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream: Iterator[str]) -> None:
        for line in stream:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()

    def wait_for(self, wanted: Callable[[str], bool], after: int = 0) -> int:
        """The index of the first line from `after` on that is `wanted` (waits for it)."""
        with self._changed:
            found = self._changed.wait_for(
                lambda: any(wanted(line) for line in self.lines[after:]), timeout=120
            )
            assert found, self.lines
            return next(i for i in range(after, len(self.lines)) if wanted(self.lines[i]))


@contextlib.contextmanager
def _watching(root: Path, *extra: str) -> Iterator[tuple[_Lines, _Lines]]:
    argv = [
        sys.executable, "-m", "hookshift", "verify", "watch",
        "--app", f"nginx:{root / 'parity.log'}", "--queue", f"archive:{root / 'archive'}",
        "--state", str(root / "state"),
        "--interval", "1s", "--grace", "0", *extra,
    ]  # fmt: skip
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stderr is not None
    try:
        yield _Lines(process.stdout), _Lines(process.stderr)
        assert process.poll() is None, "the watch ended"
    finally:
        process.terminate()
        process.wait(60)


@pytest.mark.e2e
@ROOT_ONLY
def test_a_full_disk_holds_a_running_watch_back_with_one_line_and_it_catches_up_after(
    tmp_path: Path,
) -> None:
    log, _ = _files(tmp_path, app=5, queue=5)
    with _tmpfs(tmp_path / "state", "4m") as state, _watching(tmp_path) as (out, err):
        out.wait_for(lambda line: line.startswith("parity pass:"))
        filler = _fill(state)
        _append(log, range(5, 2005))  # 2000 callbacks the mirror lost, while the disk is full
        warned = err.wait_for(lambda line: "cannot write the watch's state" in line)
        assert err.lines[warned].startswith(f"warning: cannot write the watch's state in {state} ")
        assert "database or disk is full" in err.lines[warned]
        filler.unlink()
        err.wait_for(lambda line: line == "ok: the watch writes its files again", warned)
        done = out.wait_for(lambda line: "app 2005," in line)
        assert out.lines[done].startswith("parity fail: 2000 callback(s)")
    said = [line for line in err.lines if "cannot write" in line or "Traceback" in line]
    assert said == [err.lines[warned]]  # once for the incident, however many updates it held


@pytest.mark.e2e
@ROOT_ONLY
def test_a_watch_started_on_a_full_disk_says_so_and_does_not_call_its_state_damaged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _files(tmp_path, app=3, queue=3)
    with _tmpfs(tmp_path / "state", "64k") as state:
        _fill(state)
        code, out, err = run_captured(
            capsys, "verify", "watch", "--app", f"nginx:{tmp_path / 'parity.log'}",
            "--queue", f"archive:{tmp_path / 'archive'}", "--state", str(state), "--once",
        )  # fmt: skip
    assert (code, out) == (1, "")
    assert err.startswith(f"hookshift: error: cannot write the watch's state in {state} (")
    assert "damaged" not in err and err.count("\n") == 1


@pytest.mark.e2e
@ROOT_ONLY
def test_a_metrics_directory_the_watch_cannot_write_leaves_its_alerts_working(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _files(tmp_path, app=6, queue=4)
    alerts = tmp_path / "alerts"
    with _tmpfs(tmp_path / "textfile", "1m", "ro") as textfile:
        code, out, err = run_captured(
            capsys, "verify", "watch", "--app", f"nginx:{tmp_path / 'parity.log'}",
            "--queue", f"archive:{tmp_path / 'archive'}", "--state", str(tmp_path / "state"),
            "--grace", "0", "--once", "--metrics-file", str(textfile / "hookshift.prom"),
            "--alert-cmd", f'echo "$HOOKSHIFT_ALERT" >> {alerts}',
        )  # fmt: skip
    assert code == 1 and out.startswith("parity fail: 2 callback(s)"), err
    assert err.splitlines()[0] == (
        f"warning: cannot write the metrics file {textfile / 'hookshift.prom'}: Read-only file "
        "system; the watch goes on and writes it at the next update that can (fix: free space "
        "on its disk, or let the watch's user write its directory)"
    )
    assert alerts.read_text() == "missing_in_queue\n"


def test_a_log_gzip_has_only_begun_to_compress_is_waited_for(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """logrotate's compress: gzip writes parity.log.1.gz beside parity.log.1, and removes the
    latter when done; meanwhile the .gz holds its header and not yet a whole line."""
    lines = [nginx_line(rid(n), T0 + n * 1000, body(n)) for n in range(6)]
    write_lines(tmp_path / "parity.log.1", lines[:3])
    write_lines(tmp_path / "parity.log", lines[3:])
    whole = gzip.compress("".join(line + "\n" for line in lines[:3]).encode())
    (tmp_path / "parity.log.1.gz").write_bytes(whole[:12])
    write_messages(
        tmp_path / "archive" / "seg-1.jsonl",
        [message(f"m{n}", body(n), T0 + n * 1000 + 40, request_id=rid(n)) for n in range(6)],
    )
    argv = ["verify", "watch", "--app", f"nginx:{tmp_path / 'parity.log*'}", "--once"]
    argv += ["--queue", f"archive:{tmp_path / 'archive'}", "--state", str(tmp_path / "state")]
    code, out, err = run_captured(capsys, *argv)
    assert (code, err) == (0, "")
    assert out.startswith("parity pass: all 6 compared callback(s) reached the queue intact")
    # gzip done: the .gz alone holds those lines, already read
    (tmp_path / "parity.log.1.gz").write_bytes(whole)
    (tmp_path / "parity.log.1").unlink()
    code, out, err = run_captured(capsys, *argv)
    assert (code, err) == (0, "")
    assert "(app 6, queue 6, matched 6," in out


@pytest.mark.e2e
def test_a_pull_heartbeat_that_appears_after_the_watch_started_is_checked(tmp_path: Path) -> None:
    """The units start the pull and the watch together: the watch is up before the pull has
    written its state. Its heartbeat must be checked all the same once it is there."""
    _files(tmp_path, app=3, queue=3)
    with _watching(tmp_path, "--stale-after", "15m") as (out, err):
        out.wait_for(lambda line: line.startswith("parity pass:"))
        hour_ago = time.time() - 3600
        state = {
            "queue_url": "https://sqs.ap-northeast-2.amazonaws.com/123456789012/cb",
            "archive": str(tmp_path / "archive"),
            "pid": 1,
            "started_at": hour_ago - 60,
            "last_success": hour_ago,
        }
        (tmp_path / "archive" / "follow-state.json").write_text(json.dumps(state))
        alerted = err.wait_for(lambda line: line.startswith("error: alert:"))
    assert err.lines[alerted].startswith("error: alert: nothing has pulled from the queue for ")
    assert err.lines[alerted].endswith(" (more than 15 min)")
