"""The gateway in one process: listeners, the current snapshot, and graceful reload/drain.

``apply`` makes a new snapshot live with one assignment. It binds any new listener first,
so a config whose listener cannot be bound is refused whole and the old one keeps serving.
Connections read ``gateway.snapshot`` when each request starts, so a keep-alive
connection moves to the new config at its next request and nothing in flight is cut.
A TLS listener whose certificate files were renewed keeps its socket and connections:
new handshakes get the new certificates (see ``tls.py``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time

from dispa.config.schema import Gateway as GatewayConfig
from dispa.config.schema import Listener, split_address
from dispa.observe.access_log import AccessLog, NullAccessLog
from dispa.observe.stats import DataPlaneStats
from dispa.proxy.body_pace import UploadsByClient
from dispa.proxy.filters.executor import FilterExecutor
from dispa.proxy.filters.registry import FilterServices
from dispa.proxy.http1.server import H1ServerConnection
from dispa.proxy.local_reply import error_reply
from dispa.proxy.protocol_sniff import ProtocolSniffer
from dispa.proxy.quota import LocalQuota, QuotaAccount
from dispa.proxy.sessions import LocalSessions, SessionTable
from dispa.proxy.snapshot import Snapshot, compile_snapshot
from dispa.proxy.tls import CertificateSet, ListenerTls, TlsSetupError, build_certificates
from dispa.proxy.upstream.pools import UpstreamSet
from dispa.proxy.upstream.tls import UpstreamTlsError

log = logging.getLogger("dispa.gateway")


class ListenError(Exception):
    """A listener address could not be bound."""


def bind_socket(address: str, reuse_port: bool) -> socket.socket:
    host, port = split_address(address)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(4096)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise ListenError(f"cannot listen on {address}: {exc.strerror or exc}") from None
    return sock


class _ListenerSlot:
    """A bound listener; its config may change on reload while the socket stays."""

    def __init__(self, config: Listener, tls: ListenerTls | None) -> None:
        self.config = config
        self.tls = tls
        self.server: asyncio.base_events.Server | None = None

    @property
    def port(self) -> int:
        return self.server.sockets[0].getsockname()[1]


# How often timeouts are checked: every timeout fires within this much of its time.
TICK = 0.1


class Gateway:
    def __init__(self, *, reuse_port: bool = False) -> None:
        self.loop = asyncio.get_running_loop()
        self.reuse_port = reuse_port
        self.snapshot: Snapshot | None = None
        self.stats = DataPlaneStats()
        self.connections: set[H1ServerConnection] = set()
        self.draining = False
        # Global rate limits and sticky sessions: kept in this process for a single gateway;
        # a core or an edge hands in accounts backed by the cluster before the first apply.
        self.quota: QuotaAccount = LocalQuota()
        self.sessions: SessionTable = LocalSessions()
        # Handed in by an edge: its response cache and its client locator for
        # `geo: nearest` routes. None elsewhere (no caching; geo falls back to this
        # node's own region first).
        self.cache = None
        self.geo = None
        self.region: str | None = None
        self.upstreams = UpstreamSet(self)
        self.listeners: dict[str, _ListenerSlot] = {}
        # Listener name -> the header (lower case) that carries the client identity upstream.
        self.identity_headers: dict[str, bytes] = {}
        # Requests per client address still sending their body to an upstream (slow POST).
        self.uploads = UploadsByClient()
        # Request bodies held whole before an upstream is picked, in bytes, all together.
        self.buffered_body_bytes = 0
        # Threads for filter work that blocks; sized by the config's filters_executor. A
        # thread is made only when a job first needs one.
        self.filter_executor: FilterExecutor | None = None
        self.access_log = NullAccessLog()
        self._access_log_config = None
        self._request_id_prefix = os.urandom(4).hex() + "-"
        self._request_counter = 0
        self._revision = 0
        # The time as of the latest event (bytes read, a tick): the hot path reads this
        # instead of asking the clock again and again within one callback.
        self.now = time.monotonic()
        self._ticker = self.loop.call_later(TICK, self._tick)

    # ---------------------------------------------------------------- config

    async def apply(self, config: GatewayConfig, source: str = "", revision: int | None = None):
        """Make ``config`` live; raises ListenError with nothing changed if it cannot be."""
        # Certificate files can be renewed in place (same paths, new content, then SIGHUP):
        # the config is then equal, so the files themselves are compared, before the early
        # return below. Renewals are loaded first and installed last, so a bad file refuses
        # the whole config and the old certificates keep serving.
        renewed = self._renewed_certificates(config)
        current = self.snapshot
        if current is not None and current.config == config:
            self._install_certificates(renewed)
            return current  # an equal config changes nothing else (and keeps its revision)
        new_slots = await self._bind_new_listeners(config)
        try:
            prepared = self.upstreams.prepare(config.upstreams)
        except UpstreamTlsError as error:
            # A TLS file that passed validation but no longer loads: refuse the config.
            for slot in new_slots.values():
                slot.server.close()
            raise ListenError(str(error)) from None
        self._revision = revision if revision is not None else self._revision + 1
        services = FilterServices(executor=self._sized_executor(config.filters_executor))
        snapshot = compile_snapshot(
            config, self._revision, prepared, source, self.quota, filter_services=services
        )
        self.snapshot = snapshot
        await self.upstreams.commit(prepared)
        self._swap_listeners(config, new_slots)
        self._install_certificates(renewed)
        self._configure_access_log(config)
        log.info("config revision %d is live (%s)", snapshot.revision, source or "initial")
        return snapshot

    def _sized_executor(self, wanted) -> FilterExecutor:
        """The filter executor at the size the config asks for. A resize makes a new one;
        jobs already queued on the old one still run, and it ends with its last job."""
        executor = self.filter_executor
        if executor is not None and executor.same_size(wanted):
            return executor
        if executor is not None:
            executor.stop(wait=False, drop_queued=False)
        executor = self.filter_executor = FilterExecutor.from_config(wanted)
        executor.start(self.loop)
        self.stats.filter_executor = executor
        return executor

    def _keeps_server(self, listener: Listener) -> _ListenerSlot | None:
        """The slot whose server serves ``listener`` as it is: same address, same TLS
        settings (certificate files may still have new content)."""
        existing = self.listeners.get(listener.name)
        if existing is None or existing.config.address != listener.address:
            return None
        return existing if existing.config.tls == listener.tls else None

    def _renewed_certificates(self, config: GatewayConfig) -> dict[str, CertificateSet]:
        renewed = {}
        for index, listener in enumerate(config.listeners):
            slot = self._keeps_server(listener)
            if slot is None or slot.tls is None:
                continue
            try:
                certificates = slot.tls.renewed_certificates(f"listeners[{index}].tls")
            except TlsSetupError as error:
                raise ListenError(str(error)) from None
            if certificates is not None:
                renewed[listener.name] = certificates
        return renewed

    def _install_certificates(self, renewed: dict[str, CertificateSet]) -> None:
        for name, certificates in renewed.items():
            self.listeners[name].tls.certificates = certificates
            log.info("listener %s: new certificates loaded", name)

    async def _bind_new_listeners(self, config: GatewayConfig) -> dict[str, _ListenerSlot]:
        slots: dict[str, _ListenerSlot] = {}
        try:
            for index, listener in enumerate(config.listeners):
                if self._keeps_server(listener) is not None:
                    continue
                tls = None
                if listener.tls is not None:
                    where = f"listeners[{index}].tls"
                    try:
                        tls = ListenerTls(listener.tls, build_certificates(listener.tls, where))
                    except TlsSetupError as error:
                        raise ListenError(str(error)) from None
                existing = self.listeners.get(listener.name)
                if existing is not None and existing.config.address == listener.address:
                    # TLS turned on, off or changed: a new server on the same listening
                    # socket (a duplicate of it), so no connection attempt is refused.
                    sock = socket.socket(fileno=os.dup(existing.server.sockets[0].fileno()))
                    sock.setblocking(False)
                else:
                    sock = bind_socket(listener.address, self.reuse_port)
                slot = _ListenerSlot(listener, tls)
                try:
                    slot.server = await self.loop.create_server(
                        self._protocol_factory(slot),
                        sock=sock,
                        backlog=4096,
                        ssl=tls.context if tls is not None else None,
                        # Client timeouts start once the handshake is over: a client stalling
                        # in it is held to the same bound as one stalling in a request head.
                        ssl_handshake_timeout=listener.limits.header_timeout if tls else None,
                    )
                except BaseException:
                    sock.close()
                    raise
                slots[listener.name] = slot
        except BaseException:
            for slot in slots.values():
                slot.server.close()
            raise
        return slots

    def _protocol_factory(self, slot: _ListenerSlot):
        # Bound to the slot, not looked up by name: a server may accept before the swap
        # that makes its slot current.
        def build() -> ProtocolSniffer:
            # HTTP/1.1 or HTTP/2 (ALPN, or the h2c preface): decided per connection.
            return ProtocolSniffer(self, slot.config)

        return build

    def _swap_listeners(self, config: GatewayConfig, new_slots: dict[str, _ListenerSlot]) -> None:
        wanted = {listener.name: listener for listener in config.listeners}
        retired: dict[str, Listener | None] = {}
        for name, slot in list(self.listeners.items()):
            if name not in wanted or name in new_slots:
                slot.server.close()
                del self.listeners[name]
                retired[name] = new_slots[name].config if name in new_slots else None
            else:
                slot.config = wanted[name]
        self.listeners.update(new_slots)
        if retired:
            self._drain_retired(retired)
        self.identity_headers = {
            listener.name: listener.tls.client_auth.forward_header.lower().encode()
            for listener in config.listeners
            if listener.tls is not None and listener.tls.client_auth.forward_header
        }

    def _drain_retired(self, retired: dict[str, Listener | None]) -> None:
        """Connections accepted under a listener that was removed, or replaced because its
        TLS settings changed, drain as on shutdown: HTTP/2 ones get GOAWAY and close once
        their streams finish, HTTP/1.1 ones close after the response in progress. Clients
        reconnect to what is configured now. ``retired`` maps a name to its replacement's
        settings (whose connections stay), or None when the listener is gone."""
        for connection in list(self.connections):
            listener = connection.listener
            if listener.name in retired and listener is not retired[listener.name]:
                connection.close_if_idle()

    def _configure_access_log(self, config: GatewayConfig) -> None:
        wanted = config.access_log
        if wanted == self._access_log_config:
            return
        self.access_log.close()
        if wanted.enabled:
            self.access_log = AccessLog(wanted.path, wanted.buffer_bytes, wanted.flush_interval)
            self.access_log.start()
        else:
            self.access_log = NullAccessLog()
        self._access_log_config = wanted

    def listener_port(self, name: str) -> int:
        return self.listeners[name].port

    def _tick(self) -> None:
        """Fire the timeouts that have passed, on every connection, ten times a second."""
        now = self.now = time.monotonic()
        try:
            due = [c for c in self.connections if c.deadline <= now or c.exchange is not None]
            for connection in due:
                try:
                    connection.check_deadlines(now)
                except Exception:
                    log.exception("a timeout handler failed")
                    connection.abort()
        finally:
            self._ticker = self.loop.call_later(TICK, self._tick)

    # ---------------------------------------------------------------- per request

    def next_request_id(self, given: bytes | None) -> str:
        """The client's X-Request-Id if it sent one, else a new id unique to this process."""
        if given:
            return given.decode("latin-1")
        self._request_counter += 1
        return f"{self._request_id_prefix}{self._request_counter:x}"

    def log_access(self, ctx) -> None:
        access_log = self.access_log
        if not access_log.enabled:
            return
        request = ctx.request
        endpoint = ctx.endpoint
        now = time.monotonic()
        # Fix (integration tests): "time" is documented (observe/access_log.py) as the UTC
        # time the request head arrived, with milliseconds; it was the log time in seconds.
        arrived = time.time() - (now - ctx.started)
        millis = int(arrived * 1000) % 1000
        access_log.write(
            {
                "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(arrived))
                + f".{millis:03d}Z",
                "request_id": ctx.request_id,
                "client": f"{ctx.client_ip}:{ctx.client_port}",
                "method": request.method,
                "path": request.path,
                "host": request.host,
                "status": ctx.status,
                "route": ctx.route_name or None,
                "upstream": ctx.upstream_name or None,
                "endpoint": endpoint.address if endpoint is not None else None,
                "duration_ms": round((now - ctx.started) * 1000, 3),
                "bytes_in": ctx.bytes_in,
                "bytes_out": ctx.bytes_out,
                "reason": ctx.reason,
                "attempts": ctx.attempts,
            }
        )

    def internal_error(self, exchange) -> None:
        """A bug reached the top of an exchange: answer 500 if we still can, never crash."""
        log.exception("internal error while handling a request")
        try:
            if not exchange.response_started:
                exchange.reply(error_reply(500, "internal_error"))
            else:
                exchange.downstream.abort()
        except Exception:
            log.exception("could not answer after an internal error")
            exchange.downstream.abort()

    # ---------------------------------------------------------------- shutdown

    async def drain(self, timeout: float) -> None:
        """Stop accepting, let requests in flight finish up to ``timeout``, then close."""
        self.draining = True
        for slot in self.listeners.values():
            slot.server.close()
        for connection in list(self.connections):
            connection.close_if_idle()
        deadline = time.monotonic() + timeout
        while self.connections and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for connection in list(self.connections):
            connection.abort()
        # The aborted connections' connection_lost runs on the next turn of the loop: let
        # it, so the exchanges they cut off (open tunnels) are logged before the log closes.
        await asyncio.sleep(0)
        await self.upstreams.stop()
        if self.filter_executor is not None:
            # Running jobs finish on their threads; nobody waits for their answers now.
            self.filter_executor.stop(wait=False)
        self.access_log.close()
        self._ticker.cancel()
