"""Discovery for ``dispa run``: the watcher applies changes to this gateway's own snapshot.

The config file names pools (``discovery: web@dns``); the endpoints served are the file's
config with each discovered pool's endpoints filled in. Both a file reload and a change of
the providers' view go through ``_serve``, under one lock, so neither overwrites the
other with a stale half.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from dispa.config.errors import ConfigError
from dispa.config.load import build_gateway
from dispa.config.schema import Gateway as GatewayConfig
from dispa.discovery.merge import apply_discovered
from dispa.discovery.provider import Pools
from dispa.discovery.running import RunningProviders

log = logging.getLogger("dispa.discovery")

# At start: the longest wait for the providers' first answers before serving.
FIRST_ANSWER_WAIT = 5.0

Apply = Callable[[GatewayConfig, str], Awaitable[object]]


def with_discovered(config: GatewayConfig, merged: Pools | None) -> GatewayConfig:
    """``config`` with its discovered upstreams' endpoints filled in from ``merged``;
    ConfigError when the result is not a valid config (say, an unknown region)."""
    if not merged or not any(upstream.discovery for upstream in config.upstreams):
        return config
    data = apply_discovered(config.model_dump(mode="json"), merged)
    return build_gateway(data, "discovered endpoints")


class LocalDiscovery:
    def __init__(self, apply: Apply, clock: Callable[[], float] = time.time) -> None:
        self._apply = apply
        self.base: GatewayConfig | None = None  # the file's config, as written
        self.providers = RunningProviders(self._on_change, clock)
        self._lock = asyncio.Lock()

    async def apply_file_config(self, config: GatewayConfig, source: str) -> None:
        """Serve the file's config (at start and after each reload) with the endpoints
        discovered so far, and follow the providers it declares. Raises what applying
        raises (ListenError), with nothing changed.

        At start, the providers' first answers are awaited (at most ``FIRST_ANSWER_WAIT``,
        as Envoy warms a cluster before serving it), so a fresh gateway does not answer
        503 for the moment its sources take to reply."""
        if self.base is None and config.discovery.providers:
            await self.providers.follow(config.discovery)
            if not await self.providers.wait_first_answers(FIRST_ANSWER_WAIT):
                log.warning(
                    "discovery: not every provider answered within %.0fs; serving without "
                    "their endpoints until they do",
                    FIRST_ANSWER_WAIT,
                )
        async with self._lock:
            try:
                served = with_discovered(config, self.providers.current())
            except ConfigError as error:
                log.error("discovered endpoints left out: %s", error.render())
                served = config
            await self._apply(served, source)
            self.base = config
        await self.providers.follow(config.discovery)

    async def _on_change(self, merged: Pools) -> None:
        async with self._lock:
            if self.base is None:
                return
            try:
                served = with_discovered(self.base, merged)
            except ConfigError as error:
                # Not retried: the same view would fail the same way. The next change
                # of the view is tried again.
                log.error(
                    "discovered endpoints refused, the config in force stays: %s", error.render()
                )
                return
            await self._apply(served, "discovery")

    async def stop(self) -> None:
        await self.providers.stop()

    def providers_document(self) -> dict:
        declared = self.base.discovery if self.base is not None else self.providers.settings
        return {"role": "single", "providers": self.providers.document(declared, "stopped")}
