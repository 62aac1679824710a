"""`hookshift mirror refresh-units`: the service runs `mirror refresh` as root in a sandbox
(ProtectSystem=full, ProtectHome=read-only, PrivateTmp=yes), and must still do all that refresh
does: read the config tree, replace a file beside itself, keep its record and backups in the
state dir `mirror apply` and `remove` use, run ``nginx -t`` (which opens every log and the pid
file for writing) and ``nginx -s reload``. Paths the sandbox hides are refused when the units
are written; paths it would leave read-only that refresh writes are opened.

No process is started here: ``nginx -V``'s answer is given (the CLI's own run of it is in
``test_refresh_units_e2e.py``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from hookshift.errors import InputError
from hookshift.mirror.plan import written_stage
from hookshift.mirror.refresh import (
    SERVICE_UNIT,
    TIMER_UNIT,
    NginxPaths,
    RefreshUnits,
    nginx_paths,
    render_refresh_units,
)
from hookshift.mirror.state import ConfigState, FileRecord, Saved, without_ours
from hookshift.nginx import binary
from hookshift.nginx.config import load
from hookshift.nginx.source import load_source
from tests.in_process import run_in_process
from tests.mirror.helpers import APPLIED, CORPUS, seen_by_a_service

HOOKSHIFT = Path("/opt/hookshift/bin/hookshift")
DEBIAN = CORPUS / "debian_stock" / "nginx.conf"
# what Debian's nginx -V says (a build from source says none of these)
DEBIAN_V = {
    "prefix": "/usr/share/nginx",
    "conf-path": "/etc/nginx/nginx.conf",
    "http-log-path": "/var/log/nginx/access.log",
    "error-log-path": "stderr",
    "pid-path": "/run/nginx.pid",
}
# nginx built from source (`./configure && make install`): everything under /usr/local/nginx
SOURCE = Path("/usr/local/nginx")
SOURCE_PATHS = NginxPaths(
    files=(SOURCE / "conf/nginx.conf", SOURCE / "conf/mime.types"),
    edited=(SOURCE / "conf/nginx.conf",),
    logs=(SOURCE / "logs/error.log", SOURCE / "logs/access.log", Path("/var/log/hooks.log")),
    pid=SOURCE / "logs/nginx.pid",
)


def _service(spec: RefreshUnits) -> str:
    return render_refresh_units(spec)[SERVICE_UNIT]


def _directives(unit: str, name: str) -> list[str]:
    return [line.split("=", 1)[1] for line in unit.splitlines() if line.startswith(f"{name}=")]


def test_nginx_paths_are_resolved_as_nginx_resolves_them(tmp_path: Path) -> None:
    (tmp_path / "sites").mkdir()
    (tmp_path / "sites" / "hooks").write_text(
        "server {\n    listen 80;\n    location /cb {\n"
        "        mirror /__hookshift_mirror;  # hookshift\n"
        "        proxy_pass http://127.0.0.1:9000;\n    }\n}\n"
    )
    (tmp_path / "sites" / "static").write_text("server { listen 81; }\n")
    config = tmp_path / "nginx.conf"
    config.write_text(
        "pid run/nginx.pid;\n"
        "error_log stderr;\n"
        "events {}\n"
        "http {\n"
        "    access_log logs/hooks.log;\n"
        "    access_log syslog:server=unix:/dev/log;\n"
        "    access_log /var/log/vhosts/$host.log;\n"
        "    error_log /var/log/nginx/http.error.log warn;\n"
        "    include sites/*;\n"
        "}\n"
    )

    found = nginx_paths(config, prefix=tmp_path, defaults={"prefix": str(SOURCE)})

    assert found.files == (config, tmp_path / "sites" / "hooks", tmp_path / "sites" / "static")
    # the http block's file (the stage's address) and the file holding hookshift's lines
    assert found.edited == (config, tmp_path / "sites" / "hooks")
    # nginx's compiled-in logs, then the config's; relative under -p; none per request or to syslog
    assert found.logs == (
        tmp_path / "logs/error.log",
        tmp_path / "logs/access.log",
        tmp_path / "logs/hooks.log",
        Path("/var/log/nginx/http.error.log"),
    )
    assert found.pid == tmp_path / "run/nginx.pid"
    # without -p: under the compiled-in prefix, and Debian's absolute paths as they are
    assert nginx_paths(config, defaults={"prefix": str(SOURCE)}).pid == SOURCE / "run/nginx.pid"
    config.write_text("events {}\nhttp {}\n")
    debian = nginx_paths(config, defaults=DEBIAN_V)
    assert debian.logs == (Path("/var/log/nginx/access.log"),) and debian.pid == Path(
        "/run/nginx.pid"
    )


def test_the_service_may_write_what_refresh_and_nginx_t_write_and_nothing_else(
    tmp_path: Path,
) -> None:
    service = _service(
        RefreshUnits(
            HOOKSHIFT,
            SOURCE / "conf/nginx.conf",
            nginx_bin=str(SOURCE / "sbin/nginx"),
            state_dir=Path("/var/lib/hookshift"),
            nginx_prefix=Path("/"),
            nginx=SOURCE_PATHS,
        )
    )
    assert _directives(service, "ExecStart") == [
        f"{HOOKSHIFT} mirror refresh --config {SOURCE}/conf/nginx.conf --nginx-bin "
        f"{SOURCE}/sbin/nginx --nginx-prefix / --min-interval 300"
    ]
    assert _directives(service, "Environment") == ["HOOKSHIFT_STATE_DIR=/var/lib/hookshift"]
    for sandbox in ("ProtectSystem=full", "ProtectHome=read-only", "PrivateTmp=yes"):
        assert f"\n{sandbox}\n" in service
    # the config's directory (a temp file renamed over the file), the state dir, and the
    # directory of the logs and pid file nginx -t opens under read-only /usr; /var/log is
    # writable in the sandbox already
    assert _directives(service, "ReadWritePaths") == [
        f"{SOURCE}/conf",
        "-/var/lib/hookshift",
        f"-{SOURCE}/logs",
    ]


def test_a_pid_file_or_log_under_etc_or_home_is_opened_and_one_in_tmp_is_left_private() -> None:
    nginx = NginxPaths(
        files=(Path("/etc/nginx/nginx.conf"),),
        edited=(Path("/etc/nginx/nginx.conf"),),
        logs=(Path("/etc/nginx/logs/error.log"), Path("/tmp/debug.log")),
        pid=Path("/home/ops/nginx/nginx.pid"),
    )
    spec = RefreshUnits(
        HOOKSHIFT, Path("/etc/nginx/nginx.conf"), state_dir=Path("/srv/hookshift"), nginx=nginx
    )
    # the log under /etc/nginx is in the config's directory, opened already; nginx -t writes
    # /tmp/debug.log in the service's own /tmp, which harms nothing
    assert spec.write_paths() == ["/etc/nginx", "-/srv/hookshift", "-/home/ops/nginx"]


SPEC = RefreshUnits(HOOKSHIFT, SOURCE / "conf/nginx.conf", state_dir=Path("/var/lib/hookshift"))


@pytest.mark.parametrize(
    ("spec", "where", "what"),
    [
        (
            dataclasses.replace(SPEC, hookshift_bin=Path("/tmp/venv/bin/hookshift")),
            "--hookshift-bin /tmp/venv/bin/hookshift",
            "the service cannot run it: PrivateTmp=yes gives the service a private /tmp",
        ),
        (
            dataclasses.replace(SPEC, nginx_bin="/var/tmp/nginx/sbin/nginx"),
            "--nginx-bin /var/tmp/nginx/sbin/nginx",
            "the service cannot run it: PrivateTmp=yes gives the service a private /var/tmp",
        ),
        (
            dataclasses.replace(SPEC, state_dir=Path("/tmp/hookshift-state")),
            "--state-dir /tmp/hookshift-state",
            "the service cannot keep its state there: PrivateTmp=yes",
        ),
        (
            dataclasses.replace(
                SPEC,
                nginx=dataclasses.replace(
                    SOURCE_PATHS, files=(*SOURCE_PATHS.files, Path("/tmp/hooks.conf"))
                ),
            ),
            f"/tmp/hooks.conf (included by --config {SOURCE}/conf/nginx.conf)",
            "the service cannot read it: PrivateTmp=yes",
        ),
        (
            dataclasses.replace(
                SPEC, nginx=dataclasses.replace(SOURCE_PATHS, pid=Path("/tmp/nginx.pid"))
            ),
            "/tmp/nginx.pid (nginx's pid file)",
            "the service cannot find nginx to reload it: PrivateTmp=yes",
        ),
    ],
    ids=["hookshift", "nginx", "state-dir", "included-file", "pid-file"],
)
def test_a_path_the_service_needs_in_its_private_tmp_is_refused_in_one_line(
    spec: RefreshUnits, where: str, what: str
) -> None:
    with pytest.raises(InputError) as refused:
        render_refresh_units(spec)
    line = refused.value.line()
    assert line.startswith(f"{where}: {what}") and "(fix: " in line and "\n" not in line
    render_refresh_units(dataclasses.replace(SPEC, nginx=SOURCE_PATHS))  # the same, outside /tmp


def test_the_state_dir_must_hold_the_record_apply_wrote_from_here() -> None:
    config = Path("/etc/nginx/nginx.conf")
    ConfigState.of(config).save(
        Saved({str(config): FileRecord(("    server 192.0.2.1:443;  # hookshift",), 0)}, None)
    )
    elsewhere = RefreshUnits(HOOKSHIFT, config, state_dir=Path("/var/lib/hookshift-elsewhere"))
    with pytest.raises(InputError) as refused:
        render_refresh_units(elsewhere)
    assert refused.value.where == "--state-dir /var/lib/hookshift-elsewhere"
    assert "`mirror remove` would refuse that line" in refused.value.what
    assert str(ConfigState.of(config).directory) in refused.value.what
    assert refused.value.fix is not None and refused.value.fix.startswith("leave --state-dir out")


@pytest.fixture
def debian_nginx(monkeypatch: pytest.MonkeyPatch) -> None:
    """nginx -V answers as Debian's nginx does, without running one."""
    monkeypatch.setattr(binary, "find_binary", lambda name="nginx": "/usr/sbin/nginx")
    monkeypatch.setattr(binary, "compiled_defaults", lambda name="nginx": dict(DEBIAN_V))


