"""`pip install .` (not editable) gives a working hookshift: templates and samples ship with it."""

from __future__ import annotations

import email.message
import email.parser
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import hookshift
from hookshift.errors import REHEARSE_MODULES
from tests.verify.data import T0, body, message, nginx_line, rid, write_lines, write_messages

REPO = Path(__file__).resolve().parents[2]
ONELINE = REPO / "tests" / "nginx" / "corpus" / "oneline" / "nginx.conf"
PLAN = ("mirror", "plan", "--config", str(ONELINE), "--path", "/cb", "--no-dns-check",
        "--stage-url", "https://abc123.execute-api.ap-northeast-2.amazonaws.com/prod",
        "--nginx-version", "1.22.1")  # fmt: skip


# the project's own checks and tests (the dev extra): never a dependency of an install
DEV_ONLY = {"pytest", "pytest-timeout", "pytest-xdist", "hypothesis", "ruff", "mypy", "cfn-lint",
            "openapi-spec-validator", "python-hcl2", "prometheus-client", "setuptools"}  # fmt: skip
# what only the test bed uses (the stage emulator, SQS on moto, DNS): `hookshift[rehearse]`
TEST_BED = ("moto", "flask", "werkzeug", "dnslib", "trustme", "airspeed", "jsonschema")
# what `import hookshift` and its API packages leave to the calls that need them
HEAVY = REHEARSE_MODULES | {"duckdb", "boto3", "botocore"}

pytestmark = pytest.mark.e2e  # builds a wheel, installs it, runs it as a process


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The repository as a user gets it: without build/, *.egg-info and the venv. setuptools
    reuses what an earlier build left in build/ (modules since moved or deleted), which would
    ship in the wheel."""
    copy = tmp_path_factory.mktemp("source") / "hookshift"
    shutil.copytree(
        REPO,
        copy,
        ignore=shutil.ignore_patterns(
            "build", "*.egg-info", ".venv", ".git", "rehearsal-run", "__pycache__", ".*_cache"
        ),
    )
    return copy


def _build_wheel(source: Path, out: Path) -> Path:
    """The wheel pip builds from `source` (a source tree or an sdist)."""
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


@pytest.fixture(scope="module")
def wheel(source: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _build_wheel(source, tmp_path_factory.mktemp("wheel"))


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


def _metadata(wheel: Path) -> email.message.Message:
    with zipfile.ZipFile(wheel) as whl:
        (name,) = (n for n in whl.namelist() if n.endswith(".dist-info/METADATA"))
        return email.parser.BytesParser().parsebytes(whl.read(name))


def test_the_wheel_s_metadata_is_what_pip_and_the_user_need(wheel: Path) -> None:
    meta = _metadata(wheel)
    assert meta["Name"] == "hookshift"
    assert meta["Version"] == hookshift.__version__  # `hookshift --version` says the same
    assert meta["Requires-Python"] == ">=3.11"
    requires = meta.get_all("Requires-Dist") or []
    core = {re.split(r"[ ;<>=!~\[]", r, maxsplit=1)[0].lower() for r in requires if ";" not in r}
    # a production nginx host gets the core only: no tool of the project's own checks
    assert core & DEV_ONLY == set()
    assert core >= {"crossplane", "jinja2", "click", "boto3", "duckdb", "dnspython"}
    with zipfile.ZipFile(wheel) as whl:
        (entry,) = (n for n in whl.namelist() if n.endswith(".dist-info/entry_points.txt"))
        scripts = whl.read(entry).decode()
    assert "hookshift = hookshift.cli:main" in scripts


def test_the_sdist_builds_the_same_wheel_as_the_source_tree(
    source: Path, wheel: Path, tmp_path: Path
) -> None:
    """pip installs from an sdist when it has no wheel: the templates, samples and py.typed
    must reach the wheel that way too, not only from a checkout."""
    import tarfile

    sdist_dir = tmp_path / "sdist"
    subprocess.run(
        [sys.executable, "-c",
         "import sys; from setuptools import build_meta as b; b.build_sdist(sys.argv[1])",
         str(sdist_dir)],
        cwd=source,
        check=True,
        capture_output=True,
        timeout=300,
    )  # fmt: skip
    (sdist,) = sdist_dir.glob("hookshift-*.tar.gz")
    with tarfile.open(sdist) as tar:
        tar.extractall(tmp_path / "unpacked", filter="data")
    (unpacked,) = (tmp_path / "unpacked").iterdir()
    rebuilt = _build_wheel(unpacked, tmp_path / "wheel")
    files = set(zipfile.ZipFile(wheel).namelist())
    assert set(zipfile.ZipFile(rebuilt).namelist()) == files
    assert "hookshift/py.typed" in files


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
    # a missing one of them is reported as the missing extra, not as a traceback
    assert set(TEST_BED) <= REHEARSE_MODULES
    for module in TEST_BED:
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


def test_every_command_s_help_works_in_the_core_install(core_venv: Path, tmp_path: Path) -> None:
    """Each command and group answers --help without the test bed (rehearse says it needs it)."""
    walk = """
