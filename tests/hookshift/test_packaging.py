"""`pip install .` (not editable) gives a working hookshift: templates and samples ship with it."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ONELINE = REPO / "tests" / "nginx" / "corpus" / "oneline" / "nginx.conf"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(REPO),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (found,) = out.glob("hookshift-*.whl")
    return found


def test_the_wheel_installs_one_top_level_package_with_its_data(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    top = {n.split("/", 1)[0] for n in names}
    (dist_info,) = (t for t in top if t.endswith(".dist-info"))
    assert top == {"hookshift", dist_info}
    if f"{dist_info}/top_level.txt" in names:
        assert zipfile.ZipFile(wheel).read(f"{dist_info}/top_level.txt").split() == [b"hookshift"]
    for package in (
        "nginx",
        "mirror",
        "doctor",
        "apigw",
        "rehearsal",
        "verify",
        "cutover",
        "templates",
    ):
        assert f"hookshift/{package}/__init__.py" in names, package
    assert any(n.startswith("hookshift/templates/nginx/") and n.endswith(".j2") for n in names)
    assert "hookshift/templates/apigw/sqs_send_message.vtl" in names
    assert "hookshift/rehearsal/samples/bizppurio-results.jsonl" in names
    assert "hookshift/doctor/examples/seed-mirror.conf" in names


def test_an_installed_copy_plans_a_mirror_from_its_own_templates(
    wheel: Path, tmp_path: Path
) -> None:
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, hookshift.templates as t; print(t.__file__, file=sys.stderr);"
            "from hookshift.cli import main; main()",
            "mirror",
            "plan",
            "--config",
            str(ONELINE),
            "--path",
            "/cb",
            "--stage-url",
            "https://abc123.execute-api.ap-northeast-2.amazonaws.com/prod",
            "--no-dns-check",
            "--nginx-version",
            "1.22.1",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert str(target) in result.stderr.splitlines()[0]  # the installed copy, not the checkout
    assert "mirror /__hookshift_mirror;  # hookshift" in result.stdout