@pytest.fixture
def applied() -> Iterator[Path]:
    """The config with a mirror, where the service could read it."""
    with seen_by_a_service(APPLIED) as config:
        yield config


@pytest.fixture
def debian() -> Iterator[Path]:
    """Debian's layout without a mirror, where the service could read it."""
    with seen_by_a_service(DEBIAN) as config:
        yield config


@pytest.mark.usefixtures("debian_nginx")
def test_the_command_writes_units_for_the_config_tree_and_the_state_dir_of_mirror_apply(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, applied: Path
) -> None:
    monkeypatch.setenv("HOOKSHIFT_STATE_DIR", "/var/lib/hookshift-of-this-user")
    out = tmp_path / "units"
    out.mkdir()
    code, stdout, stderr = run_in_process(
        "mirror", "refresh-units", "--config", str(applied), "--hookshift-bin", str(HOOKSHIFT),
        "--nginx-prefix", "/", "--out-dir", str(out),
    )  # fmt: skip
    assert code == 0, stderr
    assert "systemctl enable --now hookshift-stage-refresh.timer" in stdout
    assert sorted(p.name for p in out.iterdir()) == sorted([SERVICE_UNIT, TIMER_UNIT])
    service = (out / SERVICE_UNIT).read_text()
    # by default the state dir is the one `mirror apply` and `remove` use from here
    assert _directives(service, "Environment") == [
        "HOOKSHIFT_STATE_DIR=/var/lib/hookshift-of-this-user"
    ]
    assert "--nginx-prefix / " in _directives(service, "ExecStart")[0]
    # the main config's directory (the http lines) and the site's (the symlink's target)
    assert _directives(service, "ReadWritePaths") == [
        str(applied.parent),
        str(applied.parent / "sites-available"),
        "-/var/lib/hookshift-of-this-user",
    ]


