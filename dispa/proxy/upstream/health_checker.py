"""Active health checking: probe each endpoint over HTTP/1.1 at a fixed interval.

One task per endpoint sends ``GET <path>`` on a fresh connection and judges the status
line; a ``HealthState`` per endpoint turns the results into up/down flips, and
``on_change`` hears about each flip. What a flip means for balancing (combined with
outlier ejection) is the caller's business.

Endpoints start healthy, as the ``Endpoint`` itself does: a reload must not blackhole an
upstream until its first probes come back, and a dead endpoint is found within
``unhealthy_threshold`` probes (or sooner by outlier detection on real traffic).
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
from collections.abc import Callable, Sequence

from dispa.config.schema import HealthCheck
from dispa.proxy.grpc.health import GrpcHealthError, probe_grpc_health
from dispa.proxy.http2.probe import probe_status_h2
from dispa.proxy.upstream.endpoint import Endpoint
from dispa.proxy.upstream.health_state import HealthState
from dispa.proxy.upstream.tls import describe_handshake_error

log = logging.getLogger(__name__)

# The first probe waits up to this share of the interval, so that many endpoints (or many
# gateways) started together do not probe in lockstep.
FIRST_PROBE_JITTER = 0.1


class ProbeError(Exception):
    """A probe got no usable status line."""


class _Target:
    """Health record and probing task of one endpoint."""

    __slots__ = ("checks", "failures", "last_error", "last_status", "state", "task")

    def __init__(self, state: HealthState) -> None:
        self.state = state
        self.task: asyncio.Task[None] | None = None
        self.checks = 0
        self.failures = 0
        # Both describe the latest probe only: a status when it got one, else an error.
        self.last_status: int | None = None
        self.last_error: str | None = None


class ActiveHealthChecker:
    def __init__(
        self,
        endpoints: Sequence[Endpoint],
        config: HealthCheck,
        on_change: Callable[[Endpoint, bool], None],
        protocol: str = "http1",
    ) -> None:
        self.config = config
        self.on_change = on_change
        # How one probe is made: by the upstream's protocol, or gRPC's health service.
        if config.kind == "grpc":
            self._probe = probe_grpc
            # The gRPC probe raises unless SERVING: the status it returns is 200.
            self._expected = (200, 200)
        else:
            self._probe = PROBES[protocol]
            self._expected = config.expected_status
        self._targets: dict[Endpoint, _Target] = {e: self._new_target() for e in endpoints}
        # Tasks cancelled by update() that stop() must still wait for.
        self._retiring: set[asyncio.Task[None]] = set()
        self._running = False

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start probing every endpoint; call from inside the running event loop."""
        if self._running:
            return
        self._running = True
        for endpoint, target in self._targets.items():
            self._start_probing(endpoint, target)

    async def stop(self) -> None:
        """Cancel every probe and wait until all tasks have ended; safe to call twice."""
        self._running = False
        tasks = [t.task for t in self._targets.values() if t.task is not None]
        tasks.extend(self._retiring)
        for target in self._targets.values():
            target.task = None
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def update(self, endpoints: Sequence[Endpoint]) -> None:
        """Probe exactly ``endpoints`` from now on; endpoints that stay keep their state."""
        previous = self._targets
        self._targets = {}
        for endpoint in endpoints:
            if endpoint in self._targets:  # listed twice: one probe is enough
                continue
            target = previous.pop(endpoint, None)
            if target is None:
                target = self._new_target()
                if self._running:
                    self._start_probing(endpoint, target)
            self._targets[endpoint] = target
        for removed in previous.values():
            if removed.task is not None:
                removed.task.cancel()
                self._retiring.add(removed.task)
                removed.task.add_done_callback(self._retiring.discard)

    # ------------------------------------------------------------ queries

    def is_healthy(self, endpoint: Endpoint) -> bool:
        # An endpoint this checker does not probe has no evidence against it.
        target = self._targets.get(endpoint)
        return target is None or target.state.healthy

    def statistics(self) -> dict[str, dict[str, object]]:
        return {
            endpoint.address: {
                "healthy": target.state.healthy,
                "checks": target.checks,
                "failures": target.failures,
                "last_status": target.last_status,
                "last_error": target.last_error,
            }
            for endpoint, target in self._targets.items()
        }

    # ------------------------------------------------------------ probing

    def _new_target(self) -> _Target:
        state = HealthState(self.config.healthy_threshold, self.config.unhealthy_threshold)
        return _Target(state)

    def _start_probing(self, endpoint: Endpoint, target: _Target) -> None:
        target.task = asyncio.get_running_loop().create_task(
            self._probe_forever(endpoint, target), name=f"health-check {endpoint.address}"
        )

    async def _probe_forever(self, endpoint: Endpoint, target: _Target) -> None:
        interval = self.config.interval
        await asyncio.sleep(random.uniform(0, FIRST_PROBE_JITTER * interval))
        while True:
            await self._probe_once(endpoint, target)
            # Counted from the end of a probe, as Envoy does: a slow endpoint is not
            # probed again while its previous probe is still pending.
            await asyncio.sleep(interval)

    async def _probe_once(self, endpoint: Endpoint, target: _Target) -> None:
        low, high = self._expected
        try:
            status = await self._probe(endpoint, self.config)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # any failure of the probe is a failed check, never a crash
            log.debug("health check of %s failed: %r", endpoint.address, exc)
            target.last_status, target.last_error = None, describe_error(exc, self.config)
            success = False
        else:
            target.last_status, target.last_error = status, None
            success = low <= status <= high
        target.checks += 1
        if not success:
            target.failures += 1
        if target.state.observe(success):
            self._report_change(endpoint, target.state.healthy)

    def _report_change(self, endpoint: Endpoint, healthy: bool) -> None:
        # Debug only: the listener (the upstream) logs each flip with its upstream's name,
        # a warning going down and info coming back.
        log.debug("endpoint %s is now %s", endpoint.address, "healthy" if healthy else "unhealthy")
        try:
            self.on_change(endpoint, healthy)
        except Exception:  # a faulty listener must not stop the probing
            log.exception("health change listener failed for %s", endpoint.address)


