"""DESIGN.md's layering rules, checked on the source: the data plane (``proxy``) never
imports ``cluster``, ``edge``, ``ai`` or ``discovery``, and two packages of dispa/ never
import each other (a cycle means one side should depend on an interface the other
implements). Every import counts, function-level ones included: they are read with ``ast``,
not by importing anything.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import dispa

PACKAGE_ROOT = Path(dispa.__file__).parent
PACKAGES = sorted(path.name for path in PACKAGE_ROOT.iterdir() if (path / "__init__.py").exists())

DATA_PLANE_MUST_NOT_IMPORT = {"cluster", "edge", "ai", "discovery"}


def imported_modules(tree: ast.AST) -> list[str]:
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
            if node.module == "dispa":  # ``from dispa import cluster``
                names.extend(f"dispa.{alias.name}" for alias in node.names)
    return names


def package_imports() -> dict[str, dict[str, set[str]]]:
    """For each package: the other packages it imports, with the files that do."""
    found: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for package in PACKAGES:
        for path in sorted((PACKAGE_ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for module in imported_modules(tree):
                parts = module.split(".")
                other = parts[1] if len(parts) > 1 and parts[0] == "dispa" else None
                if other in PACKAGES and other != package:
                    found[package][other].add(str(path.relative_to(PACKAGE_ROOT)))
    return found


def test_the_check_sees_the_packages_and_their_imports() -> None:
    # A check that found no packages or no imports would pass vacuously.
    assert {"proxy", "cluster", "discovery", "edge", "config"} <= set(PACKAGES)
    imports = package_imports()
    assert "config" in imports["proxy"]
    assert "discovery" in imports["cluster"]  # the cluster runs discovery's leader loop


def test_the_ast_reader_counts_function_level_and_from_package_imports() -> None:
    source = (
        "import dispa.cluster.bridge\n"
        "from dispa import edge\n"
        "def later():\n"
        "    from dispa.cluster.admin_api import validate_shared\n"
        "from . import sibling\n"
    )
    assert imported_modules(ast.parse(source)) == [
        "dispa.cluster.bridge",
        "dispa",
        "dispa.edge",
        "dispa.cluster.admin_api",
    ]


def test_the_data_plane_imports_no_control_plane_package() -> None:
    forbidden = {
        package: sorted(files)
        for package, files in package_imports()["proxy"].items()
        if package in DATA_PLANE_MUST_NOT_IMPORT
    }
    assert forbidden == {}, f"dispa/proxy imports {forbidden}"


def test_no_two_packages_import_each_other() -> None:
    imports = package_imports()
    cycles = {}
    for first in PACKAGES:
        for second in PACKAGES:
            if first < second and second in imports[first] and first in imports[second]:
                cycles[f"{first} <-> {second}"] = (
                    f"{first} -> {second}: {sorted(imports[first][second])}; "
                    f"{second} -> {first}: {sorted(imports[second][first])}"
                )
    assert cycles == {}, f"packages that import each other: {cycles}"


def test_discovery_depends_on_no_part_of_the_cluster() -> None:
    # The cluster hands discovery a DiscoveryHost (dispa/discovery/host.py); the reverse
    # import would bring the cycle back.
    assert "cluster" not in package_imports()["discovery"]
