"""The Provider interface, the endpoint it discovers, and the loop every provider shares.

A provider's ``run(emit)`` never returns on its own: it calls ``emit(pools)`` with its whole
current view (``{pool: [DiscoveredEndpoint, ...]}``) each time that view changes. When its
source fails it keeps the last good view (it never emits an empty view because of an error),
retries with backoff, and says so in ``statistics()``.

``FollowingProvider`` holds that shared behaviour; a concrete provider only writes
``follow(publish)``: read the source, call ``publish(pools)`` on every answer, raise on
failure.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from dispa.discovery.backoff import RetryBackoff

log = logging.getLogger("dispa.discovery")

MIN_WEIGHT = 1
MAX_WEIGHT = 1000


@dataclass(frozen=True, order=True)
class DiscoveredEndpoint:
    address: str  # "host:port"; an IPv6 host in brackets
    weight: int = 1  # 1..1000, as in the config's endpoints
    region: str | None = None

    def to_config(self) -> dict:
        """The endpoint as the shared config stores it."""
        entry: dict = {"address": self.address, "weight": self.weight}
        if self.region is not None:
            entry["region"] = self.region
        return entry


Pools = dict[str, list[DiscoveredEndpoint]]
Emit = Callable[[Pools], Awaitable[None] | None]


def clamp_weight(value: float) -> int:
    """A source's weight (SRV 0..65535, a tag, a label) as an endpoint weight 1..1000."""
    return max(MIN_WEIGHT, min(MAX_WEIGHT, int(value)))


def format_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


def normalized(pools: Pools) -> Pools:
    """Sorted and deduplicated, so that equal views compare equal whatever the source order."""
    return {pool: sorted(set(endpoints)) for pool, endpoints in sorted(pools.items())}


async def run_together(coroutines: list[Awaitable[None]]) -> None:
    """Run the pools' loops side by side; the first error stops them all and is raised.

    Not a TaskGroup: on Python 3.11 a TaskGroup whose child fails can leave a cancel request
    counted on the calling task, which then looks cancelled to ``run``.
    """
    tasks = [asyncio.ensure_future(coroutine) for coroutine in coroutines]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    for task in done:
        if not task.cancelled() and task.exception() is not None:
            raise task.exception()


@runtime_checkable
class Provider(Protocol):
    name: str

    async def run(self, emit: Emit) -> None: ...

    def statistics(self) -> dict: ...


@dataclass
class ProviderState:
    """What ``GET /api/v1/providers`` and the metrics report about one provider."""

    status: str = "starting"  # starting | ok | failing
    last_error: str | None = None
    last_success: float | None = None  # wall-clock time of the last good answer
    endpoints: int = 0  # in the last good view
    pools: dict[str, int] = field(default_factory=dict)  # endpoints per pool, last good view
    consecutive_failures: int = 0
    failures: int = 0  # since start
    updates: int = 0  # changed views handed on, since start
    retry_at: float | None = None  # wall-clock time of the next try while failing

    def record_success(self, pools: Pools, now: float) -> None:
        self.status = "ok"
        self.last_success = now
        self.pools = {pool: len(endpoints) for pool, endpoints in pools.items()}
        self.endpoints = sum(self.pools.values())
        self.consecutive_failures = 0
        self.retry_at = None

    def record_failure(self, error: BaseException, now: float, retry_in: float = 0.0) -> None:
        self.status = "failing"
        self.last_error = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
        self.consecutive_failures += 1
        self.failures += 1
        self.retry_at = now + retry_in


class FollowingProvider:
    """Runs ``follow(publish)`` again and again, with backoff after each failure, keeping
    the last good view; subclasses implement ``follow``."""

    kind = "provider"

    def __init__(self, name: str, backoff: RetryBackoff | None = None) -> None:
        self.name = name
        self.state = ProviderState()
        self.backoff = backoff or RetryBackoff()
        self.clock: Callable[[], float] = time.time
        self._last_view: Pools | None = None

    async def follow(self, publish: Callable[[Pools], Awaitable[None]]) -> None:
        raise NotImplementedError

    async def run(self, emit: Emit) -> None:
        async def publish(pools: Pools) -> None:
            view = normalized(pools)
            if self.state.consecutive_failures:
                # Each failure was a warning; the recovery is said once, at info.
                log.info(
                    "provider %s (%s) answers again after %d failures",
                    self.name,
                    self.kind,
                    self.state.consecutive_failures,
                )
            self.state.record_success(view, self.clock())
            self.backoff.reset()
            if view != self._last_view:
                self._last_view = view
                self.state.updates += 1
                result = emit(view)
                if asyncio.iscoroutine(result):
                    await result

        while True:
            try:
                await self.follow(publish)
                raise ConnectionError("the source closed the stream")
            except asyncio.CancelledError:
                raise
            except Exception as error:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    # Cancelled while a library turned that into another error: stopping must
                    # still stop.
                    raise asyncio.CancelledError() from error
                delay = self.backoff.next_delay()
                self.state.record_failure(error, self.clock(), delay)
                log.warning(
                    "provider %s (%s) failing, keeping its last view, retry in %.1fs: %s",
                    self.name,
                    self.kind,
                    delay,
                    self.state.last_error,
                )
                await asyncio.sleep(delay)

    def statistics(self) -> dict:
        return {"name": self.name, "type": self.kind, **vars(self.state)}
