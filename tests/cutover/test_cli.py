"""The cutover and probe commands' contract: one clear line and exit 2 on bad input, exit 1 and
the gate's name when a gate is not met, and the journal untouched by a refused advance."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e  # every test here starts a process

CONFIG = """\
events {}
http {
    server {
        listen 127.0.0.1:8080;
        location /callback { proxy_pass http://127.0.0.1:9000; }
    }
}
"""


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hookshift", *args], capture_output=True, text=True, check=False
    )


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "nginx.conf"
    path.write_text(CONFIG, encoding="utf-8")
    return path


def test_init_records_baseline_and_status_shows_it(tmp_path: Path, config: Path) -> None:
    state = tmp_path / "cutover.jsonl"
    done = _run("cutover", "init", "--state", str(state), "--config", str(config),
                "--path", "/callback")  # fmt: skip
    assert done.returncode == 0, done.stderr
    status = _run("cutover", "status", "--state", str(state), "--format", "json")
    data = json.loads(status.stdout)
    assert data["stage"] == "baseline" and data["next"] == "mirror-stage"
    assert data["settings"]["config"] == str(config)
    files = data["history"][0]["evidence"]["files"]
    assert list(files) == [str(config)]
    assert (state.parent / (state.name + ".snapshots") / files[str(config)]).read_bytes() == (
        config.read_bytes()
    )


def test_advance_without_the_evidence_refuses_naming_each_gate(
    tmp_path: Path, config: Path
) -> None:
    state = tmp_path / "cutover.jsonl"
    _run("cutover", "init", "--state", str(state), "--config", str(config), "--path", "/callback")
    before = state.read_bytes()
    done = _run("cutover", "advance", "--state", str(state))
    assert done.returncode == 1
    assert "ok   doctor: no errors" in done.stdout
    assert "FAIL stage-probe: no evidence: pass --stage-url and --queue" in done.stdout
    assert "not advancing baseline -> mirror-stage: gate(s) not met: stage-probe" in done.stderr
    assert state.read_bytes() == before
    assert config.read_text(encoding="utf-8") == CONFIG


def test_doctor_errors_block_the_first_advance(tmp_path: Path) -> None:
    broken = tmp_path / "nginx.conf"
    broken.write_text(
        CONFIG.replace(
            "proxy_pass http://127.0.0.1:9000;",
            # the seed's mirror target, without its resolver
            "proxy_pass https://abc123.execute-api.ap-northeast-2.amazonaws.com/dev$request_uri;",
        ),
        encoding="utf-8",
    )
    state = tmp_path / "cutover.jsonl"
    _run("cutover", "init", "--state", str(state), "--config", str(broken), "--path", "/callback")
    done = _run("cutover", "advance", "--state", str(state), "--format", "json")
    assert done.returncode == 1
    gates = {g["gate"]: g for g in json.loads(done.stdout)["gates"]}
    assert gates["doctor"]["passed"] is False
    assert "nginx.conf:" in gates["doctor"]["why"]


@pytest.mark.parametrize("command", ["status", "advance", "rollback"])
def test_a_foreign_state_file_is_one_line_and_exit_2(tmp_path: Path, command: str) -> None:
    state = tmp_path / "nginx.conf"
    state.write_text(CONFIG, encoding="utf-8")
    done = _run("cutover", command, "--state", str(state))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert f"{state}:1: not a hookshift cut-over journal" in lines[0]
    assert state.read_text(encoding="utf-8") == CONFIG


def test_init_over_an_existing_file_refuses_and_leaves_it(tmp_path: Path, config: Path) -> None:
    done = _run("cutover", "init", "--state", str(config), "--config", str(config),
                "--path", "/callback")  # fmt: skip
    assert done.returncode == 2
    assert config.read_text(encoding="utf-8") == CONFIG


def test_rollback_at_baseline_is_bad_input(tmp_path: Path, config: Path) -> None:
    state = tmp_path / "cutover.jsonl"
    _run("cutover", "init", "--state", str(state), "--config", str(config), "--path", "/callback")
    done = _run("cutover", "rollback", "--state", str(state))
    assert done.returncode == 2
    assert "nothing to roll back" in done.stderr


def test_probe_rejects_a_url_that_is_not_https_and_a_bad_queue_source() -> None:
    done = _run("probe", "ftp://example.com/x")
    assert done.returncode == 2 and "is not an https URL" in done.stderr
    done = _run("probe", "https://127.0.0.1:9/x", "--queue", "kafka:topic")
    assert done.returncode == 2 and "is not sqs:QUEUE_URL" in done.stderr


def test_probe_of_a_closed_port_says_there_was_no_answer() -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    done = _run("probe", f"https://127.0.0.1:{port}/prod/callback", "--format", "json")
    assert done.returncode == 1
    findings = json.loads(done.stdout)["findings"]
    assert [f["code"] for f in findings] == ["tls-connect"]
    assert f"port {port} is reachable" in findings[0]["fix"]


def test_an_edit_outside_the_cut_over_is_refused_and_a_failed_adopt_records_nothing(
    tmp_path: Path, config: Path
) -> None:
    state = tmp_path / "cutover.jsonl"
    _run("cutover", "init", "--state", str(state), "--config", str(config), "--path", "/callback")
    config.write_text(CONFIG.replace("listen 127.0.0.1:8080;", "listen 127.0.0.1:8081;"),
                      encoding="utf-8")  # fmt: skip
    refused = _run("cutover", "advance", "--state", str(state))
    assert refused.returncode == 2
    assert "changed outside the cut-over since entry #1 (baseline)" in refused.stderr
    assert "--adopt-edits" in refused.stderr
    before = state.read_bytes()
    adopted = _run("cutover", "advance", "--state", str(state), "--adopt-edits")
    assert adopted.returncode == 1  # the gates refuse (no stage URL): the advance failed
    assert "FAIL stage-probe" in adopted.stdout
    assert state.read_bytes() == before  # so the adopt is not recorded either
    again = _run("cutover", "advance", "--state", str(state))
    assert again.returncode == 2 and "changed outside the cut-over" in again.stderr


def test_a_second_command_on_the_same_journal_is_refused_while_one_runs(
    tmp_path: Path, config: Path
) -> None:
    from hookshift.cutover import journal

    state = tmp_path / "cutover.jsonl"
    _run("cutover", "init", "--state", str(state), "--config", str(config), "--path", "/callback")
    with journal.locked(state):
        done = _run("cutover", "rollback", "--state", str(state))
    assert done.returncode == 1
    assert "another `hookshift cutover` command is running on this journal" in done.stderr


def test_a_foreign_state_file_gets_no_lock_file_beside_it(tmp_path: Path, config: Path) -> None:
    _run("cutover", "advance", "--state", str(config))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nginx.conf"]


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--stage-url", "http://abc.execute-api.ap-northeast-2.amazonaws.com/prod", "not an https"),
        ("--domain-url", "hooks.example.com", "not an https"),
        ("--path", "callback", "does not start with /"),
        ("--stage-url", "https://abc.example:99999/prod", "the port 99999 is out of range"),
        ("--queue", "sqs:https://sqs.example:99999/1/q", "--queue: not a URL"),
        ("--queue", "results", "is not sqs:QUEUE_URL"),
        ("--min-window", "-5", "--min-window is -5.0, expected a number"),
        ("--min-events", "-1", "--min-events is -1, expected a number"),
        ("--probe-timeout", "inf", "--probe-timeout is Infinity"),
        ("--parity-grace", "nan", "--parity-grace is NaN"),
        ("--server-name", "", '--server-name is "", expected text'),
        ("--ca-file", "/nonexistent/ca.pem", "--ca-file /nonexistent/ca.pem: not found"),
        ("--nginx-prefix", "/nonexistent/nginx", "--nginx-prefix /nonexistent/nginx: no such dir"),
        ("--nginx-prefix", "/dev/null", "--nginx-prefix /dev/null: not a directory"),
        ("--queue", "jsonl:/nonexistent/q.jsonl", "--queue jsonl:/nonexistent/q.jsonl: no such"),
        ("--queue", "archive:/nonexistent/a", "--queue archive:/nonexistent/a: archive directory"),
        ("--execution-log", "/nonexistent/x.log", "--execution-log /nonexistent/x.log: no such"),
    ],
)
def test_init_rejects_bad_urls_and_paths_writing_nothing(
    tmp_path: Path, config: Path, option: str, value: str, message: str
) -> None:
    state = tmp_path / "cutover.jsonl"
    args = ["--config", str(config), "--path", "/callback", f"{option}={value}"]
    done = _run("cutover", "init", "--state", str(state), *args)
    assert done.returncode == 2 and message in done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nginx.conf"]


def test_init_records_the_mirror_engine_options_each_stage_applies_with(
    tmp_path: Path, config: Path
) -> None:
    from hookshift.cutover.nginx_ops import SHAPES, mirror_request
    from hookshift.cutover.settings import Settings

    state = tmp_path / "cutover.jsonl"
    done = _run("cutover", "init", "--state", str(state), "--config", str(config),
                "--path", "/callback", "--stage-url", "https://abc.example.test/prod",
                "--stage-dns", "reload", "--mirror-error-log", "mirror.err.log")  # fmt: skip
    assert done.returncode == 0, done.stderr
    status = _run("cutover", "status", "--state", str(state), "--format", "json")
    recorded = json.loads(status.stdout)["settings"]
    assert recorded["stage_dns"] == "reload"
    assert Path(recorded["mirror_error_log"]).is_absolute()
    request = mirror_request(Settings.from_json(recorded), SHAPES["mirror-stage"])
    assert request.stage_dns == "reload"
    assert request.mirror_error_log == Path(recorded["mirror_error_log"])
    # a journal written before these options existed still applies with the engine's defaults
    older = {k: v for k, v in recorded.items() if k not in ("stage_dns", "mirror_error_log")}
    default = mirror_request(Settings.from_json(older), SHAPES["mirror-stage"])
    assert default.stage_dns is None and default.mirror_error_log is None


def test_a_bad_stage_dns_choice_is_a_usage_error(tmp_path: Path, config: Path) -> None:
    done = _run("cutover", "init", "--state", str(tmp_path / "s.jsonl"), "--config", str(config),
                "--path", "/callback", "--stage-dns", "sometimes")  # fmt: skip
    assert done.returncode == 2
    assert "--stage-dns" in done.stderr


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--listen", "abc", "no server listens on abc"),
        ("--listen", "127.0.0.1:9999", "no server listens on 127.0.0.1:9999"),
        ("--resolver", "999.1.1.1", "--resolver '999.1.1.1' is not an IP address"),
        ("--resolver", "abc:xyz", "--resolver 'abc:xyz' is not an IP address"),
        ("--resolver", "127.0.0.1:99999", "the port must be 1-65535"),
        ("--path", "/elsewhere", "no location matches /elsewhere"),
    ],
)
@pytest.mark.parametrize(
    "url", [(), ("--stage-url", "https://abc.execute-api.us-east-1.amazonaws.com/prod")]
)
def test_init_refuses_what_mirror_plan_refuses_writing_nothing(
    tmp_path: Path, config: Path, option: str, value: str, message: str, url: tuple[str, ...]
) -> None:
    """The mirror engine's options are the engine's to judge, with or without a URL yet."""
    state = tmp_path / "cutover.jsonl"
    args = ["--config", str(config), "--path", "/callback", *url, f"{option}={value}"]
    done = _run("cutover", "init", "--state", str(state), *args)
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    plan = _run("mirror", "plan", "--nginx-version", "1.22.1", "--no-dns-check",
                "--stage-url", "https://abc.execute-api.us-east-1.amazonaws.com/prod",
                *args[:4], f"{option}={value}")  # fmt: skip
    assert plan.returncode == 2 and message in plan.stderr, plan.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nginx.conf"]


def test_a_dry_run_leaves_no_lock_file_beside_the_journal(tmp_path: Path, config: Path) -> None:
    state = tmp_path / "cutover.jsonl"
    _run("cutover", "init", "--state", str(state), "--config", str(config), "--path", "/callback")
    before = sorted(p.name for p in tmp_path.iterdir())
    done = _run("cutover", "advance", "--state", str(state), "--dry-run")
    assert done.returncode == 1 and "FAIL stage-probe" in done.stdout, done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert "cutover.jsonl.lock" not in before


def test_a_dry_run_still_waits_for_a_transition_that_holds_the_lock(
    tmp_path: Path, config: Path
) -> None:
    from hookshift.cutover import journal

    state = tmp_path / "cutover.jsonl"
    _run("cutover", "init", "--state", str(state), "--config", str(config), "--path", "/callback")
    with journal.locked(state):
        done = _run("cutover", "advance", "--state", str(state), "--dry-run")
    assert done.returncode == 1
    assert "another `hookshift cutover` command is running on this journal" in done.stderr


def _one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


def _everything(root: Path) -> dict[Path, bytes | None]:
    """Every file and directory under `root`: a file's bytes (None for a directory)."""
    return {p: None if p.is_dir() else p.read_bytes() for p in sorted(root.rglob("*"))}


def _dry_run_then_advance(state: Path, *options: str) -> tuple[str, str]:
    """The dry run's error line and the advance's, each checked to have written nothing (the
    dry run not even a lock file)."""
    before = _everything(state.parent)
    dry = _run("cutover", "advance", "--state", str(state), "--dry-run", *options)
    assert dry.returncode == 2, dry.stdout + dry.stderr
    assert _everything(state.parent) == before
    real = _run("cutover", "advance", "--state", str(state), *options)
    assert real.returncode == 2, real.stdout + real.stderr
    assert {p: v for p, v in _everything(state.parent).items() if p in before} == before
    return _one_line(dry.stderr), _one_line(real.stderr)


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--nginx-bin", "/nonexistent/nginx", "nginx binary not found: /nonexistent/nginx"),
        ("--relay-socket", "/nonexistent/dir/r.sock", "relay socket's directory does not exist"),
        ("--nginx-prefix", "/nonexistent/nginx", "--nginx-prefix /nonexistent/nginx: no such"),
        ("--listen", "127.0.0.1:9999", "no server listens on 127.0.0.1:9999"),
        ("--parity-log", "/nonexistent/logs/p.log", "the directory /nonexistent/logs does not"),
    ],
)
def test_a_dry_run_refuses_in_the_same_line_what_the_advance_refuses_before_writing(
    tmp_path: Path, config: Path, option: str, value: str, message: str
) -> None:
    state = tmp_path / "cutover.jsonl"
    _run("cutover", "init", "--state", str(state), "--config", str(config), "--path", "/callback")
    dry, real = _dry_run_then_advance(state, f"{option}={value}")
    assert dry == real and message in dry


