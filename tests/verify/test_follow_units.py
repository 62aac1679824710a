"""The systemd units of the mirror period: rendered with the user's paths, sandboxed, and
accepted by systemd's own checker."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

from hookshift.errors import InputError
from hookshift.systemd import systemd_quote
from hookshift.verify.units import PULL_UNIT, WATCH_UNIT, UnitSpec, render_units
from tests.in_process import run_captured
from tests.refusals import refusal

# where an ops engineer installs hookshift for its services (the units only name it)
HOOKSHIFT = Path("/opt/hookshift/bin/hookshift")


def _spec(**changes: object) -> UnitSpec:
    base: dict[str, object] = {
        "hookshift_bin": HOOKSHIFT,
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


# systemd-analyze checks that ExecStart's program exists: one that does, outside home
# directories (a hookshift installed for development may live in one, which the units refuse)
STAND_IN = Path(shutil.which("true") or "/bin/true")


def _systemd_verify(tmp_path: Path, units: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """systemd's own checker run on the units, written into `tmp_path`."""
    for name, text in units.items():
        (tmp_path / name).write_text(text)
    return subprocess.run(
        ["systemd-analyze", "verify", *(str(tmp_path / n) for n in (PULL_UNIT, WATCH_UNIT))],
        capture_output=True,
        text=True,
        timeout=60,
    )


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
    for unit in (pull, watch):  # bad input is not mended by a restart every 10 s
        assert (unit["Restart"], unit["RestartPreventExitStatus"]) == ("always", "2")
    assert " --delete --follow --window 7d" in pull["ExecStart"]
    assert pull["ExecStart"].startswith(f"{HOOKSHIFT} verify pull ")
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


def test_a_relative_parity_log_is_refused_like_a_relative_archive(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """The watch runs from /: a relative --app would be looked for there."""
    err = refusal(capsys, *_units(tmp_path, app="nginx:relative/parity.log"))
    assert err == (
        "hookshift: error: --app nginx:relative/parity.log: relative/parity.log is not an "
        "absolute path (fix: systemd needs absolute paths: write it from /)\n"
    )
    err = refusal(capsys, *_units(tmp_path, archive="relative/archive"))
    assert err.startswith("hookshift: error: --archive: relative/archive is not an absolute path")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"state": "/var/lib/hookshift/archive"},
         "--state /var/lib/hookshift/archive: is the archive (--archive "
         "/var/lib/hookshift/archive): the watch's files would sit among the segments pull "
         "writes and prunes, and pull and the watch would both write one directory (fix: "
         "give the watch a directory of its own, e.g. --state /var/lib/hookshift/watch)"),
        ({"state": "/var/lib/hookshift/archive/watch/"},
         "--state /var/lib/hookshift/archive/watch: is inside the archive (--archive "),
        ({"archive": "/var/lib/hookshift/watch/archive"},
         "--archive /var/lib/hookshift/watch/archive: is inside the watch's state directory "
         "(--state /var/lib/hookshift/watch): the watch could write the archive"),
        ({"app": "nginx:/var/lib/hookshift/archive/seg.jsonl"},
         "--app nginx:/var/lib/hookshift/archive/seg.jsonl: is inside the archive (--archive "
         "/var/lib/hookshift/archive), which holds pull's segments of queue messages, not the "
         "parity log (fix: give the parity log nginx writes, e.g. "
         "--app 'nginx:/var/log/nginx/hookshift-parity.log*')"),
        ({"app": "nginx:/var/lib/hookshift/archive/*.jsonl"},
         "--app nginx:/var/lib/hookshift/archive/*.jsonl: is inside the archive"),
    ],
)  # fmt: skip
def test_the_archive_is_pull_s_alone_neither_the_watch_s_state_nor_a_parity_log(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, changes: dict[str, str], says: str
) -> None:
    err = refusal(capsys, *_units(tmp_path, **changes))
    assert err.startswith(f"hookshift: error: {says}"), err
    assert list(tmp_path.iterdir()) == []


