"""Every corpus config: plan, apply to a copy, the real nginx -t passes, remove restores bytes."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import pytest

from hookshift.errors import InputError
from hookshift.mirror.apply import apply_plan
from hookshift.mirror.plan import make_plan
from hookshift.mirror.remove import remove_marked
from hookshift.nginx import binary, splice
from tests.mirror.helpers import copy_case, options, snapshot

VERSION = (1, 22, 1)


class Case(NamedTuple):
    name: str
    path: str
    server_name: str | None
    listen: str | None
    location_at: str  # file relative to the case root : line


CASES = [
    Case(
        "debian",
        "/bizppurio/callback",
        "hooks.example.com",
        "80",
        "sites-enabled/hooks.example.com:12",
    ),
    Case(
        "debian",
        "/bizppurio/callback",
        "hooks.example.com",
        None,
        "sites-enabled/hooks.example.com:12",
    ),
    Case("debian_stock", "/bizppurio/callback", "hooks.example.com", None, "sites-enabled/hooks:4"),
    Case("debian_stock", "/bizppurio/callback", "hooks.example.com", "80", "sites-enabled/hooks:4"),
    Case("debian_stock", "/bizppurio/callback", None, None, "sites-enabled/hooks:4"),
    Case("crlf", "/kakao/result", "callbacks.local", None, "nginx.conf:19"),
    Case("oneline", "/cb", None, None, "nginx.conf:4"),
    Case("nested_regex", "/api/v2/callback/bizppurio", "api.example.com", None, "nginx.conf:18"),
    Case("nested_regex", "/api/v1/other", None, None, "nginx.conf:14"),
    Case("map_if", "/hooks/sms", None, None, "nginx.conf:22"),
    Case("lua", "/lua/callback", None, None, "nginx.conf:16"),
    Case("multi_server", "/cb", "a.hooks.example.com", "8086", "nginx.conf:16"),
    Case("multi_server", "/cb", "acme.tenants.example.com", "8086", "nginx.conf:21"),
    Case("multi_server", "/cb", "www.example.com", "8086", "nginx.conf:6"),
    Case("multi_server", "/cb", None, "127.0.0.1:8087", "nginx.conf:26"),
    Case("tls", "/callback", "secure.example.com", None, "nginx.conf:15"),
    Case("location_include", "/vendor/cb", None, None, "locations/20-callback.conf:2"),
]


@pytest.mark.e2e
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.name}:{c.path}:{c.server_name}")
@pytest.mark.parametrize("mode", ["mirror", "forward"])
def test_apply_passes_nginx_t_and_remove_restores_every_byte(
    case: Case, mode: str, tmp_path: Path, nginx_bin: str, ca_file: Path
) -> None:
    config = copy_case(case.name, tmp_path)
    root = config.parent
    before = snapshot(root)
    plan = make_plan(
        options(
            config, case.path, ca_file, server_name=case.server_name, listen=case.listen, mode=mode
        ),
        VERSION,
    )
    assert plan.location.where == f"{root / case.location_at}"
    result = apply_plan(plan, nginx_bin=nginx_bin, backup_dir=tmp_path / "bk", prefix=root)
    assert result.changed
    after = snapshot(root)
    assert after != before
    for path, data in after.items():
        if data != before[path]:
            assert (
                splice.remove(data.decode("utf-8", "surrogateescape")).encode(
                    "utf-8", "surrogateescape"
                )
                == before[path]
            )
    assert binary.test_config(config, nginx_bin=nginx_bin, prefix=root).ok
    remove_marked(config, nginx_bin=nginx_bin, backup_dir=tmp_path / "bk", prefix=root)
    assert snapshot(root) == before


@pytest.mark.e2e
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.name}:{c.path}:{c.server_name}")
def test_stage_dns_reload_passes_nginx_t_and_remove_restores_every_byte(
    case: Case, tmp_path: Path, nginx_bin: str, ca_file: Path
) -> None:
    """nginx resolves the keep-alive upstream's host at -t with the system resolver, so the
    stage here is `localhost` (getaddrinfo answers it from /etc/hosts, no network)."""
    config = copy_case(case.name, tmp_path)
    root = config.parent
    before = snapshot(root)
    plan = make_plan(
        options(
            config,
            case.path,
            ca_file,
            server_name=case.server_name,
            listen=case.listen,
            stage_url="https://localhost/prod",
            stage_dns="reload",
        ),
        VERSION,
    )
    assert plan.stage_dns == "reload"
    apply_plan(plan, nginx_bin=nginx_bin, backup_dir=tmp_path / "bk", prefix=root)
    assert any(b"server localhost:443 max_fails" in d for d in snapshot(root).values())
    assert binary.test_config(config, nginx_bin=nginx_bin, prefix=root).ok
    remove_marked(config, nginx_bin=nginx_bin, backup_dir=tmp_path / "bk", prefix=root)
    assert snapshot(root) == before


REFUSED = [
    ("debian", "/", None, "80", r"try_files \$uri \$uri/ =404.*not passed to an app"),
    ("nested_regex", "/static/logo.png", None, None, "static file handler"),
    ("nested_regex", "/img/logo.PNG", None, None, "static file handler"),
    ("multi_server", "/cb", "unknown.example.org", "8086", "no server is named"),
    (
        "debian_stock",
        "/bizppurio/callback",
        "hooks.exmaple.com",
        None,
        r"--server-name: hooks.example.com\)",
    ),
    ("debian_stock", "/bizppurio/callback", "hooks.example.com", "[::]:80", r"listen on \*:80"),
    ("debian_stock", "/", None, None, r"location / .*=404.*--server-name"),
]


@pytest.mark.parametrize(("name", "path", "server_name", "listen", "message"), REFUSED)
def test_a_place_that_is_not_the_callbacks_receiver_is_refused(
    name: str,
    path: str,
    server_name: str | None,
    listen: str | None,
    message: str,
    tmp_path: Path,
    ca_file: Path,
) -> None:
    config = copy_case(name, tmp_path)
    before = snapshot(config.parent)
    opts = options(config, path, ca_file, server_name=server_name, listen=listen)
    with pytest.raises(InputError, match=message):
        make_plan(opts, VERSION)
    assert snapshot(config.parent) == before


def test_crlf_file_gets_crlf_lines_and_tabs(tmp_path: Path, ca_file: Path) -> None:
    config = copy_case("crlf", tmp_path)
    plan = make_plan(options(config, "/kakao/result", ca_file), VERSION)
    (change,) = plan.changes
    added = [line for line in change.new_text.split("\n") if line.endswith("# hookshift\r")]
    assert added, "inserted lines keep the file's CRLF endings"
    assert all(line.startswith("\t") for line in added)
    assert "\n" not in change.new_text.replace("\r\n", "")


@pytest.mark.e2e
def test_a_symlinked_site_stays_a_symlink_and_its_target_is_edited(
    tmp_path: Path, nginx_bin: str, ca_file: Path
) -> None:
    config = copy_case("debian", tmp_path)
    link = config.parent / "sites-enabled" / "hooks.example.com"
    target = config.parent / "sites-available" / "hooks.example.com"
    original = target.read_bytes()
    plan = make_plan(
        options(config, "/bizppurio/callback", ca_file, server_name="hooks.example.com"), VERSION
    )
    apply_plan(plan, nginx_bin=nginx_bin, backup_dir=tmp_path / "bk", prefix=config.parent)
    assert link.is_symlink() and link.resolve() == target.resolve()
    assert b"mirror /__hookshift_mirror;" in target.read_bytes()
    remove_marked(config, nginx_bin=nginx_bin, backup_dir=tmp_path / "bk", prefix=config.parent)
    assert link.is_symlink() and target.read_bytes() == original


def test_location_in_included_file_is_edited_in_that_file(tmp_path: Path, ca_file: Path) -> None:
    config = copy_case("location_include", tmp_path)
    plan = make_plan(options(config, "/vendor/cb", ca_file), VERSION)
    changed = {c.path.relative_to(config.parent).as_posix() for c in plan.changes}
    assert changed == {"nginx.conf", "servers.conf", "locations/20-callback.conf"}
    cb = next(c for c in plan.changes if c.path.name == "20-callback.conf")
    assert "  location = /vendor/cb {\n    mirror /__hookshift_mirror;  # hookshift\n" in (
        cb.new_text
    )


@pytest.mark.e2e
def test_a_symlinked_main_config_takes_includes_from_the_link_directory(
    tmp_path: Path, nginx_bin: str, ca_file: Path
) -> None:
    """nginx resolves relative includes beside the -c path, not beside the link's target."""
    config = copy_case("location_include", tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    real_main = elsewhere / "nginx.conf"
    config.rename(real_main)
    config.symlink_to(real_main)
    before = snapshot(config.parent)
    plan = make_plan(options(config, "/vendor/cb", ca_file), VERSION)
    assert plan.location.where == f"{config.parent / 'locations' / '20-callback.conf'}:2"
    apply_plan(plan, nginx_bin=nginx_bin, backup_dir=tmp_path / "bk", prefix=config.parent)
    assert config.is_symlink() and b"hookshift" in real_main.read_bytes()
    remove_marked(config, nginx_bin=nginx_bin, backup_dir=tmp_path / "bk", prefix=config.parent)
    assert snapshot(config.parent) == before