def test_a_dry_run_with_adopt_edits_plans_the_edited_config_as_the_advance_does(
    tmp_path: Path, config: Path
) -> None:
    state = tmp_path / "cutover.jsonl"
    _run("cutover", "init", "--state", str(state), "--config", str(config), "--path", "/callback")
    config.write_text(CONFIG.replace("location /callback", "location /results"), encoding="utf-8")
    dry, real = _dry_run_then_advance(state, "--adopt-edits")
    assert dry == real and "no location matches /callback" in dry


ASK_FOR_ARCHIVE = "pass --archive PATH to drain the mirror-period messages, or --dedup-confirmed"


@pytest.mark.parametrize(
    ("archive", "options", "asked"),
    [
        (True, (), None),  # --archive given at init: not asked for again
        (False, (), ASK_FOR_ARCHIVE),
        (False, ("--dry-run", "--dedup-confirmed"), None),  # the dry run takes it, too
    ],
)
def test_a_failed_parity_leaves_the_drain_unchecked_and_asks_only_for_what_is_missing(
    tmp_path: Path, nginx_bin: str, archive: bool, options: tuple[str, ...], asked: str | None
) -> None:
    from tests.cutover.helpers import force, make

    queue = tmp_path / "queue.jsonl"
    queue.write_text("", encoding="utf-8")
    drain_to = ("--archive", str(tmp_path / "archive")) if archive else ()
    cut = make(tmp_path, nginx_bin, "--queue", f"jsonl:{queue}", *drain_to)
    force(cut, "mirror-stage")
    force(cut, "mirror-domain")
    done = _run("cutover", "advance", "--state", str(cut.state), *options)
    assert done.returncode == 1, done.stderr
    assert "FAIL parity-domain" in done.stdout
    (drain,) = [line for line in done.stdout.splitlines() if " drain: " in line]
    assert drain.startswith(
        "FAIL drain: not checked: parity-domain, parity-domain-window failed (the queue is "
        "drained only once every other gate passes)"
    ), drain
    if asked is None:
        assert "--" not in drain
    else:
        assert drain.endswith(f"; also {asked}")


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        # the engine knows only --stage-url: it would name the wrong option
        ("--domain-url", "http://hooks.example.test", "--domain-url 'http://hooks.example.test' "
         "is not an https URL"),
        ("--probe-timeout", "0", "--probe-timeout: not a number of seconds above 0: 0"),
        ("--ca-file", "/nonexistent/ca.pem", "--ca-file /nonexistent/ca.pem: not found"),
        ("--path", "callback", "--path 'callback' does not start with /"),
        ("--queue", "jsonl:/nonexistent/q.jsonl", "--queue jsonl:/nonexistent/q.jsonl: no such "
         "file"),
        ("--execution-log", "/nonexistent/x.log", "--execution-log /nonexistent/x.log: no such "
         "file"),
    ],
)  # fmt: skip
def test_advance_refuses_an_option_in_the_words_init_refuses_it(
    tmp_path: Path, config: Path, option: str, value: str, message: str
) -> None:
    state = tmp_path / "cutover.jsonl"
    _run("cutover", "init", "--state", str(state), "--config", str(config), "--path", "/callback")
    refused_at_init = _run("cutover", "init", "--state", str(tmp_path / "other.jsonl"),
                           "--config", str(config), "--path", "/callback",
                           f"{option}={value}")  # fmt: skip
    assert refused_at_init.returncode == 2 and message in refused_at_init.stderr
    dry, real = _dry_run_then_advance(state, f"{option}={value}")
    assert dry == real and message in dry, dry


