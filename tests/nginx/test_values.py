"""Directive values hookshift writes from the user's options: what it takes, nginx takes; and
the values it reads, as nginx reads them."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from hookshift.errors import InputError
from hookshift.nginx.values import log_file, parse_resolver

TAKEN = {
    "1.1.1.1": ("1.1.1.1", 53),
    "127.0.0.1:5353": ("127.0.0.1", 5353),
    "[::1]": ("::1", 53),
    "[2001:db8::53]:5353": ("2001:db8::53", 5353),
}
# nginx refuses the last two too (an IPv4 address in brackets, an IPv6 zone)
NGINX_REFUSES = ("[127.0.0.1]:5353", "[fe80::1%eth0]")
REFUSED = (
    "127.0.0.1:99999", "1.1.1.1:0", "abc:xyz", "999.1.1.1", "::1", "[::1", "", "1.1.1.1 ",
    *NGINX_REFUSES,
)  # fmt: skip


@pytest.mark.parametrize("spec", sorted(TAKEN))
def test_a_resolver_is_an_address_with_an_optional_port(spec: str) -> None:
    assert parse_resolver(spec) == TAKEN[spec]


@pytest.mark.parametrize("spec", REFUSED)
def test_any_other_resolver_is_refused_in_one_line(spec: str) -> None:
    with pytest.raises(InputError) as err:
        parse_resolver(spec)
    line = err.value.line()
    assert "--resolver" in line and "\n" not in line and "fix:" in line


@pytest.mark.e2e  # runs nginx -t
def test_every_resolver_taken_passes_nginx_t(tmp_path: Path, nginx_bin: str) -> None:
    config = tmp_path / "nginx.conf"
    config.write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\n"
        f"events {{}}\nhttp {{ resolver {' '.join(TAKEN)}; }}\n"
    )
    checked = subprocess.run(
        [nginx_bin, "-t", "-p", str(tmp_path), "-c", str(config)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr


LOG_PREFIX = Path("/srv/sandbox/ng")


@pytest.mark.parametrize(
    ("target", "prefix", "file"),
    [
        ("/var/log/nginx/access.log", LOG_PREFIX, Path("/var/log/nginx/access.log")),
        ("logs/access.log", LOG_PREFIX, LOG_PREFIX / "logs" / "access.log"),
        ("logs/access.log", None, Path("logs/access.log")),
        ("off", LOG_PREFIX, None),
        ("syslog:server=unix:/dev/log", LOG_PREFIX, None),
        ("stderr", LOG_PREFIX, None),
        ("memory:32m", LOG_PREFIX, None),
    ],
)
def test_a_log_target_is_the_file_nginx_opens(
    target: str, prefix: Path | None, file: Path | None
) -> None:
    assert log_file(target, prefix) == file


@pytest.mark.e2e  # runs nginx -t
@pytest.mark.parametrize("spec", NGINX_REFUSES)
def test_nginx_t_refuses_the_forms_refused_that_look_like_addresses(
    tmp_path: Path, nginx_bin: str, spec: str
) -> None:
    config = tmp_path / "nginx.conf"
    config.write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\n"
        f"events {{}}\nhttp {{ resolver {spec}; }}\n"
    )
    checked = subprocess.run(
        [nginx_bin, "-t", "-p", str(tmp_path), "-c", str(config)], capture_output=True, text=True
    )
    assert checked.returncode != 0 and "resolver" in checked.stderr, checked.stderr
