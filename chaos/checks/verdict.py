"""A checker's answer: passed or not, one sentence with the numbers, and the numbers."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class Verdict:
    name: str
    passed: bool
    summary: str
    numbers: dict = field(default_factory=dict)
    problems: tuple[str, ...] = ()  # the first few violations, spelled out

    def plain(self) -> dict:
        data = asdict(self)
        data["problems"] = list(self.problems)
        return data


MAX_PROBLEMS = 10


def first(problems: list[str]) -> tuple[str, ...]:
    return tuple(problems[:MAX_PROBLEMS])