async def probe_status(endpoint: Endpoint, config: HealthCheck) -> int:
    """Send one health request on a new connection and return the response status.

    ``config.timeout`` covers connecting (and the TLS handshake), sending and receiving
    the response head.
    """
    request = (
        f"GET {config.path} HTTP/1.1\r\n"
        f"Host: {config.host or host_header(endpoint)}\r\n"
        "User-Agent: dispa-health\r\n"
        "Connection: close\r\n\r\n"
    ).encode("latin-1")
    # A TLS upstream is probed with the context its pool connects with (upstream/tls.py).
    tls = getattr(endpoint.pool, "tls", None)
    async with asyncio.timeout(config.timeout):
        reader, writer = await asyncio.open_connection(
            endpoint.host,
            endpoint.port,
            ssl=tls.context if tls is not None else None,
            server_hostname=tls.server_name if tls is not None else None,
        )
        try:
            writer.write(request)
            # Read the whole head so the server sees a complete exchange, not a reset.
            head = await reader.readuntil(b"\r\n\r\n")
        finally:
            writer.close()
    return parse_status(head.split(b"\r\n", 1)[0])


async def probe_status_over_h2(endpoint: Endpoint, config: HealthCheck) -> int:
    """The HTTP/2 probe (http2/probe.py), with the same Host (:authority) as over HTTP/1.1,
    over TLS when the endpoint's pool connects so."""
    authority = config.host or host_header(endpoint)
    return await probe_status_h2(endpoint, config, authority, getattr(endpoint.pool, "tls", None))


async def probe_grpc(endpoint: Endpoint, config: HealthCheck) -> int:
    """grpc.health.v1 Check over h2c (grpc/health.py), with the same :authority."""
    return await probe_grpc_health(endpoint, config, config.host or host_header(endpoint))


# The probe for each upstream protocol.
PROBES = {"http1": probe_status, "h2": probe_status_over_h2}


def host_header(endpoint: Endpoint) -> str:
    # An IPv6 literal needs brackets in a Host header (RFC 9110, section 7.2).
    if ":" in endpoint.host:
        return f"[{endpoint.host}]:{endpoint.port}"
    return endpoint.address


def parse_status(status_line: bytes) -> int:
    """The status code of ``HTTP/1.x NNN reason``; ProbeError when it is not one."""
    parts = status_line.split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not _is_status(parts[1]):
        raise ProbeError(f"malformed status line {status_line[:80]!r}")
    return int(parts[1])


def _is_status(code: bytes) -> bool:
    return len(code) == 3 and code.isdigit()


def describe_error(exc: Exception, config: HealthCheck) -> str:
    """A short reason for statistics, readable without a traceback."""
    if isinstance(exc, TimeoutError):
        return f"timed out after {config.timeout:g}s"
    if isinstance(exc, asyncio.IncompleteReadError):
        return "connection closed before a response head"
    if isinstance(exc, asyncio.LimitOverrunError):
        return "response head too large"
    if isinstance(exc, ProbeError | GrpcHealthError):
        return str(exc)
    if isinstance(exc, ssl.SSLError):
        return describe_handshake_error(exc)
    return f"{type(exc).__name__}: {exc}"
