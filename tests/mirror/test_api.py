"""`hookshift.mirror` from Python: one request type, plan/apply/remove, results that print nothing.

Read as the API's spec: a plan is a diff plus the lines for the user and writes nothing; apply
then remove gives every file back byte for byte; bad input raises `InputError` (exit code 2)
before anything is written; the other parts call this API, never the command line.
"""

from __future__ import annotations

import ast
import os
import sys
from pathlib import Path

import pytest

from hookshift import mirror
from hookshift.errors import HookshiftError, InputError
from hookshift.mirror.apply import CHECKPOINT_LOG_ENV, checkpoint, checkpoint_step
from hookshift.nginx.source import read_text
from tests.mirror.helpers import STAGE_URL, copy_case, snapshot

PACKAGE = Path(__file__).resolve().parents[2] / "hookshift"
OFFLINE = {"nginx_bin": "/nonexistent/nginx", "nginx_version": "1.22.1", "dns_check": False}


def _request(where: Path | None, ca_file: Path, **changes: object) -> mirror.MirrorRequest:
    """A request for corpus case crlf's callback at `where` (its main config), offline."""
    base: dict[str, object] = {
        "config": where,
        "path": "/kakao/result",
        "stage_url": STAGE_URL,
        "trusted_ca": ca_file,
        **OFFLINE,
    }
    if where is not None:
        base["relay_socket"] = str(where.parent / "r.sock")
        base["parity_log"] = where.parent / "logs" / "parity.log"
    return mirror.MirrorRequest(**{**base, **changes})  # type: ignore[arg-type]


def test_plan_returns_the_diff_and_the_lines_and_prints_and_writes_nothing(
    tmp_path: Path, ca_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = copy_case("crlf", tmp_path)
    before = snapshot(config.parent)

    planned = mirror.plan(_request(config, ca_file))

    assert planned.diff().startswith(f"--- a{config}")
    assert "+\t\t\tmirror /__hookshift_mirror;  # hookshift" in planned.diff()
    assert planned.config == config and not planned.already_applied
    assert "location = /kakao/result" in planned.summary
    assert all(line.level in ("info", "warning") for line in planned.lines)
    assert planned.to_json()["location"]["where"] == f"{config}:19"
    assert capsys.readouterr() == ("", "")
    assert snapshot(config.parent) == before


def test_no_parity_log_is_said_in_an_info_line_and_leaves_the_log_out(
    tmp_path: Path, ca_file: Path
) -> None:
    config = copy_case("crlf", tmp_path)
    planned = mirror.plan(_request(config, ca_file, parity_log=mirror.NO_LOG))
    assert any("no parity log" in text for text in planned.info)
    assert "hookshift_parity" not in planned.diff()
    logged = mirror.plan(_request(config, ca_file))
    assert "hookshift_parity" in logged.diff()


def test_defaults_are_decided_from_the_nginx_binary_and_the_version(
    tmp_path: Path, ca_file: Path
) -> None:
    config = copy_case("crlf", tmp_path)
    old = mirror.plan(_request(config, ca_file, parity_log=None))
    new = mirror.plan(_request(config, ca_file, nginx_version="1.27.3"))
    # beside the config's `access_log logs/access.log`: with no binary to say nginx's prefix,
    # the path stays relative, and nginx resolves both under the same prefix
    assert old.plan.parity_log == Path("logs/hookshift-parity.log")
    assert old.plan.layout == "two-hop" and new.plan.layout == "upstream-resolve"
    assert old.plan.options.resolvers == ("1.1.1.1", "8.8.8.8")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"stage_url": "http://abc123.execute-api.ap-northeast-2.amazonaws.com/p"}, "https"),
        ({"path": "/nothing/here"}, "no location matches /nothing/here"),
        ({"config": Path("/nonexistent/nginx.conf")}, "cannot read nginx config file"),
        ({"mode": "copy"}, "mode 'copy' is not one of: mirror, forward"),
        ({"stage_dns": "never"}, "stage_dns 'never' is not one of: runtime, reload"),
        ({"nginx_version": None}, "nginx binary not found: /nonexistent/nginx"),
        ({"nginx_version": "1.x"}, "--nginx-version must be X.Y.Z, not '1.x'"),
    ],
)
def test_bad_input_raises_input_error_with_exit_code_2_and_writes_nothing(
    tmp_path: Path, ca_file: Path, change: dict[str, object], message: str
) -> None:
    config = copy_case("crlf", tmp_path)
    before = snapshot(config.parent)
    for call in (mirror.plan, mirror.apply):
        with pytest.raises(InputError, match=message) as raised:
            call(_request(config, ca_file, **change))
        assert raised.value.exit_code == 2
    assert snapshot(config.parent) == before


