"""An upstream pool at run time: endpoints, their health, and the balancer over them.

``UpstreamSet`` keeps these across config snapshots: an upstream whose config did not
change is reused as is; a changed one is rebuilt but keeps the Endpoint objects (and so
the warm connection pools and counters) of addresses it still lists.
"""

from __future__ import annotations

import asyncio
import logging
import time

from dispa.config.schema import Upstream, UpstreamTls, split_address
from dispa.proxy.balancer import HASHING_POLICIES, build_balancer
from dispa.proxy.events import header_value
from dispa.proxy.hash_key import cookie_value, key_function
from dispa.proxy.http2.upstream_pool import H2EndpointPool
from dispa.proxy.retry_policy import RetryBudget
from dispa.proxy.sessions import LocalSessions, new_session_id
from dispa.proxy.upstream.circuit import CircuitBreaker
from dispa.proxy.upstream.connection import EndpointPool
from dispa.proxy.upstream.endpoint import Endpoint
from dispa.proxy.upstream.health_checker import ActiveHealthChecker
from dispa.proxy.upstream.outlier import OutlierDetector
from dispa.proxy.upstream.tls import EndpointTls, UpstreamTlsContext

log = logging.getLogger("dispa.upstream")

# How often ejections are released and idle pooled connections swept.
_MAINTENANCE_INTERVAL = 1.0


class _LocalOwner:
    """Stands in for the gateway when an upstream set is built on its own (tests, tools)."""

    def __init__(self) -> None:
        self.sessions = LocalSessions()


