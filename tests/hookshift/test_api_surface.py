"""What a Python user reads about hookshift's API is what the installed package has.

The README's "Use from Python" and each package's docstring are the API's documentation: a name
they promise that the package lacks is an AttributeError in the user's first script, a call
without type hints is an ``Any`` that strict mypy lets through, and an example that no longer
runs teaches the wrong calls. These tests read the documentation and check it against the code.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import json
import re
import shutil
import subprocess
import sys
import typing
from pathlib import Path
from types import ModuleType

import pytest

from hookshift import errors
from tests.verify.data import T0, body, message, nginx_line, rid, write_lines, write_messages

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text(encoding="utf-8")
# the packages whose docstring documents a Python API (README: "Use from Python")
PACKAGES = ("mirror", "doctor", "verify", "cutover")


def _package(name: str) -> ModuleType:
    return importlib.import_module(f"hookshift.{name}")


def _section(title: str) -> str:
    """The README's section under ``## {title}``, up to the next one."""
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start : end if end != -1 else len(README)]


def _resolve(package: ModuleType, dotted: str) -> object:
    """The object a docstring's `name` means: in the package, one of its modules, the errors
    every docstring refers to, or a full ``hookshift.`` path. Raises LookupError if none."""
    bases: list[tuple[object, list[str]]] = []
    parts = dotted.split(".")
    if parts[0] == "hookshift":
        bases.append((importlib.import_module("hookshift"), parts[1:]))
    bases += [(package, parts), (errors, parts)]
    for base, rest in bases:
        found = _walk(base, rest)
        if found is not None:
            return found
    raise LookupError(dotted)


def _walk(base: object, names: list[str]) -> object | None:
    """Follow attributes, importing a submodule where the attribute is one not yet imported."""
    here = base
    for i, name in enumerate(names):
        if hasattr(here, name) and not (
            # the package's `plan` is the API's function; `plan.make_plan` means the module
            i + 1 < len(names) and inspect.isfunction(getattr(here, name))
        ):
            here = getattr(here, name)
            continue
        if not isinstance(here, ModuleType):
            return None
        try:
            here = importlib.import_module(f"{here.__name__}.{name}")
        except ModuleNotFoundError:
            return None
    return here


# `name`, `name(...)` or `a.b.c`: a reference in a docstring (reST's single backquotes); ``code``
# in double backquotes is literal text and is not looked up
_REFERENCE = re.compile(r"(?<![`\w])`([A-Za-z_][\w.]*)(?:\(|`)")


def _references(doc: str) -> list[str]:
    return [name.rstrip(".") for name in _REFERENCE.findall(doc)]


@pytest.mark.parametrize("name", PACKAGES)
def test_every_name_in___all___exists_once(name: str) -> None:
    package = _package(name)
    exported = list(package.__all__)
    assert len(exported) == len(set(exported)), exported
    assert [n for n in exported if not hasattr(package, n)] == []


@pytest.mark.parametrize("name", PACKAGES)
def test_the_package_s_public_api_is_in___all__(name: str) -> None:
    """A class or function the package defines or re-exports from its own modules is listed in
    ``__all__``, so that a star import, the docs and a type checker see the same API."""
    package = _package(name)
    own = {
        attr
        for attr, value in vars(package).items()
        if not attr.startswith("_")
        and (inspect.isclass(value) or inspect.isfunction(value))
        and getattr(value, "__module__", "").startswith(package.__name__)
    }
    assert own - set(package.__all__) == set()


def test_the_readme_s_python_section_names_exported_calls() -> None:
    text = _section("Use from Python")
    listed = re.findall(r"`hookshift\.(\w+)` \(([^)]*)\)", text)
    assert {package for package, _ in listed} == set(PACKAGES)
    for name, names in listed:
        package = _package(name)
        for call in re.findall(r"`(\w+)`", names):
            assert call in package.__all__, f"README names hookshift.{name}.{call}"


def test_the_readme_s_exit_codes_are_the_error_classes() -> None:
    text = _section("Use from Python")
    assert "`hookshift.errors.HookshiftError`" in text
    promised = re.findall(r"`(\w+Error)`, (\d)", text)
    assert promised, "the README no longer names the error classes and their exit codes"
    for name, code in promised:
        cls = getattr(errors, name)
        assert issubclass(cls, errors.HookshiftError)
        assert cls.exit_code == int(code), name