def test_without_a_config_and_no_nginx_to_ask_the_error_says_to_pass_one(ca_file: Path) -> None:
    with pytest.raises(InputError, match="no --config given") as raised:
        mirror.plan(_request(None, ca_file))
    assert raised.value.exit_code == 2


def test_the_plan_command_without_config_is_one_line_not_a_traceback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from hookshift.cli import main

    args = ["mirror", "plan", "--path", "/cb", "--stage-url", STAGE_URL, "--no-dns-check"]
    with pytest.raises(SystemExit) as exited:
        main([*args, "--nginx-bin", "/nonexistent/nginx", "--nginx-version", "1.22.1"])
    assert exited.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("hookshift: error: no --config given"), err


@pytest.mark.e2e
def test_apply_then_remove_gives_every_file_back_byte_for_byte(
    tmp_path: Path, ca_file: Path, nginx_bin: str
) -> None:
    config = copy_case("crlf", tmp_path)
    before = snapshot(config.parent)
    request = _request(config, ca_file, nginx_bin=nginx_bin, nginx_version=None)
    bk, prefix = tmp_path / "bk", config.parent

    applied = mirror.apply(request, backup_dir=bk, prefix=prefix)
    assert applied.changed == (config,) and applied.backup_dir is not None
    assert "# hookshift" in config.read_text()
    assert applied.to_json()["applied"]["changed"] == [str(config)]
    assert mirror.apply(request, backup_dir=bk, prefix=prefix).no_change  # twice is a no-op
    assert mirror.plan(request).already_applied

    removed = mirror.remove(config, nginx_bin=nginx_bin, backup_dir=bk, prefix=prefix)
    assert removed.changed == (config,) and removed.lines == ()
    assert snapshot(config.parent) == before
    assert mirror.remove(config, nginx_bin=nginx_bin, backup_dir=bk, prefix=prefix).no_change


@pytest.mark.e2e
def test_write_back_puts_recorded_texts_back_through_the_safe_pipeline(
    tmp_path: Path, ca_file: Path, nginx_bin: str
) -> None:
    config = copy_case("crlf", tmp_path)
    request = _request(config, ca_file, nginx_bin=nginx_bin, nginx_version=None)
    bk, prefix = tmp_path / "bk", config.parent
    mirror.apply(request, backup_dir=bk, prefix=prefix)
    applied = snapshot(config.parent)
    recorded = read_text(config)
    mirror.remove(config, backup_dir=bk, nginx_bin=nginx_bin, prefix=prefix)

    with pytest.raises(HookshiftError, match="nginx -t rejected the result"):
        mirror.write_back(
            config,
            {config: recorded.replace("http {", "http {{")},
            backup_dir=bk,
            nginx_bin=nginx_bin,
            prefix=prefix,
        )
    assert "# hookshift" not in config.read_text()  # refused: the file stays as it was

    written = mirror.write_back(
        config, {config: recorded}, backup_dir=bk, nginx_bin=nginx_bin, prefix=prefix
    )
    assert written == (config,)
    assert snapshot(config.parent) == applied


@pytest.mark.e2e
def test_a_failed_write_raises_a_hookshift_error_and_puts_nothing_in_place(
    tmp_path: Path, ca_file: Path, nginx_bin: str
) -> None:
    config = copy_case("crlf", tmp_path)
    before = snapshot(config.parent)
    missing_dir = tmp_path / "no" / "such" / "dir" / "r.sock"
    request = _request(
        config, ca_file, nginx_bin=nginx_bin, nginx_version=None, relay_socket=str(missing_dir)
    )
    with pytest.raises(HookshiftError, match="relay socket's directory does not exist"):
        mirror.apply(request, backup_dir=tmp_path / "bk", prefix=config.parent)
    assert snapshot(config.parent) == before


