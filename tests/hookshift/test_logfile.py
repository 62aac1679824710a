"""A log hookshift makes for nginx: when it cannot, the line says why and what to do."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hookshift.errors import InputError
from hookshift.logfile import precreate_log, rotation_keeps_private, rotation_warning

NOBODY = 65534


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to become another user")
def test_a_log_in_a_directory_the_user_may_not_write_names_the_cause(tmp_path: Path) -> None:
    """Run as nobody, as a user without sudo would: the fix is about who may write, not about
    symlinks."""
    logs = tmp_path / "logs"
    logs.mkdir(mode=0o755)
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # the child drops to nobody, tries, and reports the line it got
        os.close(read)
        try:
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            precreate_log(logs / "hookshift-parity.log", user="nobody", group="nogroup")
            os.write(write, b"made")
        except InputError as err:
            os.write(write, err.line().encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as f:
        said = f.read().decode()
    os.waitpid(child, 0)
    assert said == (
        f"{logs / 'hookshift-parity.log'}: cannot open the log (Permission denied) (fix: run "
        "as a user that may write it (nginx's logs are root's), or choose another log path)"
    )


DEBIAN_RULE = """/var/log/nginx/*.log {
	daily
	rotate 14
	create 0640 www-data adm
	sharedscripts
	postrotate
		invoke-rc.d nginx rotate >/dev/null 2>&1
	endscript
}
"""


@pytest.mark.parametrize(
    ("rule", "log", "private"),
    [
        (DEBIAN_RULE, "/var/log/nginx/hookshift-parity.log", True),
        (DEBIAN_RULE, "/srv/logs/hookshift-parity.log", False),  # no rule takes it
        (DEBIAN_RULE.replace("0640", "0644"), "/var/log/nginx/hookshift-parity.log", False),
        (
            DEBIAN_RULE.replace("create 0640 www-data adm", "copytruncate"),
            "/var/log/nginx/p.log",
            True,
        ),
        (DEBIAN_RULE.replace("\tcreate 0640 www-data adm\n", ""), "/var/log/nginx/p.log", False),
    ],
)
def test_a_parity_log_stays_private_only_under_a_rule_that_keeps_it_so(
    tmp_path: Path, rule: str, log: str, private: bool
) -> None:
    """nginx opens the next log itself after a rotation, 0644, unless logrotate creates it
    (or truncates it in place): the parity log holds every callback's body."""
    (tmp_path / "nginx").write_text(rule)
    assert rotation_keeps_private(Path(log), tmp_path) is private
    warning = rotation_warning(Path(log), tmp_path)
    assert (warning is None) is private
    if warning is not None:
        assert f"no logrotate rule keeps {log} private" in warning and "create 0640" in warning


def test_a_log_directory_anyone_may_write_is_refused_unless_sticky(tmp_path: Path) -> None:
    """Anyone could put a file of theirs where nginx reopens the log after a rotation; a
    sticky directory (as /tmp) lets them add names, not replace ours."""
    open_dir, sticky = tmp_path / "open", tmp_path / "sticky"
    for directory, mode in ((open_dir, 0o777), (sticky, 0o1777)):
        directory.mkdir()
        directory.chmod(mode)
    with pytest.raises(InputError) as refused:
        precreate_log(open_dir / "parity.log")
    assert "may be written by any user (mode 0777)" in refused.value.what
    assert not (open_dir / "parity.log").exists()
    assert precreate_log(sticky / "parity.log")


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
def test_an_existing_log_of_another_user_is_refused_and_left_alone(tmp_path: Path) -> None:
    log = tmp_path / "parity.log"
    log.write_text("")
    log.chmod(0o666)
    os.chown(log, NOBODY, NOBODY)
    with pytest.raises(InputError, match=r"belongs to another user \(uid 65534\)"):
        precreate_log(log)
    assert (log.stat().st_uid, log.stat().st_mode & 0o777) == (NOBODY, 0o666)


def test_an_existing_log_with_a_second_name_is_refused(tmp_path: Path) -> None:
    log = tmp_path / "parity.log"
    log.write_text("")
    os.link(log, tmp_path / "copy-of-every-callback")
    with pytest.raises(InputError, match=r"1 other name\(s\) \(hard links\)"):
        precreate_log(log)
    (tmp_path / "copy-of-every-callback").unlink()
    assert precreate_log(log) is False  # kept: made by this user, one name


@pytest.mark.parametrize(
    ("worker", "create", "reopen"),
    [
        (None, "create 0640 www-data adm", "invoke-rc.d nginx rotate"),
        (("www-data", "www-data"), "create 0640 www-data adm", "invoke-rc.d nginx rotate"),
        (("nginx", "nginx"), "create 0640 nginx nginx", "nginx -s reopen"),
    ],
    ids=["no user", "debian", "rhel"],
)
def test_the_suggested_rule_names_the_user_nginx_runs_as(
    tmp_path: Path, worker: tuple[str, str] | None, create: str, reopen: str
) -> None:
    """A rule that names a user or group the host lacks (adm on RHEL) makes logrotate fail."""
    warning = rotation_warning(Path("/var/log/nginx/p.log"), tmp_path, worker=worker)
    assert warning is not None
    assert f" {create} " in warning and f"postrotate {reopen} >/dev/null" in warning


def test_the_user_nginx_runs_as_is_read_from_the_main_context(tmp_path: Path) -> None:
    from hookshift.nginx.source import load_source

    config = tmp_path / "nginx.conf"
    config.write_text("user nginx;\nevents {}\nhttp { server { listen 80; } }\n")
    assert load_source(config).config.worker_user() == ("nginx", "nginx")
    config.write_text("user web staff;\nevents {}\nhttp {}\n")
    assert load_source(config).config.worker_user() == ("web", "staff")
    config.write_text("events {}\nhttp {}\n")
    assert load_source(config).config.worker_user() is None
