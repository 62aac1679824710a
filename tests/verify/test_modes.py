"""Files that hold callbacks are the owner's only, whatever the umask."""

from __future__ import annotations

import grp
import os
import pwd
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from hookshift.errors import InputError
from hookshift.logfile import precreate_log
from hookshift.verify.archive import META, Archive, archive_queue_url
from tests.verify.data import body, message
from tests.verify.test_cli import _clean, hookshift


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def open_umask() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def test_archive_directory_segments_and_record_are_owner_only(tmp_path: Path) -> None:
    root = tmp_path / "archive"
    url = "https://sqs.ap-northeast-2.amazonaws.com/123456789012/cb"
    with Archive(root, url) as archive:
        assert archive.append([message("m1", body(1), 1)]) == 1
    assert mode(root) == 0o700
    segments = list(root.glob("*.jsonl"))
    assert segments and all(mode(s) == 0o600 for s in segments)
    assert mode(root / META) == 0o600
    assert archive_queue_url(root) == url


@pytest.mark.e2e
def test_a_report_file_is_owner_only_also_over_an_older_open_one(tmp_path: Path) -> None:
    app, queue = _clean(tmp_path)
    out = tmp_path / "report.html"
    out.write_text("old")
    out.chmod(0o644)
    fresh = tmp_path / "fresh.json"
    for path, fmt in ((out, "html"), (fresh, "json")):
        result = hookshift(
            "verify", "parity", "--app", f"nginx:{app}", "--queue", f"jsonl:{queue}",
            "--format", fmt, "--out", str(path),
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert mode(path) == 0o600


def test_the_parity_log_is_made_as_debian_makes_nginx_logs(tmp_path: Path) -> None:
    log = tmp_path / "hookshift-parity.log"
    assert precreate_log(log)
    assert mode(log) == 0o640 and log.read_bytes() == b""
    if os.geteuid() == 0:
        info = log.stat()
        assert pwd.getpwuid(info.st_uid).pw_name == "www-data"
        assert grp.getgrgid(info.st_gid).gr_name == "adm"
    # an existing, world-readable log keeps its lines and loses the world's read
    log.write_text("kept\n")
    log.chmod(0o644)
    assert not precreate_log(log)
    assert mode(log) == 0o640 and log.read_text() == "kept\n"


def test_the_parity_log_path_may_not_be_a_symlink(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("x")
    secret.chmod(0o600)
    link = tmp_path / "hookshift-parity.log"
    link.symlink_to(secret)
    with pytest.raises(InputError, match="symlink"):
        precreate_log(link)
    assert mode(secret) == 0o600 and secret.stat().st_uid == os.geteuid()


def test_an_archive_made_open_is_closed_when_pulled_into_again(tmp_path: Path) -> None:
    root = tmp_path / "archive"
    root.mkdir(mode=0o755)
    old = root / "seg-old.jsonl"
    old.write_text('{"MessageId": "m0", "Body": "x"}\n')
    old.chmod(0o644)
    with Archive(root) as archive:
        assert "m0" in archive
    assert mode(root) == 0o700 and mode(old) == 0o600