def test_checkpoints_inside_a_step_are_named_after_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "points"
    monkeypatch.setenv(CHECKPOINT_LOG_ENV, str(log))
    checkpoint("backed-up")
    with checkpoint_step("apply"):
        checkpoint("written:nginx.conf")
    with checkpoint_step("remove"):
        checkpoint("written:nginx.conf")
    checkpoint("cutover:removed")
    assert log.read_text().split() == [
        "backed-up",
        "apply:written:nginx.conf",
        "remove:written:nginx.conf",
        "cutover:removed",
    ]


def _runs_hookshift_or_click(path: Path) -> list[str]:
    """Where `path` starts ``python -m hookshift`` or imports click's CliRunner."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.List | ast.Tuple):
            items = [e.value for e in node.elts if isinstance(e, ast.Constant)]
            if any(items[i : i + 2] == ["-m", "hookshift"] for i in range(len(items))):
                found.append(f"{path.name}:{node.lineno}: runs `python -m hookshift`")
        if isinstance(node, ast.ImportFrom) and node.module == "click.testing":
            found.append(f"{path.name}:{node.lineno}: imports click's test runner")
    return found


# cutover/evidence.py still runs `hookshift verify` as a command until it calls the verify API
@pytest.mark.parametrize("part", ["cutover", "rehearsal"])
def test_the_cut_over_and_the_rehearsal_call_the_api_not_the_command_line(part: str) -> None:
    files = sorted((PACKAGE / part).rglob("*.py"))
    assert files
    found = [hit for f in files for hit in _runs_hookshift_or_click(f)]
    assert found == []


def test_the_scan_finds_a_hookshift_subprocess_and_a_cli_runner(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "from click.testing import CliRunner\n"
        "import subprocess, sys\n"
        "subprocess.run([sys.executable, '-m', 'hookshift', 'mirror'])\n"
    )
    assert len(_runs_hookshift_or_click(sample)) == 2


def test_the_api_is_what_the_package_exports() -> None:
    assert {"MirrorRequest", "plan", "apply", "remove", "recover"} <= set(mirror.__all__)
    assert mirror.plan.__module__ == "hookshift.mirror.api"
    assert os.path.basename(sys.modules["hookshift.mirror.plan"].__file__ or "") == "plan.py"


@pytest.mark.e2e  # asks the binary (nginx -V)
def test_a_source_built_nginx_keeps_the_parity_log_under_its_prefix(
    tmp_path: Path, ca_file: Path
) -> None:
    """`./configure && make install` prints only --prefix in nginx -V: its logs are in
    PREFIX/logs, and under -p PREFIX when nginx runs with one."""
    built = os.environ.get("HOOKSHIFT_NGINX_MAINLINE", "")
    if not built:
        pytest.skip("HOOKSHIFT_NGINX_MAINLINE is not set (.ci/run builds nginx 1.31.5 and sets it)")
    config = copy_case("crlf", tmp_path)
    on_binary = {"nginx_bin": built, "nginx_version": None, "parity_log": None}
    installed = Path(built).resolve().parents[1]  # PREFIX/sbin/nginx
    planned = mirror.plan(_request(config, ca_file, **on_binary))
    assert f"access_log {installed}/logs/hookshift-parity.log " in planned.diff()
    planned = mirror.plan(_request(config, ca_file, **on_binary, nginx_prefix=tmp_path))
    assert f"access_log {tmp_path}/logs/hookshift-parity.log " in planned.diff()


def test_a_relative_trusted_ca_is_the_file_where_the_user_is(
    tmp_path: Path, ca_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """nginx reads a relative proxy_ssl_trusted_certificate from its own config directory:
    the plan writes the file the user named, from where they named it."""
    config = copy_case("crlf", tmp_path)
    (tmp_path / "here").mkdir()
    (tmp_path / "here" / "stage-ca.pem").write_bytes(ca_file.read_bytes())
    monkeypatch.chdir(tmp_path / "here")
    planned = mirror.plan(_request(config, ca_file, trusted_ca=Path("stage-ca.pem")))
    assert f"proxy_ssl_trusted_certificate {tmp_path / 'here' / 'stage-ca.pem'};" in planned.diff()
