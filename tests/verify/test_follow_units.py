"""The systemd units of the mirror period: rendered with the user's paths, sandboxed, and
accepted by systemd's own checker."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hookshift.errors import InputError
from hookshift.systemd import systemd_quote
from hookshift.verify.units import PULL_UNIT, WATCH_UNIT, UnitSpec, render_units


def _spec(**changes: object) -> UnitSpec:
    base: dict[str, object] = {
        "hookshift_bin": Path(sys.executable).with_name("hookshift"),
        "user": "hookshift",
        "queue_url": "https://sqs.ap-northeast-2.amazonaws.com/123456789012/kakao-at-result",
        "archive": Path("/var/lib/hookshift/archive"),
        "state": Path("/var/lib/hookshift/watch state"),
        "app_source": "nginx:/var/log/nginx/hookshift-parity.log*",
        "profile": "bizppurio",
        "metrics_file": Path("/var/lib/node_exporter/textfile/hookshift.prom"),
        "alert_cmd": 'notify-team "$HOOKSHIFT_ALERT_MESSAGE" 100%',
    }
    return UnitSpec(**(base | changes))  # type: ignore[arg-type]


def _directives(text: str) -> dict[str, str]:
    return dict(
        line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#")
    )


def test_units_are_sandboxed_to_their_own_paths() -> None:
    units = render_units(_spec())
    pull, watch = _directives(units[PULL_UNIT]), _directives(units[WATCH_UNIT])
    for unit in (pull, watch):
        assert unit["User"] == "hookshift" and unit["NoNewPrivileges"] == "yes"
        assert unit["ProtectSystem"] == "strict" and unit["PrivateTmp"] == "yes"
        assert unit["CapabilityBoundingSet"] == ""
    assert pull["ReadWritePaths"] == "/var/lib/hookshift/archive"
    assert (
        watch["ReadWritePaths"]
        == '"/var/lib/hookshift/watch state" /var/lib/node_exporter/textfile'
    )
    assert " --delete --follow --window 7d" in pull["ExecStart"]
    assert pull["ExecStart"].startswith(str(Path(sys.executable).with_name("hookshift")) + " ")
    # the alert command reaches hookshift literally: systemd would expand $ and %
    assert '--alert-cmd "notify-team \\"$$HOOKSHIFT_ALERT_MESSAGE\\" 100%%"' in watch["ExecStart"]


@pytest.mark.parametrize(
    ("arg", "quoted"),
    [
        ("plain", "plain"),
        ("a b", '"a b"'),
        ("50%", "50%%"),
        ("$X", "$$X"),
        ('say "hi"', '"say \\"hi\\""'),
    ],
)
def test_systemd_quoting(arg: str, quoted: str) -> None:
    assert systemd_quote(arg) == quoted


def test_relative_paths_and_odd_users_are_refused() -> None:
    with pytest.raises(InputError, match=r"--archive.*not an absolute path"):
        render_units(_spec(archive=Path("archive")))
    with pytest.raises(InputError, match=r"--user.*not a user name"):
        render_units(_spec(user="root; rm"))
    with pytest.raises(InputError, match=r"--user: the services would run as root"):
        render_units(_spec(user="root"))
    with pytest.raises(InputError, match=r"--queue-url: not a URL"):
        render_units(_spec(queue_url="kakao-at-result"))


@pytest.mark.parametrize(
    "changes",
    [
        {"alert_cmd": "notify\nExecStartPre=/bin/sh -c 'id > /tmp/x'"},
        {"alert_cmd": "notify\r\nUser=root"},
        {"app_source": "nginx:/var/log/nginx/p.log\nUser=root"},
    ],
)
def test_a_value_cannot_start_a_directive_of_its_own(changes: dict[str, str]) -> None:
    with pytest.raises(InputError, match="holds a line break or another control character"):
        render_units(_spec(**changes))


@pytest.mark.e2e
@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_analyze_verify_accepts_the_units(tmp_path: Path) -> None:
    for name, text in render_units(_spec()).items():
        (tmp_path / name).write_text(text)
    run = subprocess.run(
        ["systemd-analyze", "verify", *(str(tmp_path / n) for n in (PULL_UNIT, WATCH_UNIT))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    assert str(tmp_path) not in run.stderr, run.stderr  # no warning about our files


def test_the_units_command_writes_both_files(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from hookshift.cli import cli

    argv = [
        "verify", "units", "--user", "hookshift", "--queue-url", "https://sqs.x/1/q",
        "--archive", "/srv/hs/archive", "--state", "/srv/hs/watch",
        "--app", "nginx:/var/log/nginx/p.log*", "--out-dir", str(tmp_path),
    ]  # fmt: skip
    result = CliRunner().invoke(cli, argv)
    assert result.exit_code == 0, result.output
    assert (tmp_path / PULL_UNIT).exists() and (tmp_path / WATCH_UNIT).exists()
    assert "systemctl enable --now hookshift-pull.service hookshift-watch.service" in result.output