@pytest.mark.usefixtures("debian_nginx")
@pytest.mark.parametrize(
    ("options", "line"),
    [
        (
            ("--nginx-prefix", "/nonexistent/nginx"),
            "--nginx-prefix /nonexistent/nginx: no such directory (fix: pass the directory",
        ),
        (
            ("--state-dir", "/tmp/state"),
            "--state-dir /tmp/state: the service cannot keep its state there: PrivateTmp=yes",
        ),
        (
            ("--hookshift-bin", "/var/tmp/hookshift"),
            "--hookshift-bin /var/tmp/hookshift: the service cannot run it: PrivateTmp=yes",
        ),
    ],
    ids=["prefix", "state-dir", "hookshift"],
)
def test_the_command_refuses_in_one_line_writing_nothing(
    tmp_path: Path, options: tuple[str, ...], line: str, applied: Path
) -> None:
    base = {"--hookshift-bin": str(HOOKSHIFT), "--state-dir": "/var/lib/hookshift"}
    base.update(zip(options[::2], options[1::2], strict=True))
    argv = [word for pair in base.items() for word in pair]
    code, stdout, stderr = run_in_process(
        "mirror", "refresh-units", "--config", str(applied), *argv, "--out-dir", str(tmp_path)
    )
    assert code == 2 and stdout == ""
    assert stderr.startswith(f"hookshift: error: {line}") and stderr.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