import json, click
from hookshift.cli import cli
found = []
def visit(command, path, parent):
    ctx = click.Context(command, info_name=path[-1], parent=parent)
    found.append(path[1:])
    if isinstance(command, click.Group):
        for name in command.list_commands(ctx):
            visit(command.get_command(ctx, name), [*path, name], ctx)
visit(cli, ["hookshift"], None)
print(json.dumps(found))
"""
    listed = subprocess.run(
        [str(core_venv / "bin" / "python"), "-c", walk],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    commands = json.loads(listed.stdout)
    assert ["verify", "parity"] in commands and ["mirror", "plan"] in commands
    for words in commands:
        result = _core(core_venv, *words, "--help", cwd=tmp_path)
        if words == ["rehearse"]:
            assert result.returncode == 2  # the extra is named (the test below)
            continue
        assert result.returncode == 0, (words, result.stderr)
        assert result.stdout.startswith("Usage: hookshift"), words
        assert result.stderr == "", words


def test_the_core_install_imports_the_api_without_the_heavy_parts(
    core_venv: Path, tmp_path: Path
) -> None:
    """``import hookshift`` and its API packages load neither the test bed nor DuckDB or
    boto3: those come with the call that needs them."""
    probe = (
        "import sys, hookshift, hookshift.mirror, hookshift.doctor, hookshift.verify,"
        " hookshift.cutover, hookshift.errors;"
        f" print(sorted(m for m in sys.modules if m.partition('.')[0] in {sorted(HEAVY)!r}"
        " or m.startswith('hookshift.rehearsal')))"
    )
    result = subprocess.run(
        [str(core_venv / "bin" / "python"), "-c", probe],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    assert result.stdout.strip() == "[]"


def _lowest(requirement: str) -> str:
    """``click>=8.2`` -> ``click==8.2``: the oldest release the requirement lets pip choose."""
    match = re.fullmatch(r"([A-Za-z0-9._-]+)(\[[^]]*\])?\s*>=\s*([0-9][0-9.]*)(,.*)?", requirement)
    assert match, f"{requirement}: a runtime dependency needs a lower bound (>=) that works"
    return f"{match[1]}=={match[3]}"


@pytest.fixture(scope="module")
def lowest_venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel over the oldest release of each dependency that pyproject allows: what a host
    whose pip keeps already installed packages gets, and where a raised need shows first."""
    requires = [r for r in _metadata(wheel).get_all("Requires-Dist") or [] if ";" not in r]
    venv = tmp_path_factory.mktemp("lowest") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", str(wheel), *map(_lowest, requires)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    return venv


def test_the_oldest_dependencies_pyproject_allows_run_the_core(
    lowest_venv: Path, tmp_path: Path
) -> None:
    for words in ([], ["mirror"], ["verify"]):
        shown = _core(lowest_venv, *words, "--help", cwd=tmp_path)
        assert shown.returncode == 0, shown.stderr
    plan = _core(lowest_venv, *PLAN, cwd=tmp_path)
    assert plan.returncode == 0, plan.stderr
    assert "mirror /__hookshift_mirror;  # hookshift" in plan.stdout
    # a broken line that is not the last one is one malformed record, and --strict names it
    lines = [nginx_line(rid(n), T0 + n * 1000, body(n)) for n in range(3)]
    app = tmp_path / "p.log"
    app.write_text(lines[0][:20] + "\n" + "".join(line + "\n" for line in lines))
    queue = write_messages(
        tmp_path / "q.jsonl",
        [message(f"m{n}", body(n), T0 + n * 1000 + 9, request_id=rid(n)) for n in range(3)],
    )
    parity = _core(
        lowest_venv, "verify", "parity", "--app", f"nginx:{app}", "--queue", f"jsonl:{queue}",
        "--strict", cwd=tmp_path,
    )  # fmt: skip
    assert parity.returncode == 2, parity.stderr
    assert "1 malformed record(s), first: " in parity.stderr, parity.stderr
    render = _core(
        lowest_venv, "apigw", "render", "--format", "cloudformation", "--queue-name", "cb",
        cwd=tmp_path,
    )  # fmt: skip
    assert render.returncode == 0, render.stderr


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