@pytest.mark.parametrize("name", PACKAGES)
def test_each_name_the_package_s_docstring_gives_exists(name: str) -> None:
    package = _package(name)
    doc = package.__doc__ or ""
    referenced = _references(doc)
    # the calls in its example (`mirror.plan(...)`, `verify.ParityOptions(...)`)
    referenced += re.findall(rf"(?<![\w\"'/.-]){name}\.([A-Za-z_]\w*)\b", doc)
    assert referenced, f"hookshift.{name} documents no call"
    missing = []
    for ref in referenced:
        try:
            _resolve(package, ref)
        except LookupError:
            missing.append(ref)
    assert missing == [], f"hookshift.{name}'s docstring names what does not exist"


@pytest.mark.parametrize("name", PACKAGES)
def test_the_calls_the_docstring_spells_out_take_those_parameters(name: str) -> None:
    """``advance(state_path, *, overrides, reload)`` in a docstring is a promise: each parameter
    it names is the call's, and it names every parameter the call cannot do without."""
    package = _package(name)
    spelled = re.findall(r"(?<![`\w.])`(\w+)\(([^)`]*)\)", package.__doc__ or "")
    wrong = []
    for call, params in spelled:
        func = getattr(package, call)
        real = inspect.signature(func).parameters
        named = [p.strip() for p in params.replace("\n", " ").split(",") if p.strip() != "*"]
        named = [p for p in named if p]
        required = [p for p, v in real.items() if v.default is inspect.Parameter.empty]
        wrong += [f"{call}: {p} is not a parameter" for p in named if p not in real]
        wrong += [f"{call}: {p} is not named" for p in required if p not in named]
        keywords = [p for p, v in real.items() if v.kind is inspect.Parameter.KEYWORD_ONLY]
        if "*" in params and keywords:
            # a list of its keywords is the whole list, but for ``notice=``, described apart
            left_out = set(keywords) - set(named) - {"notice"}
            wrong += [f"{call}: {p} is not named" for p in sorted(left_out)]
    assert wrong == []


def test_the_doctor_docstring_s_finding_fields_are_the_dataclass_s() -> None:
    from hookshift import doctor

    (fields,) = re.findall(r"Finding\(([^)]*)\)", doctor.__doc__ or "")
    assert [f.strip() for f in fields.split(",")] == [
        f.name for f in dataclasses.fields(doctor.Finding)
    ]


def _public_callables(package: ModuleType) -> list[tuple[str, object]]:
    """Each function in ``__all__``, and each public method and property of its classes."""
    found: list[tuple[str, object]] = []
    for name in package.__all__:
        value = getattr(package, name)
        if inspect.isfunction(value):
            found.append((name, value))
        elif inspect.isclass(value) and not issubclass(value, BaseException):
            for attr, member in vars(value).items():
                if attr.startswith("_"):
                    continue
                if isinstance(member, property) and member.fget is not None:
                    found.append((f"{name}.{attr}", member.fget))
                elif isinstance(member, staticmethod | classmethod):
                    found.append((f"{name}.{attr}", member.__func__))
                elif inspect.isfunction(member):
                    found.append((f"{name}.{attr}", member))
    return found


@pytest.mark.parametrize("name", PACKAGES)
def test_every_public_call_is_fully_typed(name: str) -> None:
    package = _package(name)
    untyped = []
    for qualname, func in _public_callables(package):
        assert callable(func)
        signature = inspect.signature(func)
        params = [
            p
            for p in signature.parameters.values()
            if p.name not in ("self", "cls") and p.annotation is inspect.Parameter.empty
        ]
        if params or signature.return_annotation is inspect.Signature.empty:
            untyped.append(qualname)
        # the hints resolve at run time too (no name only imported for the type checker)
        typing.get_type_hints(func)
    assert untyped == []


@pytest.mark.parametrize("name", PACKAGES)
def test_every_public_class_s_hints_resolve(name: str) -> None:
    package = _package(name)
    for attr in package.__all__:
        value = getattr(package, attr)
        if inspect.isclass(value):
            typing.get_type_hints(value)
            if dataclasses.is_dataclass(value):
                assert all(f.type is not dataclasses.MISSING for f in dataclasses.fields(value))


