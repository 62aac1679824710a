"""The `hookshift verify` commands as a user runs them: exit 0 pass, 1 fail, 2 bad input."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from hookshift.verify.parity import PHASES
from tests.verify.conftest import Scenario
from tests.verify.data import T0, body, message, nginx_line, rid, write_lines, write_messages

pytestmark = pytest.mark.e2e  # every test here starts a process


def hookshift(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hookshift", *args], capture_output=True, text=True, timeout=120
    )


def _clean(tmp_path: Path) -> tuple[Path, Path]:
    app = write_lines(
        tmp_path / "p.log", [nginx_line(rid(n), T0 + n * 1000, body(n)) for n in range(3)]
    )
    queue = write_messages(
        tmp_path / "q.jsonl",
        [message(f"m{n}", body(n), T0 + n * 1000 + 9, request_id=rid(n)) for n in range(3)],
    )
    return app, queue


def test_parity_passes_with_exit_0_and_a_text_report(tmp_path: Path) -> None:
    app, queue = _clean(tmp_path)
    result = hookshift("verify", "parity", "--app", f"nginx:{app}", "--queue", f"jsonl:{queue}")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("parity: PASS - all 3 compared callback(s)")
    assert "matched: 3" in result.stdout


def test_parity_draws_its_phases_on_a_terminal_and_nothing_in_a_pipe(tmp_path: Path) -> None:
    app, queue = _clean(tmp_path)
    args = [sys.executable, "-m", "hookshift", "verify", "parity"]
    args += ["--app", f"nginx:{app}", "--queue", f"jsonl:{queue}", "--format", "json"]
    master, terminal = pty.openpty()
    with subprocess.Popen(args, stdout=subprocess.PIPE, stderr=terminal) as proc:
        os.close(terminal)
        drawn = b""
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            drawn += chunk
        stdout = proc.stdout.read() if proc.stdout else b""
    os.close(master)
    assert proc.returncode == 0
    assert json.loads(stdout)["verdict"] == "pass"  # the data on stdout is untouched
    text = drawn.decode()
    for phase in (*PHASES, "done"):
        assert phase in text
    piped = hookshift("verify", "parity", "--app", f"nginx:{app}", "--queue", f"jsonl:{queue}")
    assert piped.returncode == 0 and piped.stderr == ""


def test_parity_fails_with_exit_1_and_writes_the_report_file(scenario: Scenario) -> None:
    out = scenario.root / "report.json"
    result = hookshift(
        "verify",
        "parity",
        "--app",
        f"nginx:{scenario.app_glob}",
        "--queue",
        f"jsonl:{scenario.queue_file}",
        "--format",
        "json",
        "--out",
        str(out),
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert "report written to" in result.stderr
    data = json.loads(out.read_text())
    assert data["verdict"] == "fail" and data["counts"]["missing_in_queue"] == 1


def test_bad_input_is_one_line_with_exit_2_and_no_report(tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    result = hookshift(
        "verify",
        "parity",
        "--app",
        f"nginx:{tmp_path}/missing.log",
        "--queue",
        f"jsonl:{tmp_path}/q.jsonl",
        "--format",
        "html",
        "--out",
        str(out),
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "no file matches" in result.stderr
    assert not out.exists()
    bad_key = hookshift(
        "verify", "parity", "--app", "nginx:x", "--queue", "jsonl:y", "--key", "xml:MSGID"
    )
    assert bad_key.returncode == 2 and "unknown key part 'xml:MSGID'" in bad_key.stderr
    bad_time = hookshift(
        "verify", "parity", "--app", "nginx:x", "--queue", "jsonl:y", "--since", "yesterday"
    )
    assert bad_time.returncode == 2 and "--since" in bad_time.stderr


def test_strict_malformed_is_exit_2(tmp_path: Path) -> None:
    app, queue = _clean(tmp_path)
    with app.open("a") as fh:
        fh.write("garbage\n")
    lenient = hookshift("verify", "parity", "--app", f"nginx:{app}", "--queue", f"jsonl:{queue}")
    assert lenient.returncode == 0 and "1 malformed record(s) skipped" in lenient.stderr
    assert f"{app}:4: not JSON" in lenient.stdout
    strict = hookshift(
        "verify", "parity", "--app", f"nginx:{app}", "--queue", f"jsonl:{queue}", "--strict"
    )
    assert strict.returncode == 2 and f"{app}:4" in strict.stderr


def test_heal_dry_run_says_what_it_would_send(scenario: Scenario) -> None:
    out = scenario.root / "report.json"
    hookshift(
        "verify",
        "parity",
        "--app",
        f"nginx:{scenario.app_glob}",
        "--queue",
        f"jsonl:{scenario.queue_file}",
        "--format",
        "json",
        "--out",
        str(out),
        "--stage-url",
        "https://stage.example.test/prod",
    )
    result = hookshift(
        "verify", "heal", "--report", str(out), "--to", "https://stage.example.test/prod/callback"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("would send 1 replay(s)")
    assert rid(6) in result.stdout and "add --apply" in result.stderr
