"""One running set of providers, built from the config's ``discovery`` section.

Both integrations (``dispa run`` and the core leader) hold one: ``follow(discovery)``
starts the watcher, or restarts it when the section changed, and leaves it alone when
it did not. A provider that cannot be built (a missing kubeconfig or token file) is
left out, logged, and reported as failing with the reason.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from dispa.config.discovery import Discovery
from dispa.discovery.provider import Pools
from dispa.discovery.settings import build_provider
from dispa.discovery.status import idle_entry, providers_document
from dispa.discovery.watcher import DiscoveryWatcher, OnChange

log = logging.getLogger("dispa.discovery")


class RunningProviders:
    def __init__(self, on_change: OnChange, clock: Callable[[], float] = time.time) -> None:
        self.on_change = on_change
        self.clock = clock
        self.settings = Discovery()
        self.watcher: DiscoveryWatcher | None = None
        self.build_errors: dict[str, str] = {}

    async def follow(self, discovery: Discovery) -> None:
        """Run the providers ``discovery`` declares (none: stop)."""
        if discovery == self.settings and (self.watcher is not None or not discovery.providers):
            return
        await self.stop()
        self.settings = discovery
        if not discovery.providers:
            return
        providers = []
        for entry in discovery.providers:
            try:
                providers.append(build_provider(entry))
            except (OSError, ValueError) as error:
                reason = f"{type(error).__name__}: {error}"
                self.build_errors[entry.name] = reason
                log.error(
                    "discovery provider %s (%s) cannot start: %s", entry.name, entry.type, reason
                )
        self.watcher = DiscoveryWatcher(providers, self.on_change, discovery.throttle)
        await self.watcher.start()
        log.info(
            "discovery: following %s",
            ", ".join(f"{p.name} ({p.kind})" for p in providers) or "no provider",
        )

    async def stop(self) -> None:
        watcher, self.watcher = self.watcher, None
        self.settings = Discovery()
        self.build_errors = {}
        if watcher is not None:
            await watcher.stop()

    async def wait_first_answers(self, timeout: float) -> bool:
        """Until every provider has answered (or failed) once and the merged view has been
        handed on; False when ``timeout`` ran out first."""
        watcher = self.watcher
        if watcher is None:
            return True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            answered = all(entry["status"] != "starting" for entry in watcher.statistics())
            if answered and (not watcher.views or watcher.current == watcher.merged()):
                return True
            await asyncio.sleep(0.02)
        return False

    @property
    def running(self) -> bool:
        return self.watcher is not None

    def current(self) -> Pools | None:
        """The merged view last handed on, if any."""
        return self.watcher.current if self.watcher is not None else None

    def document(self, declared: Discovery, idle_state: str) -> list[dict]:
        """Entries for ``GET /api/v1/providers``: the running providers, those that could
        not be built, and declared ones that do not run here (as ``idle_state``)."""
        running = self.watcher.statistics() if self.watcher is not None else []
        entries = providers_document(
            running, [(p.name, p.type) for p in declared.providers], idle_state, self.clock()
        )
        for entry in entries:
            if entry["name"] in self.build_errors:
                entry.update(idle_entry(entry["name"], entry["type"], "failing"))
                entry["last_error"] = self.build_errors[entry["name"]]
        return entries