def test_the_snapshots_of_nginx_files_are_their_owners_only(tmp_path: Path, config: Path) -> None:
    """A config only root may read (credentials in it) is not copied where anyone can."""
    import stat

    config.chmod(0o600)
    state = tmp_path / "cutover.jsonl"
    done = _run("cutover", "init", "--state", str(state), "--config", str(config),
                "--path", "/callback")  # fmt: skip
    assert done.returncode == 0, done.stderr
    store = tmp_path / "cutover.jsonl.snapshots"
    assert stat.S_IMODE(store.stat().st_mode) == 0o700
    (kept,) = store.iterdir()
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert kept.read_bytes() == config.read_bytes()


@pytest.mark.parametrize("command", [("advance",), ("advance", "--dry-run"), ("rollback",)])
def test_a_lock_file_that_cannot_be_opened_is_one_line_and_nothing_written(
    tmp_path: Path, config: Path, command: tuple[str, ...]
) -> None:
    """The journal's directory belongs to another user, or something sits at the lock's path:
    the command has not begun."""
    state = tmp_path / "cutover.jsonl"
    _run("cutover", "init", "--state", str(state), "--config", str(config), "--path", "/callback")
    (tmp_path / "cutover.jsonl.lock").mkdir()
    before = _everything(tmp_path)
    done = _run("cutover", *command, "--state", str(state))
    assert done.returncode == 2, done.stdout + done.stderr
    line = _one_line(done.stderr)
    assert f"{state}.lock: cannot write beside the cut-over journal: Is a directory" in line
    assert _everything(tmp_path) == before