def test_errors_exports_its_classes_and_nothing_of_its_own_imports() -> None:
    exported = set(errors.__all__)
    assert {"HookshiftError", "InputError", "OperationError", "MissingExtra"} <= exported
    assert [n for n in exported if not hasattr(errors, n)] == []
    assert "annotations" not in exported
    # a star import gives what __all__ lists, not the module's other names
    scope: dict[str, object] = {}
    exec("from hookshift.errors import *", scope)
    assert set(scope) - {"__builtins__"} == exported


@pytest.mark.e2e  # a fresh interpreter: this one has imported every package already
def test_import_hookshift_reaches_each_api_package_by_attribute() -> None:
    """``import hookshift`` then ``hookshift.verify.parity`` works, as a user expects of a
    package, while ``import hookshift`` alone still imports none of them."""
    calls = [("mirror", "plan"), ("doctor", "check"), ("verify", "parity"), ("cutover", "init")]
    probe = (
        "import sys, hookshift\n"
        "print(sorted(m for m in sys.modules if m.startswith('hookshift.')))\n"
        f"print([callable(getattr(getattr(hookshift, p), f)) for p, f in {calls!r}])\n"
        "print(hookshift.errors.InputError.exit_code)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, cwd=REPO
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["[]", "[True, True, True, True]", "2"]


def test_a_name_hookshift_does_not_have_is_an_attribute_error() -> None:
    import hookshift

    with pytest.raises(AttributeError, match="no attribute 'rehearse'"):
        _ = hookshift.rehearse  # type: ignore[attr-defined]
    assert sorted(hookshift.__all__) == sorted(["__version__", "errors", *PACKAGES]), (
        "hookshift.__all__ names the API's packages"
    )


def _readme_example() -> tuple[str, list[str]]:
    """The README's Python script and the output it shows (without the ``$`` line)."""
    text = _section("Use from Python")
    (script,) = re.findall(r"```python\n(.*?)```", text, re.S)
    shown = re.findall(r"```\n\$ [^\n]*example\.py\n(.*?)```", text, re.S)
    assert len(shown) == 1, "the README no longer shows the example's output"
    return script, shown[0].splitlines()


def _rehearsal_run(root: Path) -> None:
    """What the example reads of `make demo`'s newest run: a parity log where the app took
    the first callbacks and answered 502 to the rest (it was being deployed), and an archive
    holding every callback's copy."""
    run = root / "rehearsal-run" / "20261206-130808"
    lines = [
        nginx_line(
            rid(n),
            T0 + n * 1000,
            body(n),
            status="200" if n < 6 else "502",
            upstream_status="200" if n < 6 else "502",
        )
        for n in range(10)
    ]
    write_lines(run / "nginx" / "logs" / "hookshift-parity.log", lines)
    messages = [message(f"m{n}", body(n), T0 + n * 1000 + 9, request_id=rid(n)) for n in range(10)]
    write_messages(run / "archive" / "seg-000001.jsonl", messages)


@pytest.mark.e2e  # mirror.plan without a version runs `nginx -v`, and the script is a process
def test_the_readme_s_python_example_runs_as_written(tmp_path: Path) -> None:
    script, shown = _readme_example()
    corpus = Path("tests/nginx/corpus/debian_stock")
    shutil.copytree(REPO / corpus, tmp_path / corpus)
    _rehearsal_run(tmp_path)
    (tmp_path / "example.py").write_text(script, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "example.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # the README: "Nothing is printed"
    got = result.stdout.splitlines()
    # the README was run in the repository; this run is in a copy of its corpus
    expected = [line.replace(str(REPO) + "/", f"{tmp_path}/") for line in shown]
    expected = [line.replace("/work/main/", f"{tmp_path}/") for line in expected]
    assert len(got) == len(expected), result.stdout
    for real, doc in zip(got, expected, strict=True):
        if doc.startswith("verify: "):
            # the counts vary from run to run; which of them are non-zero does not
            verdict, _, counts = real.partition(" {")
            doc_verdict, _, doc_counts = doc.partition(" {")
            assert verdict == doc_verdict
            real_keys = json.loads("{" + counts.replace("'", '"')).keys()
            assert real_keys == json.loads("{" + doc_counts.replace("'", '"')).keys()
        else:
            assert real == doc
