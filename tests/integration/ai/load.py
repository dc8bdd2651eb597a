"""Bounded HTTP load for the AI tests: requests at a chosen rate, answers counted by upstream.

``Load`` runs in a thread of its own with its own event loop and aiohttp keep-alive
connections, so the test can watch the gateway's admin API meanwhile. Every request is
recorded as (time sent, time answered, x-upstream, status); ``shares`` counts who answered
in a time window. The rate is open-loop (a schedule) with at most ``concurrency``
requests in flight, so a slow endpoint does not slow the schedule down.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Callable

import aiohttp


class Load:
    def __init__(
        self,
        url: str,
        rate: Callable[[float], float],
        *,
        duration: float,
        concurrency: int = 32,
        timeout: float = 5.0,
    ) -> None:
        self.url = url
        self.rate = rate  # seconds since start -> requests per second
        self.duration = duration
        self.concurrency = concurrency
        self.timeout = timeout
        self.records: list[tuple[float, float, str, int]] = []
        self.failures = 0
        self.started = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    def __enter__(self) -> Load:
        self.started = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(self.duration + self.timeout + 5)

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    async def _run(self) -> None:
        slots = asyncio.Semaphore(self.concurrency)
        connector = aiohttp.TCPConnector(limit=self.concurrency)
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        pending: set[asyncio.Task] = set()
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            next_at = 0.0
            while not self._stop.is_set():
                now = self.elapsed()
                if now >= self.duration:
                    break
                if now < next_at:
                    await asyncio.sleep(min(next_at - now, 0.05))
                    continue
                next_at += 1.0 / max(self.rate(now), 0.1)
                await slots.acquire()
                task = asyncio.create_task(self._one(session, slots))
                pending.add(task)
                task.add_done_callback(pending.discard)
            if pending:
                await asyncio.wait(pending, timeout=self.timeout + 1)

    async def _one(self, session: aiohttp.ClientSession, slots: asyncio.Semaphore) -> None:
        sent = self.elapsed()
        try:
            async with session.get(self.url) as response:
                await response.read()
                self.records.append(
                    (sent, self.elapsed(), response.headers.get("x-upstream", "?"), response.status)
                )
        except (aiohttp.ClientError, TimeoutError):
            self.failures += 1
        finally:
            slots.release()

    def shares(self, start: float, end: float) -> dict[str, float]:
        """Each upstream's share of the answers to requests sent in [start, end)."""
        counts = Counter(name for sent, _, name, _ in list(self.records) if start <= sent < end)
        total = sum(counts.values())
        return {name: count / total for name, count in counts.items()} if total else {}

    def count(self, start: float, end: float) -> int:
        return sum(1 for sent, *_ in list(self.records) if start <= sent < end)
