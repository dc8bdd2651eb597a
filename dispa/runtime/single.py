"""``dispa run`` in one process: the gateway, its admin API, reload and graceful drain.

A reload (SIGHUP, or the config file changing on disk) loads and validates the whole file
first; a file with any problem is refused with a log line naming each problem, and the
config in force keeps serving.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import signal
from pathlib import Path

import msgpack

from dispa.admin.app import start_admin
from dispa.admin.gateway_view import LocalGatewayView
from dispa.ai.gateway_ai import admin_extras, start_gateway_ai
from dispa.config.errors import ConfigError
from dispa.config.load import load_file
from dispa.config.schema import split_address
from dispa.discovery.local import LocalDiscovery
from dispa.discovery.status import DiscoveryCollector, providers_route
from dispa.proxy.server import Gateway, ListenError
from dispa.runtime.cache_admin import cache_routes
from dispa.runtime.cache_metrics import CacheCollector, families_as_data
from dispa.runtime.gateway_cache import GatewayCache
from dispa.runtime.worker_purges import PurgeFollower

log = logging.getLogger("dispa.run")

# How often the config file is checked for changes, and worker stats are published.
WATCH_INTERVAL = 1.0
PUBLISH_INTERVAL = 1.0


def file_fingerprint(path: Path) -> bytes | None:
    try:
        return hashlib.sha256(path.read_bytes()).digest()
    except OSError:
        return None


class SingleProcessRunner:
    def __init__(
        self,
        config_path: str,
        *,
        reuse_port: bool = False,
        admin: bool = True,
        watch: bool = True,
        worker_index: int | None = None,
        stats_dir: str | None = None,
    ) -> None:
        self.config_path = Path(config_path)
        self.reuse_port = reuse_port
        self.with_admin = admin
        self.watch = watch
        self.worker_index = worker_index
        self.stats_dir = Path(stats_dir) if stats_dir else None
        self.gateway: Gateway | None = None
        self.cache: GatewayCache | None = None
        self.discovery: LocalDiscovery | None = None
        self.ai = None
        self.admin = None
        self.stopping = asyncio.Event()
        self._fingerprint: bytes | None = None
        self._reload_lock = asyncio.Lock()

    async def run(self) -> int:
        config = load_file(self.config_path)  # ConfigError goes to the CLI, exit status 2
        self._fingerprint = file_fingerprint(self.config_path)
        self.gateway = Gateway(reuse_port=self.reuse_port)
        # Routes with `cache: true` are cached as on an edge (docs/operator-guide.md).
        self.cache = GatewayCache(self.gateway, self.worker_index)
        # Upstreams bound to a discovery pool are served with the endpoints it finds.
        self.discovery = LocalDiscovery(self._apply_config)
        await self.discovery.apply_file_config(config, str(self.config_path))
        self.ai = start_gateway_ai(self.gateway)  # learns off the request path; see docs/ai.md
        if self.with_admin:
            ai_routes, ai_collectors = admin_extras(self.ai)
            host, port = split_address(config.admin.address)
            self.admin = await start_admin(
                LocalGatewayView(self.gateway),
                host,
                port,
                [providers_route(self.discovery), *cache_routes(self.cache), *ai_routes],
                [
                    DiscoveryCollector(self.discovery),
                    CacheCollector(lambda: self.gateway.cache),
                    *ai_collectors,
                ],
                admin_config=config.admin,
            )
        self._install_signals()
        tasks = []
        if self.watch:
            tasks.append(asyncio.create_task(self._watch_file()))
        if self.stats_dir is not None:
            tasks.append(asyncio.create_task(self._publish_stats()))
        names = ", ".join(
            f"{name} on {slot.config.address}" for name, slot in self.gateway.listeners.items()
        )
        log.info(
            "dispa is serving: %s; admin on %s",
            names,
            config.admin.address if self.with_admin else "(supervisor)",
        )
        await self.stopping.wait()
        for task in tasks:
            task.cancel()
        await self.discovery.stop()
        self.ai.stop()
        await self.gateway.drain(self.gateway.snapshot.config.drain_timeout)
        if self.admin is not None:
            await self.admin.close()
        log.info("dispa stopped")
        return 0

    def _install_signals(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(self.reload("SIGHUP")))
        loop.add_signal_handler(signal.SIGTERM, self.stop)
        loop.add_signal_handler(signal.SIGINT, self.stop)

    def stop(self) -> None:
        if not self.stopping.is_set():
            log.info("draining: no new connections; finishing requests in flight")
            self.stopping.set()

    async def reload(self, why: str) -> bool:
        async with self._reload_lock:
            self._fingerprint = file_fingerprint(self.config_path)
            try:
                config = load_file(self.config_path)
                await self.discovery.apply_file_config(config, str(self.config_path))
            except ConfigError as error:
                log.error(
                    "config reload (%s) refused, the previous config keeps serving:\n%s",
                    why,
                    error.render(),
                )
                return False
            except ListenError as error:
                log.error(
                    "config reload (%s) refused, the previous config keeps serving: %s", why, error
                )
                return False
            return True

    async def _apply_config(self, config, source: str) -> None:
        self.cache.check(config)  # ListenError if its disk tier cannot be used
        await self.gateway.apply(config, source=source)
        self.cache.apply(config)

    async def _watch_file(self) -> None:
        while True:
            await asyncio.sleep(WATCH_INTERVAL)
            fingerprint = file_fingerprint(self.config_path)
            if fingerprint is not None and fingerprint != self._fingerprint:
                await self.reload("file changed")

    async def _publish_stats(self) -> None:
        """Worker mode: leave counters and endpoint state where the supervisor reads them."""
        view = LocalGatewayView(self.gateway)
        target = self.stats_dir / f"worker-{self.worker_index}.msgpack"
        scratch = target.with_suffix(".tmp")
        purges = PurgeFollower(self.stats_dir, self.cache)
        while True:
            purges.poll()  # cache purges the supervisor took (worker_purges.py)
            try:
                payload = {
                    "worker": self.worker_index,
                    "stats": self.gateway.stats.snapshot(),
                    "upstreams": view.upstreams_document(),
                    "config": view.config_document(),
                    "providers": self.discovery.providers_document(),
                    "ai": self.ai.document(),
                    "cache": self.cache.statistics(),
                    "cache_families": families_as_data(self.gateway.cache),
                    "cache_purge": purges.document(),
                }
                scratch.write_bytes(msgpack.packb(payload, default=str))
                os.replace(scratch, target)
            except OSError as error:
                log.warning("cannot publish worker stats: %s", error)
            await asyncio.sleep(PUBLISH_INTERVAL)


async def run_single(config_path: str, **options) -> int:
    runner = SingleProcessRunner(config_path, **options)
    try:
        return await runner.run()
    except ListenError as error:
        log.error("%s", error)
        return 1
    except OSError as error:  # e.g. the admin address is already taken
        log.error("cannot start: %s", error.strerror or error)
        return 1
