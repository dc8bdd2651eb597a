"""Config errors that name the path of the bad field, as ``routes[2].upstream: ...``."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


class ConfigError(Exception):
    """One or more problems in a config; ``problems`` holds one line each."""

    def __init__(self, problems: Sequence[str], source: str = "") -> None:
        self.problems = list(problems)
        self.source = source
        super().__init__("\n".join(self.problems))

    def render(self) -> str:
        head = f"{self.source}: " if self.source else ""
        count = len(self.problems)
        noun = "problem" if count == 1 else "problems"
        lines = [f"{head}{count} {noun} in config:"]
        lines += [f"  {p}" for p in self.problems]
        return "\n".join(lines)


def format_path(location: Iterable[object]) -> str:
    """``("routes", 2, "upstream")`` -> ``routes[2].upstream``."""
    text = ""
    for part in location:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or "(top level)"
