"""Directories nginx needs and does not create: the relay socket's (unless it is hookshift's own,
which nginx creates) and those of hookshift's logs (nginx opens them at ``nginx -t`` and creates
no directory for a log). `mirror apply` refuses one in a line naming the option it came from,
before the diff is shown or anything is written; `mirror plan` warns in the same words (a plan
may be made on another machine than the one it is applied on).

No process is started: the refusal comes before apply runs nginx, and nginx is given by its
version (``--nginx-version``) with a binary that does not exist.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hookshift import mirror
from hookshift.errors import InputError
from tests.in_process import run_in_process
from tests.mirror.helpers import STAGE_URL, copy_case, snapshot

ERROR = "hookshift: error: "


def _args(config: Path, ca_file: Path, *extra: str) -> list[str]:
    return [
        "--config", str(config), "--path", "/kakao/result", "--stage-url", STAGE_URL,
        "--trusted-ca", str(ca_file), "--relay-socket", str(config.parent / "r.sock"),
        "--no-dns-check", "--stage-dns", "runtime",
        "--nginx-bin", "/nonexistent/nginx", "--nginx-version", "1.22.1", *extra,
    ]  # fmt: skip


def _apply_refuses(config: Path, ca_file: Path, tmp_path: Path, *extra: str) -> str:
    """The one line `mirror apply` refuses with; nothing is shown on stdout or written."""
    before = snapshot(config.parent)
    backups = tmp_path / "bk"
    code, stdout, stderr = run_in_process(
        "mirror", "apply", *_args(config, ca_file, *extra), "--backup-dir", str(backups)
    )
    assert code == 2 and stdout == "", stderr  # no diff
    (line,) = stderr.splitlines()
    assert line.startswith(ERROR) and "(fix: " in line, line
    assert snapshot(config.parent) == before and not backups.exists()
    return line.removeprefix(ERROR)


def _plan_warnings(config: Path, ca_file: Path, *extra: str) -> list[str]:
    code, stdout, stderr = run_in_process("mirror", "plan", *_args(config, ca_file, *extra))
    assert code == 0 and stdout.startswith("--- a"), stderr
    return [ln.removeprefix("warning: ") for ln in stderr.splitlines() if ln.startswith("warning:")]


def test_a_parity_log_in_a_missing_directory_is_refused_by_apply_and_warned_of_by_plan(
    tmp_path: Path, ca_file: Path
) -> None:
    config = copy_case("crlf", tmp_path)
    parity = tmp_path / "x" / "log" / "hookshift-parity.log"
    line = _apply_refuses(config, ca_file, tmp_path, "--parity-log", str(parity))
    # the relay's error log goes beside the parity log: one line for the one directory
    assert line == (
        f"--parity-log {parity} (and the relay's error log beside it): the directory "
        f"{parity.parent} does not exist, and nginx does not create log directories "
        "(fix: create it, or pass --parity-log in a directory that exists)"
    )
    assert line in _plan_warnings(config, ca_file, "--parity-log", str(parity))


@pytest.mark.parametrize(
    ("options", "where", "fix"),
    [
        (
            ("--mirror-error-log", "{tmp}/missing/mirror.error.log"),
            "--mirror-error-log {tmp}/missing/mirror.error.log",
            "pass --mirror-error-log in a directory that exists",
        ),
        (
            (
                "--parity-log", "{tmp}/missing/parity.log",
                "--mirror-error-log", "{tmp}/missing/mirror.error.log",
            ),
            "--parity-log {tmp}/missing/parity.log and "
            "--mirror-error-log {tmp}/missing/mirror.error.log",
            "pass --parity-log and --mirror-error-log in a directory that exists",
        ),
        (
            ("--no-parity-log", "--mirror-error-log", "{tmp}/missing/mirror.error.log"),
            "--mirror-error-log {tmp}/missing/mirror.error.log",
            "pass --mirror-error-log in a directory that exists",
        ),
    ],
    ids=["error-log", "both", "error-log-alone"],
)  # fmt: skip
def test_each_log_directory_is_named_by_the_option_it_came_from(
    tmp_path: Path, ca_file: Path, options: tuple[str, ...], where: str, fix: str
) -> None:
    config = copy_case("crlf", tmp_path)
    given = [o.format(tmp=tmp_path) for o in options]
    if "--parity-log" not in given and "--no-parity-log" not in given:
        given += ["--parity-log", str(config.parent / "logs" / "parity.log")]
    line = _apply_refuses(config, ca_file, tmp_path, *given)
    assert line.startswith(f"{where.format(tmp=tmp_path)}: the directory {tmp_path}/missing ")
    assert line.endswith(f"(fix: create it, or {fix})")
    assert line in _plan_warnings(config, ca_file, *given)


def test_the_default_place_beside_the_access_log_is_named_with_that_access_log(
    tmp_path: Path, ca_file: Path
) -> None:
    config = copy_case("crlf", tmp_path)  # `access_log logs/access.log main;` at line 12
    (config.parent / "logs").rmdir()
    prefix = ["--nginx-prefix", str(config.parent)]
    line = _apply_refuses(config, ca_file, tmp_path, *prefix)
    assert line == (
        "the parity log and the relay's error log, placed by default beside the access log "
        f"nginx writes for the callback (`access_log logs/access.log main` at {config}:12): the "
        f"directory {config.parent}/logs does not exist, and nginx does not create log "
        "directories (fix: create it, or pass --parity-log and --mirror-error-log in a "
        "directory that exists)"
    )
    assert line in _plan_warnings(config, ca_file, *prefix)


def test_plan_warns_of_a_missing_relay_directory_in_the_words_apply_refuses_it(
    tmp_path: Path, ca_file: Path
) -> None:
    config = copy_case("crlf", tmp_path)
    relay = ["--relay-socket", str(tmp_path / "missing" / "dir" / "relay.sock")]
    line = _apply_refuses(config, ca_file, tmp_path, *relay)
    assert line.startswith(f"the relay socket's directory does not exist: {tmp_path}/missing/dir")
    assert line in _plan_warnings(config, ca_file, *relay)


def test_hookshift_s_own_relay_directory_needs_only_its_parent(
    tmp_path: Path, ca_file: Path
) -> None:
    """nginx creates a relay directory named hookshift* itself (docs/isolation.md)."""
    config = copy_case("crlf", tmp_path)
    own = ["--relay-socket", str(tmp_path / "hookshift" / "relay.sock")]
    assert not any("does not exist" in w for w in _plan_warnings(config, ca_file, *own))
    deeper = ["--relay-socket", str(tmp_path / "missing" / "hookshift" / "relay.sock")]
    line = _apply_refuses(config, ca_file, tmp_path, *deeper)
    assert line.startswith(f"the relay socket's directory does not exist: {tmp_path}/missing ")


def test_the_api_refuses_before_writing_and_its_plan_carries_the_warning(
    tmp_path: Path, ca_file: Path
) -> None:
    config = copy_case("crlf", tmp_path)
    before = snapshot(config.parent)
    request = mirror.MirrorRequest(
        config=config,
        path="/kakao/result",
        stage_url=STAGE_URL,
        trusted_ca=ca_file,
        relay_socket=str(config.parent / "r.sock"),
        parity_log=tmp_path / "x" / "parity.log",
        nginx_bin="/nonexistent/nginx",
        nginx_version="1.22.1",
        dns_check=False,
    )
    planned = mirror.plan(request)
    (warning,) = [w for w in planned.warnings if "does not exist" in w]
    assert warning.startswith(f"--parity-log {tmp_path}/x/parity.log ")
    assert warning in planned.to_json()["warnings"]
    with pytest.raises(InputError) as refused:
        mirror.apply(request, backup_dir=tmp_path / "bk")
    assert refused.value.line() == warning
    assert snapshot(config.parent) == before


def test_a_relative_log_is_checked_under_nginx_s_prefix_and_not_when_it_is_unknown(
    tmp_path: Path, ca_file: Path
) -> None:
    config = copy_case("crlf", tmp_path)
    relative = ["--parity-log", "nowhere/parity.log"]
    # no binary to say nginx's prefix, no -p: where nginx opens it is not known here
    assert not any("does not exist" in w for w in _plan_warnings(config, ca_file, *relative))
    prefix = ["--nginx-prefix", str(config.parent)]
    line = _apply_refuses(config, ca_file, tmp_path, *relative, *prefix)
    assert line.startswith(
        f"--parity-log nowhere/parity.log (and the relay's error log beside it): the directory "
        f"{config.parent}/nowhere does not exist"
    )


@pytest.mark.e2e  # asks the real nginx -V for its compiled prefix
def test_a_relative_log_under_the_compiled_prefix_names_nginx_prefix_in_the_fix(
    tmp_path: Path, ca_file: Path, nginx_bin: str
) -> None:
    """An nginx run with -p resolves `access_log logs/...` under it; without --nginx-prefix,
    hookshift resolves it under the compiled prefix, where logs/ is usually missing."""
    config = copy_case("crlf", tmp_path)  # `access_log logs/access.log main;`
    compiled = Path("/usr/share/nginx/logs")  # Debian's nginx: --prefix=/usr/share/nginx
    if compiled.exists():
        pytest.skip(f"{compiled} exists on this machine: nothing is missing there")
    line = _apply_refuses(config, ca_file, tmp_path, "--nginx-bin", nginx_bin)
    assert f"the directory {compiled} does not exist" in line
    assert "(fix: pass --nginx-prefix DIR if nginx is started with -p DIR" in line
    prefix = ["--nginx-prefix", str(config.parent)]
    (config.parent / "logs").rmdir()
    with_prefix = _apply_refuses(config, ca_file, tmp_path, "--nginx-bin", nginx_bin, *prefix)
    assert "--nginx-prefix DIR" not in with_prefix, "the prefix was given: create it, not -p"
