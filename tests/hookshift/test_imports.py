"""hookshift's parts import each other in one direction, and the product never imports the test bed.

Read from the source with `ast` (every import, also the ones inside functions), so a cycle or a
product module reaching for the rehearsal is caught before anything runs.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path

import pytest

from hookshift.errors import REHEARSE_MODULES

PACKAGE = Path(__file__).resolve().parents[2] / "hookshift"
# the local test bed (moto, the sample app, DNS, the load driver); everything else is product
TEST_BED = "rehearsal"


def _module_name(path: Path, root: Path = PACKAGE) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, root: Path = PACKAGE) -> Iterator[tuple[str, int]]:
    """Every hookshift module `path` imports, with the line."""
    module = _module_name(path, root)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        else:
            continue
        for name in names:
            if name == "hookshift" or name.startswith("hookshift."):
                yield name, node.lineno


def _part(module: str) -> str:
    """The part a module belongs to: ``hookshift.mirror.plan`` -> ``mirror``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _part_graph(root: Path) -> dict[str, dict[str, str]]:
    """part -> {imported part: where (file:line)}, between different parts only."""
    graph: dict[str, dict[str, str]] = {}
    for path in sorted(root.rglob("*.py")):
        source = _part(_module_name(path, root))
        edges = graph.setdefault(source, {})
        for name, line in _imports(path, root):
            target = _part(name)
            known = (root / target).is_dir() or (root / f"{target}.py").exists()
            if target and target != source and known:
                edges.setdefault(target, f"{path.relative_to(root.parent)}:{line}")
    return graph


def _cycle(graph: dict[str, dict[str, str]]) -> list[str] | None:
    """One cycle in `graph` as its path of parts, or None."""
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, {})):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_cycle_between_hookshift_parts() -> None:
    graph = _part_graph(PACKAGE)
    cycle = _cycle(graph)
    where = [graph[a][b] for a, b in pairwise(cycle)] if cycle else []
    assert cycle is None, f"import cycle {' -> '.join(cycle or [])} at {', '.join(where)}"


def test_no_product_module_imports_the_test_bed() -> None:
    offenders = [
        f"{path.relative_to(PACKAGE.parent)}:{line} imports {name}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if _part(_module_name(path)) != TEST_BED
        for name, line in _imports(path)
        if _part(name) == TEST_BED
    ]
    assert offenders == []


def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / "hookshift" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root / "hookshift"


@pytest.mark.parametrize(
    ("files", "cycle"),
    [
        (
            {
                "a/__init__.py": "",
                "a/x.py": "def f() -> None:\n    from hookshift.b import y\n",
                "b/__init__.py": "",
                "b/y.py": "from hookshift.a.x import f\n",
            },
            ["a", "b", "a"],
        ),
        ({"a/__init__.py": "", "a/x.py": "from . import y\n", "a/y.py": ""}, None),
        (
            {"a/__init__.py": "", "a/x.py": "import hookshift.b.y\n", "b/__init__.py": "",
             "b/y.py": "from ..a import x\n"},
            ["a", "b", "a"],
        ),
    ],
)  # fmt: skip
def test_the_walk_finds_cycles_through_any_import_form(
    tmp_path: Path, files: dict[str, str], cycle: list[str] | None
) -> None:
    assert _cycle(_part_graph(_write(tmp_path, files))) == cycle


# what a Python user's `from hookshift import mirror, doctor, verify, cutover` must not load: the
# test bed, and the libraries that take a noticeable time to import or are only some calls' need
HEAVY = frozenset({"duckdb", "boto3", "botocore", *REHEARSE_MODULES})
API = ("hookshift", "hookshift.errors", "hookshift.mirror", "hookshift.doctor",
       "hookshift.verify", "hookshift.cutover")  # fmt: skip


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_time_statements(body: list[ast.stmt]) -> Iterator[ast.Import | ast.ImportFrom]:
    """The imports a module runs when it is imported: at its top level, also inside ``try``
    and ``if`` (but not ``if TYPE_CHECKING``), never inside a function."""
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.If):
            if not _is_type_checking(node.test):
                yield from _import_time_statements(node.body)
            yield from _import_time_statements(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, *(h.body for h in node.handlers), node.orelse):
                yield from _import_time_statements(block)
            yield from _import_time_statements(node.finalbody)
        elif isinstance(node, ast.With):
            yield from _import_time_statements(node.body)


def _source_of(module: str, root: Path = PACKAGE) -> Path | None:
    base = root.parent.joinpath(*module.split("."))
    for path in (base / "__init__.py", base.with_suffix(".py")):
        if path.is_file():
            return path
    return None


def _loaded_at_import(start: tuple[str, ...], root: Path = PACKAGE) -> dict[str, str]:
    """Every module importing `start` loads -> the hookshift module that imports it first."""
    loaded: dict[str, str] = {name: "" for name in start}
    queue = list(start)
    while queue:
        module = queue.pop(0)
        path = _source_of(module, root)
        if path is None:
            continue
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        names: list[str] = []
        for node in _import_time_statements(ast.parse(path.read_text("utf-8"), str(path)).body):
            if isinstance(node, ast.Import):
                names += [alias.name for alias in node.names]
                continue
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names.append(base)
            # `from package import module` loads the module
            names += [
                f"{base}.{a.name}" for a in node.names if _source_of(f"{base}.{a.name}", root)
            ]
        for name in names:
            parts = name.split(".")
            # importing a.b.c runs a and a.b first
            for i in range(1, len(parts) + 1):
                found = ".".join(parts[:i])
                if found not in loaded:
                    loaded[found] = f"{path.relative_to(root.parent)}"
                    queue.append(found)
    return loaded


def test_the_api_packages_import_nothing_heavy() -> None:
    """`import hookshift` and its API packages stay quick to import and work on a core
    install: DuckDB, boto3 and the test bed are imported by the calls that use them."""
    loaded = _loaded_at_import(API)
    heavy = {name: by for name, by in loaded.items() if name in HEAVY}
    bed = {name: by for name, by in loaded.items() if name.startswith("hookshift.rehearsal")}
    assert heavy == {}, "imported when hookshift's API is imported (module: by)"
    assert bed == {}


@pytest.mark.parametrize(
    ("files", "found"),
    [
        ({"__init__.py": "", "a.py": "import duckdb\n"}, True),
        ({"__init__.py": "", "a.py": "def f() -> None:\n    import duckdb\n"}, False),
        ({"__init__.py": "", "a.py": "from typing import TYPE_CHECKING\n"
          "if TYPE_CHECKING:\n    import duckdb\n"}, False),
        ({"__init__.py": "", "a.py": "from . import b\n", "b.py": "try:\n    import duckdb\n"
          "except ImportError:\n    pass\n"}, True),
        ({"__init__.py": "from hookshift.a import x\n", "a/__init__.py": "",
          "a/x.py": "import duckdb\n"}, True),
    ],
)  # fmt: skip
def test_the_import_walk_sees_what_python_runs_at_import(
    tmp_path: Path, files: dict[str, str], found: bool
) -> None:
    root = _write(tmp_path, files)
    start = ("hookshift.a",) if "a.py" in files else ("hookshift",)
    assert ("duckdb" in _loaded_at_import(start, root)) is found