class UpstreamRuntime:
    def __init__(self, config: Upstream, endpoints: list[Endpoint], owner=None) -> None:
        self.config = config
        # Whoever holds the session table (the gateway): read at pick time, so a core can
        # hand in its replicated table after the upstreams exist.
        self._owner = owner if owner is not None else _LocalOwner()
        self.affinity = config.session_affinity
        self._cookie_name = self.affinity.cookie.encode() if self.affinity else b""
        self._by_address = {endpoint.address: endpoint for endpoint in endpoints}
        self.name = config.name
        self.endpoints = endpoints
        self.circuit = CircuitBreaker(config.circuit)
        self.outlier = OutlierDetector(config.outlier)
        self.outlier.set_pool(endpoints)
        self.retry_budget = RetryBudget(
            config.retry.budget_percent, config.retry.min_retry_concurrency
        )
        self.health = (
            ActiveHealthChecker(endpoints, config.health, self._on_health_change, config.protocol)
            if config.health is not None
            else None
        )
        hashing = config.lb in HASHING_POLICIES
        hash_policy = config.hash
        self.hash_key = (
            key_function(hash_policy.key if hash_policy else "source_ip") if hashing else None
        )
        self._bounded_load = (
            (hash_policy.bounded_load if hash_policy else 1.25) if hashing else None
        )
        self.available: list[Endpoint] = []
        # For `geo: nearest` routes: each region's available endpoints and their balancer.
        self._region_of = {e.address: e.region for e in config.endpoints if e.region}
        self.regional: dict[str, tuple[list[Endpoint], object]] = {}
        self.active_requests = 0  # in flight through this upstream (sizes the retry budget)
        self.balancer = None
        self._maintenance: asyncio.TimerHandle | None = None
        self.refresh()

    # -------------------------------------------------------------- availability

    def refresh(self, now: float | None = None) -> None:
        """Recompute which endpoints take traffic and rebuild the balancer over them."""
        now = time.monotonic() if now is None else now
        health = self.health
        available = []
        for endpoint in self.endpoints:
            actively_healthy = health.is_healthy(endpoint) if health is not None else True
            endpoint.healthy = actively_healthy and not self.outlier.is_ejected(endpoint, now)
            if endpoint.healthy:
                available.append(endpoint)
        self.available = available
        self.balancer = build_balancer(self.config.lb, available, bounded_load=self._bounded_load)
        if self._region_of:
            by_region: dict[str, list[Endpoint]] = {}
            for endpoint in available:
                region = self._region_of.get(endpoint.address)
                if region is not None:
                    by_region.setdefault(region, []).append(endpoint)
            self.regional = {
                region: (
                    members,
                    build_balancer(self.config.lb, members, bounded_load=self._bounded_load),
                )
                for region, members in by_region.items()
            }

    def _on_health_change(self, endpoint: Endpoint, healthy: bool) -> None:
        # Going bad is a warning; coming back is good news, said at info.
        log.log(
            logging.INFO if healthy else logging.WARNING,
            "endpoint %s of upstream %s is now %s",
            endpoint.address,
            self.name,
            "healthy" if healthy else "unhealthy (active health check)",
        )
        self.refresh()

    # -------------------------------------------------------------- the hot path

    def pick(self, ctx, exclude: Endpoint | None = None) -> Endpoint | None:
        if self.affinity is not None:
            return self._pick_sticky(ctx, exclude)
        if exclude is None and self.hash_key is None:
            return self.balancer.pick(None)  # the common case, without a further call
        return self._pick_balanced(ctx, exclude)

    def _pick_sticky(self, ctx, exclude: Endpoint | None) -> Endpoint | None:
        """The endpoint the client's session cookie names, while it is available; else a
        balanced pick, remembered for the session (a new one gets its cookie set)."""
        affinity = self.affinity
        sessions = self._owner.sessions
        now = time.time()  # wall clock: session expiry is shared by every node
        raw = cookie_value(header_value(ctx.request_headers, b"cookie"), self._cookie_name)
        session = raw.decode("latin-1") if raw else None
        if session:
            address = sessions.lookup(self.name, session, now)
            endpoint = self._by_address.get(address) if address is not None else None
            if endpoint is not None and endpoint.healthy and endpoint is not exclude:
                return endpoint
        endpoint = self._pick_balanced(ctx, exclude)
        if endpoint is None:
            return None
        if not session:
            session = new_session_id()
            ctx.response_cookie = (
                f"{affinity.cookie}={session}; Path=/; Max-Age={int(affinity.ttl)}; HttpOnly"
            ).encode()
        sessions.remember(self.name, session, endpoint.address, affinity.ttl, now)
        return endpoint

    def pick_nearest(self, ctx, exclude: Endpoint | None, ranking) -> Endpoint | None:
        """The nearest region (in ``ranking`` order) with an available endpoint serves: a
        region whose endpoints are all down or ejected is passed over for the next one."""
        for region in ranking:
            entry = self.regional.get(region)
            if entry is None:
                continue
            members, balancer = entry
            key = self.hash_key(ctx) if self.hash_key is not None else None
            endpoint = balancer.pick(key)
            if endpoint is exclude and exclude is not None:
                endpoint = next((e for e in members if e is not exclude), None)
                if endpoint is None:
                    continue  # the retry goes to the next region
            if endpoint is not None:
                ctx.region = region
                return endpoint
        return None

    def _pick_balanced(self, ctx, exclude: Endpoint | None) -> Endpoint | None:
        key = self.hash_key(ctx) if self.hash_key is not None else None
        endpoint = self.balancer.pick(key)
        if exclude is not None and endpoint is exclude and len(self.available) > 1:
            # A retry goes elsewhere when it can: try a few more picks, then any other one.
            for _ in range(3):
                endpoint = self.balancer.pick(None)
                if endpoint is not exclude:
                    return endpoint
            for candidate in self.available:
                if candidate is not exclude:
                    return candidate
        return endpoint

    def report_status(self, endpoint: Endpoint, status: int, now: float) -> None:
        if status >= 500:
            if self.outlier.record_5xx(endpoint, now):
                self._ejected(endpoint, "consecutive 5xx responses")
        else:
            self.outlier.record_success(endpoint, now)

    def report_failure(self, endpoint: Endpoint, now: float) -> None:
        if self.outlier.record_failure(endpoint, now):
            self._ejected(endpoint, "consecutive connect failures or resets")

    def _ejected(self, endpoint: Endpoint, why: str) -> None:
        log.warning("endpoint %s of upstream %s ejected: %s", endpoint.address, self.name, why)
        self.refresh()

    # -------------------------------------------------------------- lifecycle

    def adopt(self, previous: UpstreamRuntime) -> None:
        """Carry health and outlier history over from the runtime this one replaces, where
        their settings did not change: a reload must not make a failing endpoint healthy."""
        config = self.config
        if config.outlier == previous.config.outlier:
            self.outlier = previous.outlier
            self.outlier.set_pool(self.endpoints)
        if (
            self.health is not None
            and previous.health is not None
            and config.health == previous.config.health
            and config.protocol == previous.config.protocol  # the probe speaks it
        ):
            self.health = previous.health
            previous.health = None  # now ours: stopping the old runtime leaves it running
            self.health.on_change = self._on_health_change
            self.health.update(self.endpoints)
        self.refresh()

    def start(self) -> None:
        if self.health is not None:
            self.health.start()
        self._schedule_maintenance()

    def _schedule_maintenance(self) -> None:
        loop = asyncio.get_running_loop()
        self._maintenance = loop.call_later(_MAINTENANCE_INTERVAL, self._maintain)

    def _maintain(self) -> None:
        now = time.monotonic()
        try:
            released = self.outlier.release_due(now)
            if released:
                for endpoint in released:
                    log.info(
                        "endpoint %s of upstream %s returns to service", endpoint.address, self.name
                    )
                self.refresh(now)
            for endpoint in self.endpoints:
                endpoint.pool.sweep(now)
        except Exception:  # maintenance must never stop rescheduling itself
            log.exception("upstream %s maintenance failed", self.name)
        self._schedule_maintenance()

    async def stop(self) -> None:
        if self._maintenance is not None:
            self._maintenance.cancel()
            self._maintenance = None
        if self.health is not None:
            await self.health.stop()

    def document(self) -> dict:
        """The upstream as shown by the admin API."""
        now = time.monotonic()
        health = self.health
        endpoints = []
        for endpoint in self.endpoints:
            if health is None:
                active = "unchecked"
            else:
                active = "healthy" if health.is_healthy(endpoint) else "unhealthy"
            endpoints.append(
                {
                    "address": endpoint.address,
                    "weight": endpoint.weight,
                    "healthy": endpoint.healthy,
                    "active_health": active,
                    "ejected": self.outlier.is_ejected(endpoint, now),
                    "active_requests": endpoint.active_requests,
                    "idle_connections": len(endpoint.pool.idle),
                }
            )
        return {"name": self.name, "lb": self.config.lb, "endpoints": endpoints}


