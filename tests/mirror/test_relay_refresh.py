"""`mirror refresh` without nginx: which configs it reads a stage from, what it decides from
the record of nginx's last reload, and the systemd units that run it. The reloads themselves
run against a real nginx in ``test_relay_refresh_e2e.py``."""

from __future__ import annotations

import contextlib
import io
import json
from dataclasses import replace
from pathlib import Path

import pytest

from hookshift.cli import main
from hookshift.errors import InputError
from hookshift.mirror.plan import MirrorOptions, make_plan
from hookshift.mirror.refresh import (
    RECORD_NAME,
    RefreshUnits,
    refresh,
    render_refresh_units,
    stage_name,
)
from hookshift.mirror.state import ConfigState

CONFIG = """events {}
http {
    server {
        listen 8080;
        location = /cb { proxy_pass http://127.0.0.1:9000; }
    }
}
"""
HOST = "abc123.execute-api.ap-northeast-2.amazonaws.com"


def _applied(tmp_path: Path, version: tuple[int, int, int], **kw: object) -> Path:
    """The config with a planned mirror written into it (nginx is not asked)."""
    config = tmp_path / "nginx.conf"
    config.write_text(CONFIG)
    options = MirrorOptions(config=config, path="/cb", stage_url=f"https://{HOST}/prod")
    plan = make_plan(replace(options, **kw), version)  # type: ignore[arg-type]
    for change in plan.changes:
        change.path.write_text(change.new_text)
    return config


def _no_nginx(*_: object, **__: object) -> None:
    raise AssertionError("nginx must not be asked")


def _record(config: Path, addresses: list[str], at: float) -> None:
    path = ConfigState.of(config).directory / RECORD_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"host": HOST, "port": 443, "addresses": addresses, "reloaded_at": at}
    path.write_text(json.dumps(data))


def test_the_stage_is_the_named_server_of_the_breaker_with_stage_dns_reload(
    tmp_path: Path,
) -> None:
    stage = stage_name(_applied(tmp_path, (1, 22, 1), stage_dns="reload"))
    assert stage is not None and (stage.host, stage.port) == (HOST, 443)
    assert stage.where.startswith(f"{tmp_path}/nginx.conf:")


@pytest.mark.parametrize(("version", "stage_dns"), [((1, 22, 1), None), ((1, 31, 5), None)])
def test_a_config_that_re_resolves_by_itself_needs_no_refresh(
    tmp_path: Path, version: tuple[int, int, int], stage_dns: str | None
) -> None:
    config = _applied(tmp_path, version, stage_dns=stage_dns)
    assert stage_name(config) is None
    done = refresh(config, resolve=_no_nginx)  # type: ignore[arg-type]
    assert done.action == "not-needed" and "nothing to refresh" in done.describe()


def test_a_config_without_hookshifts_mirror_is_bad_input_in_one_line(tmp_path: Path) -> None:
    config = tmp_path / "nginx.conf"
    config.write_text(CONFIG)
    with pytest.raises(InputError, match="no mirror of hookshift's"):
        refresh(config)
    out, err = io.StringIO(), io.StringIO()
    with (
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
        pytest.raises(SystemExit) as exited,
    ):
        main(["mirror", "refresh", "--config", str(config)])
    assert exited.value.code == 2 and out.getvalue() == ""
    (line,) = err.getvalue().strip().splitlines()
    assert "no mirror of hookshift's" in line and "fix:" in line


def test_unchanged_addresses_and_a_recent_reload_leave_nginx_alone(tmp_path: Path) -> None:
    config = _applied(tmp_path, (1, 22, 1), stage_dns="reload")
    _record(config, ["192.0.2.1", "192.0.2.2"], at=1000.0)

    def answer(*addresses: str) -> object:
        return lambda host, port: addresses

    current = refresh(config, resolve=answer("192.0.2.1", "192.0.2.2"), clock=lambda: 5000.0)  # type: ignore[arg-type]
    assert current.action == "current" and "nothing to do" in current.describe()
    deferred = refresh(
        config,
        resolve=answer("192.0.2.3"),  # type: ignore[arg-type]
        min_interval=300,
        clock=lambda: 1100.0,
    )
    assert deferred.action == "deferred" and deferred.wait == pytest.approx(200.0)
    assert "192.0.2.3 (was 192.0.2.1, 192.0.2.2)" in deferred.describe()