def test_init_where_the_journal_cannot_be_written_is_one_line(tmp_path: Path, config: Path) -> None:
    not_a_dir = tmp_path / "a-file"
    not_a_dir.write_text("", encoding="utf-8")
    before = _everything(tmp_path)
    done = _run("cutover", "init", "--state", str(not_a_dir / "cutover.jsonl"),
                "--config", str(config), "--path", "/callback")  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    line = _one_line(done.stderr)
    assert "cannot write beside the cut-over journal: a file stands where a directory must be" in (
        line
    )
    assert _everything(tmp_path) == before


def _journal_with_an_open_transition(tmp_path: Path, config: Path) -> Path:
    """A journal whose last entry is an intent (what a command killed right after writing it
    leaves); nginx untouched, so a command that may write settles it as aborted."""
    from hookshift.cutover import journal, transition
    from hookshift.cutover.settings import Settings

    state = tmp_path / "cutover.jsonl"
    done = _run("cutover", "init", "--state", str(state), "--config", str(config),
                "--path", "/callback")  # fmt: skip
    assert done.returncode == 0, done.stderr
    current = journal.read(state)
    settings = Settings.from_json(current.settings)
    transition.begin(current, settings, op="advance", target="mirror-stage", reload=False,
                     after=None)  # fmt: skip
    return state