def _new_pool(
    pool_class, host: str, port: int, pool_config, tls: EndpointTls | None, upstream: str
):
    if tls is None:
        pool = pool_class(host, port, pool_config.max_idle_per_endpoint, pool_config.idle_timeout)
    else:
        pool = pool_class(
            host, port, pool_config.max_idle_per_endpoint, pool_config.idle_timeout, tls=tls
        )
    pool.upstream = upstream  # named in what its connections log
    return pool


def _tls_config(pool) -> UpstreamTls | None:
    """The ``tls`` block a pool's connections were made with (None: plain TCP)."""
    tls = getattr(pool, "tls", None)
    return tls.config if tls is not None else None


class UpstreamSet:
    """All upstream runtimes of a gateway, carried from one snapshot to the next."""

    def __init__(self, owner=None) -> None:
        self._owner = owner
        self.by_name: dict[str, UpstreamRuntime] = {}
        self._endpoints: dict[tuple[str, str], Endpoint] = {}

    def prepare(self, configs: tuple[Upstream, ...]) -> dict[str, UpstreamRuntime]:
        """Runtimes for a new snapshot; nothing is started or stopped yet.

        Raises UpstreamTlsError, before any endpoint changes, if a TLS file does not load.
        """
        changed = [
            config
            for config in configs
            if (current := self.by_name.get(config.name)) is None or current.config != config
        ]
        # Built once per upstream config, all before any pool is touched: the endpoints'
        # pools and health probes share it.
        contexts = {
            config.name: UpstreamTlsContext(
                config, alpn=["h2"] if config.protocol == "h2" else None
            )
            for config in changed
            if config.tls is not None
        }
        prepared = {}
        for config in configs:
            current = self.by_name.get(config.name)
            if current is not None and current.config == config:
                prepared[config.name] = current
                continue
            tls = contexts.get(config.name)
            endpoints = [self._endpoint(config, e.address, e.weight, tls) for e in config.endpoints]
            prepared[config.name] = UpstreamRuntime(config, endpoints, self._owner)
        return prepared

    def _endpoint(
        self, config: Upstream, address: str, weight: int, tls: UpstreamTlsContext | None = None
    ) -> Endpoint:
        existing = self._endpoints.get((config.name, address))
        pool_config = config.pool
        pool_class = H2EndpointPool if config.protocol == "h2" else EndpointPool
        if existing is not None:
            existing.weight = weight
            endpoint_tls = tls.for_endpoint(existing.host) if tls is not None else None
            if type(existing.pool) is not pool_class or _tls_config(existing.pool) != config.tls:
                # The protocol or the TLS settings changed: the old connections finish what
                # they carry, new requests open connections of the new kind.
                existing.pool.close_all()
                existing.pool = _new_pool(
                    pool_class, existing.host, existing.port, pool_config, endpoint_tls, config.name
                )
            elif endpoint_tls is not None:
                # Same settings, files loaded afresh (a renewed CA): for new connections.
                existing.pool.tls = endpoint_tls
            existing.pool.max_idle = pool_config.max_idle_per_endpoint
            existing.pool.idle_timeout = pool_config.idle_timeout
            return existing
        host, port = split_address(address)
        endpoint = Endpoint(config.name, host, port, weight)
        endpoint_tls = tls.for_endpoint(host) if tls is not None else None
        endpoint.pool = _new_pool(pool_class, host, port, pool_config, endpoint_tls, config.name)
        self._endpoints[(config.name, address)] = endpoint
        return endpoint

    async def commit(self, prepared: dict[str, UpstreamRuntime]) -> None:
        """Start what is new, stop what is gone, after the snapshot holding them is live."""
        old = self.by_name
        self.by_name = prepared
        for name, runtime in prepared.items():
            previous = old.get(name)
            if previous is not runtime:
                if previous is not None:
                    runtime.adopt(previous)
                runtime.start()
        live = {id(e) for r in prepared.values() for e in r.endpoints}
        for name, runtime in old.items():
            if prepared.get(name) is not runtime:
                await runtime.stop()
        for key, endpoint in list(self._endpoints.items()):
            if id(endpoint) not in live:
                endpoint.pool.close_all()
                del self._endpoints[key]

    async def stop(self) -> None:
        for runtime in self.by_name.values():
            await runtime.stop()
        for endpoint in self._endpoints.values():
            endpoint.pool.close_all()
