"""``dispa edge``: a node at a point of presence that follows the cores and serves.

It is not a Raft member. It serves the config it last applied (from a core's watch
stream, or from its data directory at start), caches responses, routes clients to the
nearest healthy region, and leases rate-limit quota from the cores. With every core
gone it keeps serving what it has; rate limits fall back to its configured share.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time

import aiohttp
from pydantic import ValidationError

from dispa.admin.gateway_view import LocalGatewayView
from dispa.ai.gateway_ai import admin_extras, start_gateway_ai
from dispa.cluster.acme_install import ManagedCertificates
from dispa.cluster.quota_client import LeasedQuota
from dispa.cluster.watch_protocol import apply_delta
from dispa.config.cluster import SharedConfig, gateway_for_node, waiting_gateway
from dispa.config.edge import EdgeConfig
from dispa.config.schema import split_address
from dispa.edge.edge_cache import EdgeCache
from dispa.edge.follower import ConfigFollower
from dispa.edge.geo import GeoDatabaseError, GeoLocator, GeoRouter, Region, TrustedProxies
from dispa.edge.metrics import edge_registry
from dispa.edge.persist import load_snapshot, save_snapshot
from dispa.edge.remote_ledger import RemoteLedger
from dispa.private_files import make_private_dir, tighten_files_in
from dispa.proxy.request_target import path_rules_of
from dispa.proxy.server import Gateway, ListenError

log = logging.getLogger("dispa.edge")


class EdgeNode:
    def __init__(self, config: EdgeConfig) -> None:
        self.config = config
        self.name = config.edge.name
        self.gateway: Gateway | None = None
        self.follower = ConfigFollower(list(config.cores), config.follow, self._on_message)
        self.shared: dict | None = None  # the shared config applied, as plain data
        self.applied_revision = 0
        self.applied_at = 0.0
        self.committed_at = 0.0
        self.from_disk = False  # serving a persisted snapshot, not heard from a core since
        self.stopping = asyncio.Event()
        self.started = time.time()
        self.registry, self.propagation = edge_registry(self)
        self._report_now = asyncio.Event()
        self.ledger = RemoteLedger(list(config.cores), lambda: self.follower.connected_to)
        self.trusted = TrustedProxies(config.geo.trusted_proxies)
        # Opened at start: a missing or broken database stops the edge with a clear error.
        self.locator = GeoLocator(config.geo.database) if config.geo.database else None
        # ACME answers and certificate from the watch stream, saved for restarts.
        self.acme_tls = ManagedCertificates(config.edge.data_dir)

    # ---------------------------------------------------------------- start and stop

    async def run(self) -> int:
        make_private_dir(self.config.edge.data_dir)  # 0700 whatever the umask
        tighten_files_in(self.config.edge.data_dir)  # files an older version left 0644
        self.gateway = Gateway()
        self.gateway.region = self.config.edge.region
        self.gateway.cache = EdgeCache(
            self.config.cache, [path_rules_of(one.paths) for one in self.config.listeners]
        )
        share = self.config.rate_limits.fallback_share
        self.gateway.quota = LeasedQuota(
            self.ledger,
            f"edge:{self.name}",
            lambda: 1,
            fallback_share=lambda limit: max(1, int(limit * share)),
        )
        await self._start_data_plane()
        from dispa.admin.app import start_admin
        from dispa.edge.admin_api import edge_routes

        host, port = split_address(self.config.admin.address)
        self.ai = start_gateway_ai(self.gateway)  # learns off the request path; see docs/ai.md
        ai_routes, ai_collectors = admin_extras(self.ai)
        self.admin = await start_admin(
            LocalGatewayView(self.gateway),
            host,
            port,
            edge_routes(self) + ai_routes,
            ai_collectors,
            admin_config=self.config.admin,
        )
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self.stop)
        loop.add_signal_handler(signal.SIGINT, self.stop)
        tasks = [
            asyncio.create_task(self.follower.run()),
            asyncio.create_task(self._report_forever()),
        ]
        log.info(
            "edge %s (%s) is up: following %s, admin %s",
            self.name,
            self.config.edge.region,
            ", ".join(self.config.cores),
            self.config.admin.address,
        )
        await self.stopping.wait()
        for task in tasks:
            task.cancel()
        self.ai.stop()
        await self.gateway.drain(self.gateway.snapshot.config.drain_timeout)
        await self.admin.close()
        await self.ledger.close()
        log.info("edge %s stopped", self.name)
        return 0

    async def _start_data_plane(self) -> None:
        self.acme_tls.load()
        persisted = load_snapshot(self.config.edge.data_dir)
        if persisted is not None:
            try:
                await self._apply(
                    persisted["revision"], persisted["config"], persisted.get("committed_at", 0)
                )
            except ValidationError as error:
                log.error("the persisted config does not validate: %s", error)
            else:
                self.from_disk = True
                self.follower.revision = self.applied_revision
                self.follower.purge_seq = int(persisted.get("purge_seq", -1))
                log.info(
                    "serving persisted config revision %d until a core answers",
                    self.applied_revision,
                )
                return
        await self.gateway.apply(
            waiting_gateway(self.config), source="waiting for config", revision=0
        )

    def stop(self) -> None:
        if not self.stopping.is_set():
            log.info("edge %s is stopping", self.name)
            self.stopping.set()

    # ---------------------------------------------------------------- the watch stream

    async def _on_message(self, message: dict) -> None:
        kind = message["type"]
        if kind == "snapshot":
            await self._take(message)
        elif kind == "delta":
            if self.shared is None or message["base"] != self.applied_revision:
                # Not what we hold (a failed apply): the next connection asks afresh.
                raise ConnectionResetError("a delta for a revision this edge does not hold")
            await self._take({**message, "config": apply_delta(self.shared, message)})
        elif kind == "purge":
            self._purge(message.get("urls", []), message.get("tags", []))
            self._persist_purge_seq(int(message["seq"]))
        elif kind == "purge_all":
            cache = self.gateway.cache
            if cache is not None:
                cache.purge_all()
            self._persist_purge_seq(int(message["seq"]))
        elif kind == "acme":
            await self._take_acme(message)

    async def _take_acme(self, message: dict) -> None:
        served = {key: message.get(key) for key in ("seq", "challenges", "certificate")}
        if not self.acme_tls.take(served):
            return
        self.acme_tls.save()
        if self.shared is not None:
            try:
                await self._apply(self.applied_revision, self.shared, self.committed_at)
            except (ValidationError, ListenError) as error:
                log.error("cannot serve the ACME certificate on edge %s: %s", self.name, error)

    async def _take(self, message: dict) -> None:
        revision, config = message["revision"], message["config"]
        committed_at = message.get("committed_at", 0.0)
        try:
            await self._apply(revision, config, committed_at)
        except (ValidationError, ListenError) as error:
            # Cores validate before they commit, so this is rare (a port taken here).
            log.error("cannot apply revision %d on edge %s: %s", revision, self.name, error)
            return
        self.from_disk = False
        if committed_at and not message.get("catch_up"):
            self.propagation.observe(max(0.0, time.time() - committed_at))
        save_snapshot(
            self.config.edge.data_dir,
            {
                "revision": revision,
                "config": config,
                "committed_at": committed_at,
                "purge_seq": self.follower.purge_seq,
            },
        )
        self._report_now.set()

    async def _apply(self, revision: int, config: dict, committed_at: float) -> None:
        shared = SharedConfig.model_validate(config)
        await self.gateway.apply(
            self.acme_tls.overlay(gateway_for_node(self.config, shared), shared.acme),
            source=f"cluster revision {revision}",
            revision=revision,
        )
        self.shared = config
        self.applied_revision = revision
        self.applied_at = time.time()
        self.committed_at = committed_at
        self.acme_tls.applied_seq = self.acme_tls.served["seq"]
        self.gateway.geo = self._geo_router(shared)
        if self.gateway.cache is not None:
            self.gateway.cache.configure(shared)

    def _geo_router(self, shared: SharedConfig) -> GeoRouter:
        regions = [
            Region(r.name, r.latitude, r.longitude, frozenset(r.continents), frozenset(r.countries))
            for r in shared.regions
        ]
        return GeoRouter(self.locator, regions, self.trusted)

    def _purge(self, urls: list[str], tags: list[str]) -> None:
        cache = self.gateway.cache
        if cache is None:
            return
        removed = sum(cache.purge_url(url) for url in urls)
        removed += sum(cache.purge_tag(tag) for tag in tags)
        log.info("purged %d cached responses (%d urls, %d tags)", removed, len(urls), len(tags))

    def _persist_purge_seq(self, seq: int) -> None:
        self.follower.purge_seq = seq
        if self.shared is not None:
            save_snapshot(
                self.config.edge.data_dir,
                {
                    "revision": self.applied_revision,
                    "config": self.shared,
                    "committed_at": self.committed_at,
                    "purge_seq": seq,
                },
            )
        self._report_now.set()

    # ---------------------------------------------------------------- reports to the cores

    async def _report_forever(self) -> None:
        timeout = aiohttp.ClientTimeout(total=1.0)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        self._report_now.wait(), self.config.follow.report_interval
                    )
                self._report_now.clear()
                core = self.follower.connected_to
                if core is None:
                    continue
                report = {
                    "name": self.name,
                    "region": self.config.edge.region,
                    "admin": self.config.admin.address,
                    "revision": self.applied_revision,
                    "purge_seq": self.follower.purge_seq,
                }
                try:
                    async with session.post(
                        f"http://{core}/api/v1/edges/report", json=report
                    ) as response:
                        if response.status != 200:
                            log.debug("report to %s answered %d", core, response.status)
                except (aiohttp.ClientError, TimeoutError, OSError) as error:
                    log.debug("report to %s failed: %s", core, error)

    # ---------------------------------------------------------------- status

    def local_status(self) -> dict:
        follower = self.follower
        return {
            "name": self.name,
            "role": "edge",
            "region": self.config.edge.region,
            "admin": self.config.admin.address,
            "applied_revision": self.applied_revision,
            "applied_at": self.applied_at,
            "serving_persisted_config": self.from_disk,
            "following": follower.connected_to,
            "last_heard_ago": round(time.monotonic() - follower.last_heard, 2)
            if follower.last_heard
            else None,
            "purge_seq": follower.purge_seq,
            "uptime": round(time.time() - self.started, 1),
        }


async def run_edge(config: EdgeConfig) -> int:
    try:
        node = EdgeNode(config)
    except GeoDatabaseError as error:
        log.error("geo.database: %s", error)
        return 2
    try:
        return await node.run()
    except ListenError as error:
        log.error("%s", error)
        return 1
    except OSError as error:
        log.error("cannot start edge %s: %s", config.edge.name, error.strerror or error)
        return 1
