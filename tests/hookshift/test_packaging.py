"""`pip install .` (not editable) gives a working hookshift: templates and samples ship with it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.verify.data import T0, body, message, nginx_line, rid, write_lines, write_messages

REPO = Path(__file__).resolve().parents[2]
ONELINE = REPO / "tests" / "nginx" / "corpus" / "oneline" / "nginx.conf"
PLAN = ("mirror", "plan", "--config", str(ONELINE), "--path", "/cb", "--no-dns-check",
        "--stage-url", "https://abc123.execute-api.ap-northeast-2.amazonaws.com/prod",
        "--nginx-version", "1.22.1")  # fmt: skip


pytestmark = pytest.mark.e2e  # builds a wheel, installs it, runs it as a process


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # from a copy without build/ and *.egg-info: setuptools reuses what an earlier build left
    # there (modules since moved or deleted), which would ship in the wheel
    source = tmp_path_factory.mktemp("source") / "hookshift"
    shutil.copytree(
        REPO,
        source,
        ignore=shutil.ignore_patterns(
            "build", "*.egg-info", ".venv", ".git", "rehearsal-run", "__pycache__", ".*_cache"
        ),
    )
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
            str(source),
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
            *PLAN,
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


@pytest.fixture(scope="module")
def core_venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel installed without extras, its dependencies resolved by pip."""
    venv = tmp_path_factory.mktemp("core") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", str(wheel)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    return venv


def _core(venv: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(venv / "bin" / "hookshift"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_core_install_brings_no_test_bed(core_venv: Path, tmp_path: Path) -> None:
    for module in ("moto", "flask", "werkzeug", "dnslib", "trustme", "airspeed"):
        found = subprocess.run(
            [str(core_venv / "bin" / "python"), "-c", f"import {module}"],
            capture_output=True,
            timeout=60,
        )
        assert found.returncode != 0, f"{module} came with the core install"


def test_the_core_install_plans_a_mirror_and_checks_parity(core_venv: Path, tmp_path: Path) -> None:
    plan = _core(
        core_venv,
        *PLAN,
        cwd=tmp_path,
    )
    assert plan.returncode == 0, plan.stderr
    assert "mirror /__hookshift_mirror;  # hookshift" in plan.stdout

    app = write_lines(
        tmp_path / "p.log", [nginx_line(rid(n), T0 + n * 1000, body(n)) for n in range(3)]
    )
    queue = write_messages(
        tmp_path / "q.jsonl",
        [message(f"m{n}", body(n), T0 + n * 1000 + 9, request_id=rid(n)) for n in range(3)],
    )
    parity = _core(
        core_venv, "verify", "parity", "--app", f"nginx:{app}", "--queue", f"jsonl:{queue}",
        cwd=tmp_path,
    )  # fmt: skip
    assert parity.returncode == 0, parity.stderr
    assert parity.stdout.startswith("parity: PASS - all 3 compared callback(s)")

    template = _core(core_venv, "apigw", "template", cwd=tmp_path)
    assert template.returncode == 0, template.stderr
    render = _core(
        core_venv, "apigw", "render", "--format", "cloudformation", "--queue-name", "callbacks",
        cwd=tmp_path,
    )  # fmt: skip
    assert render.returncode == 0, render.stderr
    assert "AWS::ApiGateway::RestApi" in render.stdout


@pytest.mark.parametrize(
    ("argv", "command"),
    [
        (["rehearse"], "hookshift rehearse"),
        (["rehearse", "--help"], "hookshift rehearse"),
        (["apigw", "serve", "--sqs-endpoint", "http://127.0.0.1:9", "--queue-url", "http://127.0.0.1:9/1/q"],
         "hookshift apigw serve"),
    ],
)  # fmt: skip
def test_a_test_bed_command_names_the_extra_in_one_line(
    core_venv: Path, tmp_path: Path, argv: list[str], command: str
) -> None:
    result = _core(core_venv, *argv, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr
    assert command in result.stderr
    assert "pip install '/path/to/hookshift[rehearse]'" in result.stderr
    assert "Traceback" not in result.stderr
