"""One clock for a whole drill: seconds since the drill's start, on the monotonic clock,
so every record (requests, writes, faults, leader samples) lines up on one timeline."""

from __future__ import annotations

import asyncio
import contextlib
import time


class DrillClock:
    def __init__(self) -> None:
        self.started_monotonic = time.monotonic()
        self.started_wall = time.time()

    def now(self) -> float:
        return round(time.monotonic() - self.started_monotonic, 4)

    def wall(self, at: float) -> float:
        """The Unix time of drill time ``at`` (rate-limit windows are in Unix time)."""
        return self.started_wall + at

    def at_wall(self, unix_time: float) -> float:
        return unix_time - self.started_wall


async def pause(stop, seconds: float) -> None:
    """Sleep ``seconds``, or less if ``stop`` (an asyncio.Event) is set meanwhile."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


class Span:
    """How long a workload task runs: until drill time ``until`` or until ``stop`` is set.
    Every loop of the workload checks ``running()``; each is bounded by a count as well."""

    def __init__(self, clock: DrillClock, until: float, stop) -> None:
        self.clock = clock
        self.until = until
        self.stop = stop

    def now(self) -> float:
        return self.clock.now()

    def running(self) -> bool:
        return self.clock.now() < self.until and not self.stop.is_set()

    async def pause(self, seconds: float) -> None:
        await pause(self.stop, seconds)
