"""The Python API takes a path as a str or a Path, as `open` does, and a path that is not what
a call reads is a hookshift error naming it, never Python's own exception."""

from __future__ import annotations

from pathlib import Path

import pytest

from hookshift import cutover, doctor, mirror, verify
from hookshift.errors import InputError

DEBIAN_SITE = Path(__file__).parents[1] / "nginx" / "corpus" / "debian_stock" / "sites-enabled"
STAGE = "https://abc123.execute-api.ap-northeast-2.amazonaws.com/prod"


@pytest.mark.e2e  # nginx -V
def test_doctor_takes_the_config_as_a_str() -> None:
    assert doctor.check(str(DEBIAN_SITE / "hooks")).config.name == "nginx.conf"


@pytest.mark.e2e  # nginx -V
def test_a_mirror_request_takes_its_paths_as_str() -> None:
    request = mirror.MirrorRequest(
        path="/bizppurio/callback",
        stage_url=STAGE,
        config=str(DEBIAN_SITE / "hooks"),  # type: ignore[arg-type]
        server_name="hooks.example.com",
        parity_log="/var/log/nginx/hookshift-parity.log",  # type: ignore[arg-type]
        nginx_version="1.22.1",
        dns_check=False,
    )
    assert isinstance(request.config, Path) and isinstance(request.parity_log, Path)
    assert mirror.plan(request).config.name == "nginx.conf"


def test_cutover_status_takes_the_journal_as_a_str(tmp_path: Path) -> None:
    with pytest.raises(InputError) as err:
        cutover.status(str(tmp_path / "cutover.jsonl"))  # type: ignore[arg-type]
    assert err.value.where is None or str(tmp_path) in err.value.where
    assert str(tmp_path / "cutover.jsonl") in err.value.line()


def test_heal_given_a_directory_as_its_report_names_the_directory(tmp_path: Path) -> None:
    with pytest.raises(InputError) as err:
        verify.heal(tmp_path, STAGE)
    assert err.value.where == str(tmp_path)
    assert "not a regular file" in err.value.what