@pytest.mark.parametrize("output", ["text", "json"])
def test_status_shows_an_open_transition_when_its_lock_cannot_be_taken(
    tmp_path: Path, config: Path, output: str
) -> None:
    """status is read-only for whoever cannot write beside the journal: it shows the open
    transition as it stands and says why it was not settled."""
    state = _journal_with_an_open_transition(tmp_path, config)
    (tmp_path / "cutover.jsonl.lock").mkdir()  # what cannot be opened, as for a read-only user
    before = _everything(tmp_path)
    done = _run("cutover", "status", "--state", str(state), "--format", output)
    assert done.returncode == 0, done.stderr
    assert _everything(tmp_path) == before
    assert (
        "info: the open transition is shown as it stands, not settled: its lock "
        f"{state}.lock cannot be taken (Is a directory)"
    ) in done.stderr
    if output == "json":
        data = json.loads(done.stdout)
        assert data["open_transition"] == {"seq": 2, "from": "baseline", "to": "mirror-stage"}
    else:
        assert "open:  baseline -> mirror-stage (entry #2, not finished)" in done.stdout


def test_status_with_its_lock_settles_the_same_open_transition(
    tmp_path: Path, config: Path
) -> None:
    """The contrast: with the lock at hand, status records the untouched transition as
    aborted (so the test above shows a difference the lock makes, not another state)."""
    state = _journal_with_an_open_transition(tmp_path, config)
    done = _run("cutover", "status", "--state", str(state), "--format", "json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["open_transition"] is None
    assert "recorded as aborted" in done.stderr


@pytest.mark.parametrize(
    "command",
    [("advance",), ("advance", "--dry-run"), ("rollback",), ("init", "--path", "/callback")],
)
def test_a_symlinked_journal_is_refused_and_neither_it_nor_the_link_is_changed(
    tmp_path: Path, config: Path, command: tuple[str, ...]
) -> None:
    """Written through a temp file and a rename, the link would become a regular file and
    the journal it led to would silently stop being written; followed, a link another user
    planted would redirect root's writes. So it is refused, naming the journal's own path."""
    real = tmp_path / "journals" / "cutover.jsonl"
    real.parent.mkdir()
    done = _run("cutover", "init", "--state", str(real), "--config", str(config),
                "--path", "/callback")  # fmt: skip
    assert done.returncode == 0, done.stderr
    link = tmp_path / "cutover.jsonl"
    link.symlink_to(real if command[0] != "init" else tmp_path / "journals" / "new.jsonl")
    before = _everything(real.parent)
    done = _run("cutover", *command, "--state", str(link), "--config", str(config))
    assert done.returncode == 2, done.stdout + done.stderr
    line = _one_line(done.stderr)
    assert f"{link}: the cut-over journal is a symlink (to " in line
    assert "(fix: if you made the link, pass --state " in line
    assert link.is_symlink() and _everything(real.parent) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cutover.jsonl", "journals", "nginx.conf"]


def test_status_reads_a_symlinked_journal_and_leaves_its_open_transition_as_it_is(
    tmp_path: Path, config: Path
) -> None:
    state = _journal_with_an_open_transition(tmp_path, config)
    link = tmp_path / "link.jsonl"
    link.symlink_to(state)
    before = _everything(tmp_path)
    done = _run("cutover", "status", "--state", str(link))
    assert done.returncode == 0, done.stderr
    assert "open:  baseline -> mirror-stage (entry #2, not finished)" in done.stdout
    assert "not settled: the cut-over journal is a symlink" in done.stderr
    assert link.is_symlink() and _everything(tmp_path) == before


@pytest.mark.parametrize("how", ["group-writable directory", "another user's journal"])
def test_a_journal_another_user_could_replace_is_refused_before_anything_runs(
    tmp_path: Path, config: Path, how: str
) -> None:
    """Its header names the nginx binary hookshift runs and the files it rewrites, as root."""
    shared = tmp_path / "shared"
    shared.mkdir()
    state = shared / "cutover.jsonl"
    done = _run("cutover", "init", "--state", str(state), "--config", str(config),
                "--path", "/callback")  # fmt: skip
    assert done.returncode == 0, done.stderr
    if how == "group-writable directory":
        shared.chmod(0o770)
        says = f"{shared} may be written by other users (mode 0770)"
    else:
        if os.geteuid() != 0:
            pytest.skip("only root can give a file to another user")
        os.chown(state, 65534, 65534)
        says = f"{state} belongs to another user (uid 65534)"
    before = _everything(tmp_path)
    for command in (("advance",), ("advance", "--dry-run"), ("rollback",)):
        done = _run("cutover", *command, "--state", str(state))
        assert done.returncode == 2, done.stdout + done.stderr
        line = _one_line(done.stderr)
        assert f"{state}: {says}: another user could replace the cut-over journal" in line
        assert _everything(tmp_path) == before
    assert _run("cutover", "status", "--state", str(state)).returncode == 0


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A directory on a small tmpfs of its own, to be filled (skipped where one cannot be
    mounted: not root, or no mount in this container)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs",
                              str(disk)], capture_output=True, check=False)  # fmt: skip
    if mounted.returncode != 0:
        pytest.skip("a tmpfs cannot be mounted here")
    try:
        yield disk
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def _fill(disk: Path) -> None:
    """Take every byte left on `disk`."""
    with (disk / "filler").open("ab", buffering=0) as out, contextlib.suppress(OSError):
        while out.write(b"\0" * 4096):  # unbuffered: nothing is left to fail at close
            pass


