"""The DiscoveryWatcher: runs providers, merges their views, and hands changes on.

Every provider emits its whole view; the watcher keeps the latest view of each, merges them
into ``{"pool@provider": [endpoints]}``, drops a merged result equal to the last one handed
on, and calls ``on_change(merged)`` at most once per ``throttle`` seconds: in a burst, only the
latest merged view is handed on. An ``on_change`` that raises (the cluster refused the new
snapshot, leadership moved) is retried after ``throttle`` with the then latest view.

On a core cluster the integration runs one watcher on the leader only: ``start()`` when
leadership is gained, ``stop()`` when lost. ``on_change`` typically reads the shared config,
applies ``apply_discovered`` and puts the result as a new snapshot if it differs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable

from dispa.discovery.merge import apply_discovered, merge_views  # noqa: F401 (re-exported)
from dispa.discovery.provider import Pools, Provider

log = logging.getLogger("dispa.discovery")

OnChange = Callable[[Pools], Awaitable[None] | None]


class DiscoveryWatcher:
    def __init__(
        self, providers: Iterable[Provider], on_change: OnChange, throttle: float = 1.0
    ) -> None:
        self.providers = list(providers)
        names = [provider.name for provider in self.providers]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"provider names must be unique; repeated: {', '.join(duplicates)}")
        self.on_change = on_change
        self.throttle = throttle
        self.views: dict[str, Pools] = {}
        self.current: Pools | None = None  # the merged view last handed on successfully
        self.deliveries = 0
        self._dirty = asyncio.Event()
        self._last_delivery = float("-inf")
        self._tasks: list[asyncio.Task] = []

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        if self._tasks:
            return
        self._tasks = [
            asyncio.create_task(provider.run(self._emitter(provider.name)), name=provider.name)
            for provider in self.providers
        ]
        self._tasks.append(asyncio.create_task(self._deliver(), name="discovery delivery"))

    async def stop(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    @property
    def running(self) -> bool:
        return bool(self._tasks)

    def statistics(self) -> list[dict]:
        """One entry per provider: name, type, status, last_error, last_success, endpoints,
        consecutive_failures (for ``GET /api/v1/providers`` and the metrics)."""
        return [provider.statistics() for provider in self.providers]

    def merged(self) -> Pools:
        """The merged view of what the providers last emitted (handed on or not yet)."""
        return merge_views(self.views)

    # ------------------------------------------------------------------ inside

    def _emitter(self, provider_name: str) -> Callable[[Pools], None]:
        def emit(pools: Pools) -> None:
            self.views[provider_name] = {pool: list(eps) for pool, eps in pools.items()}
            self._dirty.set()

        return emit

    async def _deliver(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._dirty.wait()
            # Throttle: wait out the rest of the interval; views emitted meanwhile are merged
            # below, so the latest wins.
            wait = self._last_delivery + self.throttle - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            self._dirty.clear()
            merged = self.merged()
            if merged == self.current:
                continue
            self._last_delivery = loop.time()
            try:
                result = self.on_change(merged)
                if asyncio.iscoroutine(result):
                    await result
            except asyncio.CancelledError:
                raise
            except Exception as error:
                # Expected now and then (another revision won, leadership moved): a line,
                # not a traceback.
                log.warning("discovery: handing on the merged view failed, retrying: %s", error)
                self._dirty.set()
                continue
            self.current = merged
            self.deliveries += 1