def test_the_units_run_refresh_for_the_config_with_their_own_state_dir() -> None:
    units = render_refresh_units(
        RefreshUnits(
            hookshift_bin=Path("/opt/hookshift/bin/hookshift"),
            config=Path("/etc/nginx/nginx.conf"),
            state_dir=Path("/var/lib/hookshift"),
            interval="2min",
            min_interval=600,
        )
    )
    service = units["hookshift-stage-refresh.service"]
    assert (
        "ExecStart=/opt/hookshift/bin/hookshift mirror refresh --config /etc/nginx/nginx.conf "
        "--nginx-bin /usr/sbin/nginx --min-interval 600\n"
    ) in service
    assert (
        "Type=oneshot" in service
        and "Environment=HOOKSHIFT_STATE_DIR=/var/lib/hookshift" in service
    )
    # /etc is read-only for the service but for the directory where the address is rewritten
    assert "ProtectSystem=full\n" in service and "ReadWritePaths=/etc/nginx\n" in service
    timer = units["hookshift-stage-refresh.timer"]
    assert "OnUnitActiveSec=2min" in timer and "WantedBy=timers.target" in timer
    with pytest.raises(InputError, match="absolute"):
        render_refresh_units(RefreshUnits(Path("hookshift"), Path("/etc/nginx/nginx.conf")))
    with pytest.raises(InputError, match="--interval"):
        render_refresh_units(
            RefreshUnits(Path("/usr/bin/hookshift"), Path("/etc/nginx/nginx.conf"), interval="1 m")
        )
    # the command itself, the config tree and the sandbox: test_refresh_units.py


def test_planning_again_keeps_the_address_written_for_the_stage(tmp_path: Path) -> None:
    """The relay's kept address changes only by `refresh`: a plan made while the name answers
    otherwise (a rotating answer, a moved stage) finds the config already applied."""
    config = _applied(tmp_path, (1, 22, 1), stage_addresses=("192.0.2.1",))
    assert "server 192.0.2.1:443 " in config.read_text()
    options = MirrorOptions(
        config=config, path="/cb", stage_url=f"https://{HOST}/prod", stage_addresses=("192.0.2.9",)
    )
    again = make_plan(options, (1, 22, 1))
    assert again.already_applied and again.stage_addresses == ("192.0.2.1",)


def test_a_written_address_still_answered_is_kept_and_a_recent_rewrite_defers(
    tmp_path: Path,
) -> None:
    config = _applied(
        tmp_path, (1, 22, 1), stage_addresses=("192.0.2.1",), resolvers=("127.0.0.1:5353",)
    )
    asked: list[tuple[tuple[str, ...], str]] = []

    def answer(*addresses: str) -> object:
        def look_up(resolvers: tuple[str, ...], host: str) -> tuple[str, ...]:
            asked.append((resolvers, host))
            return addresses

        return look_up

    current = refresh(config, look_up=answer("192.0.2.7", "192.0.2.1"), resolve=_no_nginx)  # type: ignore[arg-type]
    assert current.action == "current" and current.kept == "192.0.2.1"
    assert asked == [(("127.0.0.1:5353",), HOST)], "the relay's own resolvers are asked"
    _record(config, ["192.0.2.1"], at=1000.0)
    before = config.read_bytes()
    deferred = refresh(
        config,
        look_up=answer("192.0.2.3"),  # type: ignore[arg-type]
        min_interval=300,
        clock=lambda: 1100.0,
    )
    assert deferred.action == "deferred" and deferred.wait == pytest.approx(200.0)
    assert "no longer to 192.0.2.1" in deferred.describe()
    assert config.read_bytes() == before, "nothing written while deferred"


@pytest.mark.parametrize("version", [(1, 22, 1), (1, 31, 5)], ids=["run-time-dns", "resolve"])
def test_no_timer_is_written_for_a_config_that_re_resolves_by_itself(
    tmp_path: Path, version: tuple[int, int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A timer there would run a refresh that has nothing to do, every minute, for good."""
    from hookshift.nginx import binary
    from tests.in_process import run_in_process

    monkeypatch.setattr(binary, "find_binary", lambda name="nginx": "/usr/sbin/nginx")
    monkeypatch.setattr(binary, "compiled_defaults", lambda name="nginx": {})
    config = _applied(tmp_path, version)
    out = tmp_path / "units"
    out.mkdir()
    code, stdout, stderr = run_in_process(
        "mirror", "refresh-units", "--config", str(config), "--out-dir", str(out)
    )
    assert code == 0 and stdout == ""
    assert stderr.endswith(
        "nothing to refresh: nginx re-resolves the stage by itself with this config (run-time "
        "DNS or `resolve` in the upstream); no units written\n"
    )
    assert list(out.iterdir()) == []
