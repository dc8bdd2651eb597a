"""Checks of named filter instances: their names, and `use: NAME` entries that name them."""

from __future__ import annotations

import re

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def filter_reference_problems(gateway) -> list[str]:
    """One line per bad definition name or `use:` naming no definition, with its path."""
    defined = gateway.filter_definitions
    problems = [
        f"filter_definitions.{name}: a name is letters, digits, '_', '.', '-' "
        "(starting with a letter or digit)"
        for name in defined
        if not _NAME.fullmatch(name)
    ]
    lists = [("filters", "", gateway.filters)]
    for index, route in enumerate(gateway.routes):
        label = f" in route '{route.name}'" if route.name else ""
        lists.append((f"routes[{index}].filters", label, route.filters))
    known = ", ".join(sorted(defined)) or "none"
    for where, label, entries in lists:
        for position, entry in enumerate(entries):
            name = getattr(entry, "use", None)
            if name is not None and name not in defined:
                problems.append(
                    f"{where}[{position}].use: unknown filter definition '{name}'{label} "
                    f"(filter_definitions has: {known})"
                )
    return problems