@pytest.mark.usefixtures("debian_nginx")
def test_the_fix_for_a_hidden_hookshift_installs_it_from_its_repository_not_an_index(
    tmp_path: Path, applied: Path
) -> None:
    code, _, stderr = run_in_process(
        "mirror", "refresh-units", "--config", str(applied), "--hookshift-bin",
        "/var/tmp/hookshift", "--state-dir", "/var/lib/hookshift", "--out-dir", str(tmp_path),
    )  # fmt: skip
    assert code == 2
    assert "pip install /path/to/hookshift, then --hookshift-bin /opt/hookshift/bin/hookshift" in (
        stderr
    )
    assert "pip install hookshift" not in stderr  # an index holds no hookshift: another project


@pytest.mark.usefixtures("debian_nginx")
def test_a_config_without_a_mirror_of_hookshift_s_is_refused_as_refresh_refuses_it(
    tmp_path: Path, debian: Path
) -> None:
    """`mirror refresh` exits 2 on it: a timer running it would fail every minute."""
    argv = ["--hookshift-bin", str(HOOKSHIFT), "--state-dir", "/var/lib/hookshift"]
    code, stdout, stderr = run_in_process(
        "mirror", "refresh-units", "--config", str(debian), *argv, "--out-dir", str(tmp_path)
    )
    assert code == 2 and stdout == ""
    assert stderr == (
        f"hookshift: error: {debian}: no mirror of hookshift's in this config (no `upstream "
        "hookshift_stage`) (fix: pass the main nginx config that `hookshift mirror apply` "
        "changed)\n"
    )
    assert list(tmp_path.iterdir()) == []
    refresh = run_in_process("mirror", "refresh", "--config", str(debian))
    assert refresh == (2, "", stderr)


def test_the_applied_config_is_debian_stock_with_a_mirror_of_hookshift_s() -> None:
    """The fixture the commands above run on: what `mirror remove` takes out leaves the corpus
    case byte for byte, and refresh finds the stage's address it keeps."""
    applied, corpus = load_source(APPLIED), load_source(DEBIAN)
    relative = {p.relative_to(APPLIED.parent): t for p, t in applied.texts.items()}
    assert relative.keys() == {p.relative_to(DEBIAN.parent) for p in corpus.texts}
    for path, text in corpus.texts.items():
        kept = without_ours(relative[path.relative_to(DEBIAN.parent)], None, legacy=True).text
        assert kept == text, path
    stage = written_stage(load(APPLIED))
    assert stage is not None and stage.addresses == ("192.0.2.10",)
