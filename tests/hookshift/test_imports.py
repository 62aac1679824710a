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
