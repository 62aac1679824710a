"""An advance's dry run asks the real nginx about the config the advance would write.

A plan the engine makes offline can still be one nginx refuses (a name nginx resolves when it
reads the config, a config broken by hand and adopted): the dry run must refuse it as the
advance does, in the same line, with none of the user's files written and no file left behind.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hookshift.nginx.binary import nginx_version
from tests.cutover.helpers import Cutover, make, nginx_t, run

pytestmark = pytest.mark.e2e  # a real nginx tests every result


@pytest.fixture
def any_nginx(each_nginx: str) -> str:
    """Each nginx binary there is (conftest's each_nginx)."""
    return each_nginx


def _everything(root: Path) -> dict[Path, bytes | None]:
    """Every file and directory under `root`: a file's bytes (None for a directory)."""
    return {p: None if p.is_dir() else p.read_bytes() for p in sorted(root.rglob("*"))}


def _ready(tmp_path: Path, nginx_bin: str) -> Cutover:
    cut = make(tmp_path, nginx_bin)
    # the logs a running nginx has already made: nginx -t opens them, as every change's does
    assert nginx_t(cut).returncode == 0
    return cut


def _refused_alike(cut: Cutover, *options: str) -> str:
    """The dry run's refusal, checked to equal the advance's and to have written nothing."""
    root = cut.state.parent
    before = _everything(root)
    dry = run("cutover", "advance", "--state", str(cut.state), "--dry-run", *options)
    assert dry.returncode == 2, dry.stdout + dry.stderr
    assert _everything(root) == before  # no copy, no log, no lock file, no snapshot
    real = run("cutover", "advance", "--state", str(cut.state), *options)
    assert real.returncode == 2, real.stdout + real.stderr
    assert {p: v for p, v in _everything(root).items() if p in before} == before
    lines = dry.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in dry.stderr, dry.stderr
    assert dry.stderr == real.stderr
    return lines[0]


def test_a_result_nginx_rejects_is_refused_by_the_dry_run(tmp_path: Path, nginx_bin: str) -> None:
    """nginx before 1.27.3 with --stage-dns reload resolves the stage's name when it reads the
    config: a name that does not resolve passes the engine's offline plan, not nginx -t."""
    if nginx_version(nginx_bin) >= (1, 27, 3):
        pytest.skip("this nginx resolves the stage's name at run time")
    cut = _ready(tmp_path, nginx_bin)
    line = _refused_alike(cut, "--stage-dns", "reload", "--stage-url", "https://abc.invalid/prod")
    assert "nginx -t rejects the config that mirror-stage would write" in line, line
    assert 'host not found in upstream "abc.invalid:443"' in line, line
    assert f"in {cut.main}:" in line, line  # the user's file, not a copy's name
    assert not list(cut.main.parent.glob(".hookshift-check-*"))


def test_a_config_nginx_rejects_now_is_refused_by_the_dry_run(
    tmp_path: Path, any_nginx: str
) -> None:
    """An edit adopted with the dry run that nginx refuses (a certificate that is not there):
    the engine would refuse to touch that config; the dry run says so first."""
    cut = _ready(tmp_path, any_nginx)
    site = cut.site.read_text(encoding="utf-8")
    broken = site.replace(
        "    location / {",
        "    ssl_certificate /nonexistent/cert.pem;\n"
        "    ssl_certificate_key /nonexistent/key.pem;\n\n"
        "    location / {",
    )
    assert broken != site
    cut.site.write_text(broken, encoding="utf-8")
    line = _refused_alike(cut, "--adopt-edits")
    assert "nginx -t fails on the config as it is now, refusing to change it" in line, line
    assert "/nonexistent/cert.pem" in line, line


def test_a_dry_run_that_passes_nginx_leaves_no_file_of_nginx_behind(
    tmp_path: Path, any_nginx: str
) -> None:
    """nginx -t opens the parity log and the relay's error log the result names; the dry run
    takes away the ones it made (the change makes them owner-only before nginx opens them)."""
    cut = _ready(tmp_path, any_nginx)
    root = cut.state.parent
    before = _everything(root)
    dry = run("cutover", "advance", "--state", str(cut.state), "--dry-run")
    assert dry.returncode == 1 and "FAIL stage-probe" in dry.stdout, dry.stderr
    assert "not tested with nginx -t" not in dry.stderr, dry.stderr
    assert _everything(root) == before
