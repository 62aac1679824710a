"""The example shipped with doctor: the seed's mirror, accepted by nginx -t, flagged by doctor."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from hookshift.doctor import Severity, diagnose_file
from hookshift.doctor.examples import SEED_MIRROR
from tests.doctor.conftest import line_of

pytestmark = pytest.mark.e2e  # every test here starts a process


def test_seed_example_passes_nginx_t_and_doctor_names_its_runtime_failures(
    tmp_path: Path, nginx_bin: str
) -> None:
    config = tmp_path / "nginx.conf"
    shutil.copyfile(SEED_MIRROR, config)
    (tmp_path / "logs").mkdir()
    result = subprocess.run(
        [nginx_bin, "-t", "-p", f"{tmp_path}/", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    findings = diagnose_file(config)
    errors = {f.code: f.where for f in findings if f.severity is Severity.ERROR}
    assert errors == {
        "mirror-wrong-host": line_of(config, "location = /mirror_api_gw"),
        "proxy-ssl-no-sni": line_of(config, "proxy_pass https://"),
    }
    warnings = {f.code for f in findings if f.severity is Severity.WARNING}
    assert warnings == {
        "mirror-holds-callback",
        "mirror-forwards-credentials",
        "mirror-slow-timeouts",
        "mirror-no-circuit-breaker",
        "mirror-resolver-timeout",
        "proxy-ssl-no-verify",
    }