def test_init_on_a_full_disk_is_one_line_and_leaves_nothing(full_disk: Path, config: Path) -> None:
    _fill(full_disk)
    state = full_disk / "cutover.jsonl"
    done = _run("cutover", "init", "--state", str(state), "--config", str(config),
                "--path", "/callback")  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    line = _one_line(done.stderr)
    assert "cannot write beside the cut-over journal: No space left on device (fix: free " in line
    assert sorted(p.name for p in full_disk.iterdir()) == ["filler"]


def test_on_a_full_disk_status_shows_and_the_others_refuse_in_one_line(
    full_disk: Path, config: Path
) -> None:
    """status shows the open transition it cannot settle; advance and rollback, which must
    write their intent first, refuse before touching nginx."""
    state = _journal_with_an_open_transition(full_disk, config)
    _fill(full_disk)
    before = _everything(full_disk)
    done = _run("cutover", "status", "--state", str(state))
    assert done.returncode == 0, done.stderr
    assert "open:  baseline -> mirror-stage (entry #2, not finished)" in done.stdout
    assert "not settled: cannot write beside the cut-over journal: No space left" in done.stderr
    for command in (("advance",), ("advance", "--dry-run"), ("rollback",)):
        done = _run("cutover", *command, "--state", str(state))
        assert done.returncode == 2, done.stdout + done.stderr
        line = _one_line(done.stderr)
        assert f"{state}: cannot write beside the cut-over journal: No space left" in line
        assert _everything(full_disk) == {**before, full_disk / "cutover.jsonl.lock": b""}
    assert config.read_text(encoding="utf-8") == CONFIG