def test_a_state_beside_the_archive_with_a_name_that_starts_alike_is_written() -> None:
    units = render_units(
        _spec(state=Path("/var/lib/hookshift/archive2"), app_source="nginx:/var/log/archive.log")
    )
    assert "--state /var/lib/hookshift/archive2" in _directives(units[WATCH_UNIT])["ExecStart"]


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
    run = _systemd_verify(tmp_path, render_units(_spec(hookshift_bin=STAND_IN)))
    assert run.returncode == 0, run.stderr
    assert str(tmp_path) not in run.stderr, run.stderr  # no warning about our files


def test_the_units_command_writes_both_files(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from hookshift.cli import cli

    argv = [
        "verify", "units", "--user", "hookshift", "--queue-url", "https://sqs.x/1/q",
        "--archive", "/srv/hs/archive", "--state", "/srv/hs/watch",
        "--app", "nginx:/var/log/nginx/p.log*", "--out-dir", str(tmp_path),
        "--hookshift-bin", str(HOOKSHIFT),
    ]  # fmt: skip
    result = CliRunner().invoke(cli, argv)
    assert result.exit_code == 0, result.output
    assert (tmp_path / PULL_UNIT).exists() and (tmp_path / WATCH_UNIT).exists()
    assert "systemctl enable --now hookshift-pull.service hookshift-watch.service" in result.output
    # the directories the services write are made the owner's only, as verify makes its own
    assert "install -d -o hookshift -m 0700 /srv/hs/archive /srv/hs/watch;" in result.output


@pytest.mark.parametrize(
    ("metrics", "made"),
    [
        # node_exporter's textfile directory: systemd refuses to start a unit whose
        # ReadWritePaths names a directory that does not exist (226/NAMESPACE), and the
        # sandbox opens it only as far as the user may write it
        (
            "/var/lib/node_exporter/textfile/hs.prom",
            "install -d -o hookshift -m 0700 /srv/hs/archive /srv/hs/watch; "
            "install -d -o hookshift -m 0755 /var/lib/node_exporter/textfile;",
        ),
        # in the state directory, which node_exporter must then read
        (
            "/srv/hs/watch/hs.prom",
            "install -d -o hookshift -m 0700 /srv/hs/archive; "
            "install -d -o hookshift -m 0755 /srv/hs/watch;",
        ),
    ],
)
def test_the_units_command_says_how_to_make_every_directory_the_units_write(
    tmp_path: Path, metrics: str, made: str
) -> None:
    from click.testing import CliRunner

    from hookshift.cli import cli

    argv = [
        "verify", "units", "--user", "hookshift", "--queue-url", "https://sqs.x/1/q",
        "--archive", "/srv/hs/archive", "--state", "/srv/hs/watch",
        "--app", "nginx:/var/log/nginx/p.log*", "--out-dir", str(tmp_path),
        "--hookshift-bin", str(HOOKSHIFT), "--metrics-file", metrics,
    ]  # fmt: skip
    result = CliRunner().invoke(cli, argv)
    assert result.exit_code == 0, result.output
    watch = _directives((tmp_path / WATCH_UNIT).read_text())
    written = shlex.split(watch["ReadWritePaths"])
    assert f" {made} systemctl daemon-reload;" in result.output
    assert all(f" {path}" in made for path in written)  # each made before the unit starts


# ---------------------------------------------------------------- paths the sandbox hides

UNITS = ("verify", "units", "--user", "hookshift", "--queue-url",
         "https://sqs.ap-northeast-2.amazonaws.com/123456789012/kakao-at-result")  # fmt: skip
PLACES = {
    "--archive": "/var/lib/hookshift/archive",
    "--state": "/var/lib/hookshift/watch",
    "--app": "nginx:/var/log/nginx/hookshift-parity.log*",
    "--hookshift-bin": str(HOOKSHIFT),
}


def _units(out_dir: Path, **changes: str) -> list[str]:
    places = PLACES | {f"--{k.replace('_', '-')}": v for k, v in changes.items()}
    return [*UNITS, *(w for option, value in places.items() for w in (option, value)),
            "--out-dir", str(out_dir)]  # fmt: skip


@pytest.mark.parametrize(
    ("option", "path", "says"),
    [
        ("--archive", "/home/ops/archive", "ProtectHome=yes hides /home from them"),
        ("--state", "/root/hookshift/watch", "ProtectHome=yes hides /root from them"),
        ("--metrics-file", "/run/user/1000/hookshift.prom",
         "ProtectHome=yes hides /run/user from them"),
        ("--archive", "/tmp/archive", "PrivateTmp=yes gives them a private /tmp, emptied at "
         "every stop"),
        ("--state", "/var/tmp/watch", "PrivateTmp=yes gives them a private /var/tmp"),
    ],
)  # fmt: skip
def test_a_path_the_services_write_where_their_sandbox_hides_it_is_refused_naming_a_place(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, option: str, path: str, says: str
) -> None:
    option_name = option.removeprefix("--").replace("-", "_")
    err = refusal(capsys, *_units(tmp_path, **{option_name: path}))
    assert err.startswith(f"hookshift: error: {option} {path}: hidden from the services: {says}")
    assert "(fix: give it a place of its own outside home directories and /tmp, e.g. " in err
    assert list(tmp_path.iterdir()) == []


def test_a_hookshift_installed_in_a_home_directory_is_refused_with_how_to_install_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    binary = "/home/ops/.local/bin/hookshift"
    err = refusal(capsys, *_units(tmp_path, hookshift_bin=binary))
    assert err == (
        f"hookshift: error: --hookshift-bin {binary}: the services cannot run it: "
        "ProtectHome=yes hides /home from them (fix: install hookshift with the system's "
        "Python outside home directories: /usr/bin/python3 -m venv /opt/hookshift && "
        "/opt/hookshift/bin/pip install /path/to/hookshift, then --hookshift-bin "
        "/opt/hookshift/bin/hookshift)\n"
    )
    assert list(tmp_path.iterdir()) == []


def test_the_running_hookshift_is_judged_when_no_bin_is_given(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the hookshift on PATH is the one running; here it sits in /tmp (whatever TMPDIR says),
    # and the services' /tmp is another
    with tempfile.TemporaryDirectory(dir="/tmp") as bin_dir:
        running = Path(bin_dir) / "hookshift"
        running.write_text("#!/bin/sh\n", encoding="utf-8")
        running.chmod(0o755)
        monkeypatch.setenv("PATH", bin_dir)
        argv = [w for w in _units(tmp_path) if w not in ("--hookshift-bin", str(HOOKSHIFT))]
        err = refusal(capsys, *argv)
    assert err.startswith(
        f"hookshift: error: hookshift {running} (the one running: no --hookshift-bin given): "
        "the services cannot run it: PrivateTmp=yes gives them a private /tmp"
    )
    assert list(tmp_path.iterdir()) == []


def test_a_parity_log_or_alert_command_in_a_home_directory_is_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    err = refusal(capsys, *_units(tmp_path, app="nginx:/home/ops/logs/parity.log*"))
    assert err == (
        "hookshift: error: --app nginx:/home/ops/logs/parity.log*: the watch cannot read it: "
        "ProtectHome=yes hides /home from it (fix: keep the parity log where nginx keeps its "
        "logs, e.g. --app 'nginx:/var/log/nginx/hookshift-parity.log*')\n"
    )
    command = '/root/bin/notify "$HOOKSHIFT_ALERT_MESSAGE"'
    err = refusal(capsys, *_units(tmp_path, alert_cmd=command))
    assert f"--alert-cmd {command}: the watch cannot run /root/bin/notify: ProtectHome" in err
    assert list(tmp_path.iterdir()) == []


def test_paths_outside_what_the_sandbox_hides_are_written_as_given() -> None:
    units = render_units(_spec(
        archive=Path("/srv/hookshift/archive"), state=Path("/var/lib/hookshift/watch"),
        app_source="nginx:/var/log/nginx/hookshift-parity.log*",
        alert_cmd="logger -t hookshift \"$HOOKSHIFT_ALERT_MESSAGE\"",
        env_file=Path("/root/aws.env"),  # read by systemd itself, before the sandbox
    ))  # fmt: skip
    pull = _directives(units[PULL_UNIT])
    assert pull["ReadWritePaths"] == "/srv/hookshift/archive"
    assert pull["EnvironmentFile"] == "-/root/aws.env"


# ---------------------------------------------------------------- the hookshift the units run


def _help_example(*command: str) -> list[str]:
    """The example of `hookshift COMMAND --help`, as a user would paste it (without the
    leading ``hookshift``)."""
    from click.testing import CliRunner

    from hookshift.cli import cli

    shown = CliRunner().invoke(cli, [*command, "--help"], terminal_width=200).output
    block = shown.split("Example", 1)[1].split("\n\n", 1)[0].split("\n", 1)[1]
    return shlex.split(block.replace("\\\n", " "))[1:]


def test_the_help_example_works_where_the_running_hookshift_is_in_a_home_directory(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a venv made by `make` in a checkout under /root: the services could not run it
    monkeypatch.setattr(
        "hookshift.verify.units.running_hookshift",
        lambda: Path("/root/hookshift/.venv/bin/hookshift"),
    )
    argv = _help_example("verify", "units")
    assert argv[-2:] == ["--out-dir", "/etc/systemd/system"]
    code, _, err = run_captured(capsys, *argv[:-1], str(tmp_path))
    assert code == 0, err
    pull = _directives((tmp_path / PULL_UNIT).read_text())
    assert pull["ExecStart"].startswith("/opt/hookshift/bin/hookshift verify pull ")


def test_a_hookshift_bin_not_on_this_machine_is_written_with_one_warning(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    elsewhere = f"/opt/hookshift-{uuid.uuid4().hex[:8]}/bin/hookshift"  # installed later, there
    code, out, err = run_captured(capsys, *_units(tmp_path, hookshift_bin=elsewhere))
    assert code == 0 and "systemctl enable --now" in out
    assert (tmp_path / PULL_UNIT).exists() and (tmp_path / WATCH_UNIT).exists()
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert warnings == [
        f"warning: --hookshift-bin {elsewhere}: does not exist on this machine; the units are "
        "written all the same, for a host where it is installed (install it: /usr/bin/python3 "
        "-m venv /opt/hookshift && /opt/hookshift/bin/pip install /path/to/hookshift)"
    ]


def test_a_hookshift_bin_on_this_machine_is_written_without_a_warning(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    present = shutil.which("true") or "/bin/true"  # a program outside home directories and /tmp
    code, _, err = run_captured(capsys, *_units(tmp_path, hookshift_bin=present))
    assert code == 0 and "warning:" not in err


@pytest.mark.e2e
@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_an_env_file_and_paths_with_spaces_percent_and_dollar_reach_systemd_as_written(
    tmp_path: Path,
) -> None:
    """EnvironmentFile= takes the rest of its line as one path (no quotes: a quoted path is
    "not absolute" and systemd ignores the credentials with a log line only); ReadWritePaths=
    unquotes but does not expand `$`. systemd's own checker reads them back."""
    units = render_units(
        _spec(
            hookshift_bin=STAND_IN,
            env_file=Path("/etc/hookshift/aws creds 100%.env"),
            archive=Path("/var/lib/hookshift/archive $1"),
        )
    )
    pull = _directives(units[PULL_UNIT])
    assert pull["EnvironmentFile"] == "-/etc/hookshift/aws creds 100%%.env"
    assert pull["ReadWritePaths"] == '"/var/lib/hookshift/archive $1"'
    run = _systemd_verify(tmp_path, units)
    assert run.returncode == 0, run.stderr
    assert "EnvironmentFile" not in run.stderr and "not absolute" not in run.stderr, run.stderr
