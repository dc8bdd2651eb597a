"""bench/ is split by case family around one shared harness (bench/README.md, "Files"):
no module imports run.py (the entry point), and the modules' imports of each other form
no cycle. Read with ``ast``: nothing is imported or run."""

from __future__ import annotations

import ast
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"
MODULES = {path.stem: path for path in BENCH.glob("*.py")}


def bench_imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found & set(MODULES)


GRAPH = {name: bench_imports(path) for name, path in MODULES.items()}


def test_the_families_and_the_harness_are_there() -> None:
    assert {"run", "harness", "cases_http1", "cases_cache", "cases_protocols"} <= set(GRAPH)
    assert {"cases_memory", "cases_filters", "report"} <= set(GRAPH)
    assert "protocols" not in GRAPH  # moved to cases_protocols.py
    assert "harness" in GRAPH["cases_http1"] and "cases_http1" in GRAPH["cases_cache"]


def test_nothing_imports_the_entry_point() -> None:
    assert [name for name, imports in GRAPH.items() if "run" in imports] == []


def test_the_harness_imports_no_case() -> None:
    assert GRAPH["harness"] == set()


def test_bench_modules_import_each_other_without_cycles() -> None:
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, f"import cycle: {' -> '.join((*path, name))}"
        if name in done:
            return
        for imported in sorted(GRAPH[name]):
            visit(imported, (*path, name))
        done.add(name)

    for name in sorted(GRAPH):
        visit(name, ())
    assert done == set(GRAPH)
