"""Connections to upstream endpoints and the per-endpoint keep-alive pool.

The Protocol only moves bytes: it feeds the response parser and hands the events to the
exchange currently using the connection. Idle connections wait in their endpoint's pool,
most recently used first, so the warmest connection is reused and cold ones age out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time

from dispa.proxy.events import Data, EndOfMessage, InterimResponse, Response, Trailers
from dispa.proxy.http1.parser import ProtocolError, ResponseParser
from dispa.proxy.http2.upstream_headers import trailer_fields
from dispa.proxy.upstream.tls import EndpointTls, describe_handshake_error

log = logging.getLogger("dispa.upstream")


class UpstreamConnection(asyncio.Protocol):
    multiplexed = False  # HTTP/1.1 bytes on the transport (an HTTP/2 stream says True)

    __slots__ = (
        "closed",
        "exchange",
        "idle_since",
        "keep_alive",
        "on_closed",
        "parser",
        "pool",
        "reading_paused",
        "transport",
        "tunnel",
    )

    def __init__(self, pool: EndpointPool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.parser = ResponseParser()
        self.exchange = None
        self.idle_since = 0.0
        self.closed = False
        self.keep_alive = True  # the last response allowed reuse
        self.on_closed = None  # told once when the connection ends (circuit breaker count)
        self.reading_paused = False  # paused for a slow client (see Exchange)
        self.tunnel = None  # after a 101: raw bytes go to this Tunnel, unparsed

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.pool.open_connections += 1

    def data_received(self, data: bytes) -> None:
        tunnel = self.tunnel
        if tunnel is not None:
            tunnel.from_upstream(data)
            return
        exchange = self.exchange
        if exchange is None:
            # Bytes on an idle connection mean the upstream broke framing; do not reuse it.
            self._drop_surplus(data)
            return
        exchange.gateway.now = time.monotonic()
        response = self.parser.known_response(data)
        if response is not None:
            # The common case: a whole response, its head known already (http1.parser's
            # table), framed by its length and keep-alive.
            self.keep_alive = True
            exchange.on_whole_response(self, response, data[len(data) - response.content_length :])
            exchange.downstream.flush()
            return
        try:
            events = self.parser.feed(data)
        except ProtocolError:
            self.close()
            exchange.on_upstream_protocol_error(self)
            return
        if self.parser.surplus:
            # The response ended before the read did: it is forwarded as it was framed
            # (nginx does the same), and the connection, out of step, is not reused.
            self._drop_surplus(None)
        downstream = exchange.downstream
        if (
            len(events) == 3
            and type(events[2]) is EndOfMessage
            and type(events[1]) is Data
            and type(events[0]) is Response
        ):
            # A whole response with its body in one read: [Response, Data, EndOfMessage].
            response = events[0]
            self.keep_alive = response.keep_alive
            exchange.on_whole_response(self, response, events[1].data)
            downstream.flush()
            return
        for event in events:
            kind = type(event)
            if kind is Data:
                exchange.on_response_data(self, event.data)
            elif kind is Response:
                self.keep_alive = event.keep_alive
                exchange.on_response_head(self, event)
                # A response filter that waits hands the connection to a holder
                # (held_response.py): what follows in this read goes to it.
                exchange = self.exchange or exchange
                if self.tunnel is not None:
                    # A 101 began a tunnel: what followed its head is already the new protocol.
                    rest = self.parser.tunnel_bytes
                    if rest:
                        self.tunnel.from_upstream(rest)
                    return
            elif kind is Trailers:
                exchange.on_response_trailers(self, trailer_fields(event.headers))
            elif kind is InterimResponse:
                exchange.on_interim_response(self, event)
            else:  # the parser's only other event: EndOfMessage
                exchange.on_response_end(self)
        # A response head held back for coalescing goes out now if no body came with it.
        downstream.flush()

    def _drop_surplus(self, data: bytes | None) -> None:
        """Bytes came after the end of a response (in the read that ended it, or later on
        the idle connection): closed, never pooled, and said unless it is a response (a
        408 that servers send before closing an idle connection)."""
        self.close()
        if data is None or not data.startswith(b"HTTP/"):
            log.warning(
                "endpoint %s of upstream %s sent bytes after the end of its response (a body "
                "longer than its Content-Length, a body to HEAD or a response not asked for); "
                "they were dropped and the connection closed",
                self.pool.address,
                self.pool.upstream,
            )

    def eof_received(self) -> bool:
        exchange = self.exchange
        if exchange is not None and self.tunnel is None:
            # A body with neither length nor chunked coding ends here, complete (RFC 9112
            # 6.3): the exchange ends it as it would at an EndOfMessage.
            exchange.on_upstream_eof(self)
        return False  # close our side too

    def connection_lost(self, exc) -> None:
        if not self.closed:
            self.closed = True
        if isinstance(exc, ssl.SSLError):
            # A TLS alert after our side of the handshake, as a TLS 1.3 server refusing
            # our client certificate sends: otherwise a 502 with nothing in the log.
            tls = self.pool.tls
            log.warning(
                "endpoint %s of upstream %s: %s",
                self.pool.address,
                tls.upstream if tls is not None else "?",
                describe_handshake_error(exc),
            )
        elif isinstance(exc, ConnectionResetError) and self.idle_since == 0.0:
            self._log_reset_before_first_response()
        self.pool.open_connections -= 1
        self.pool.forget(self)
        if self.on_closed is not None:
            on_closed, self.on_closed = self.on_closed, None
            on_closed()
        exchange = self.exchange
        if exchange is not None:
            self.exchange = None
            exchange.on_upstream_lost(self)

    def _log_reset_before_first_response(self) -> None:
        # A TLS 1.3 server that refuses our client certificate sends its alert after our
        # handshake is done; if our request is still unread there, the kernel turns its
        # close into a reset and the alert is lost. Say what the likely cause is.
        tls = self.pool.tls
        if tls is None:
            return
        hint = ""
        if not tls.config.client_cert:
            hint = "; if it requires client certificates, set its tls.client_cert"
        log.warning(
            "endpoint %s of upstream %s reset the TLS connection before its first response%s",
            self.pool.address,
            tls.upstream,
            hint,
        )

    def pause_writing(self) -> None:
        if self.exchange is not None:
            self.exchange.on_upstream_write_paused()

    def resume_writing(self) -> None:
        if self.exchange is not None:
            self.exchange.on_upstream_write_resumed()

    def pause_reading(self) -> None:
        """The client is slow: stop reading the upstream until it catches up."""
        if not self.reading_paused and self.transport is not None and not self.closed:
            self.reading_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.reading_paused and self.transport is not None and not self.closed:
            self.reading_paused = False
            self.transport.resume_reading()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if self.transport is not None:
                self.transport.close()


class EndpointPool:
    """Idle keep-alive connections to one endpoint."""

    multiplexed = False  # http2.upstream_pool.H2EndpointPool hands out HTTP/2 streams

    __slots__ = (
        "address",
        "host",
        "idle",
        "idle_timeout",
        "max_idle",
        "open_connections",
        "port",
        "retired",
        "tls",
        "upstream",
    )

    def __init__(
        self,
        host: str,
        port: int,
        max_idle: int,
        idle_timeout: float,
        tls: EndpointTls | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.upstream = "?"  # the name of its upstream, for the log (set by upstream.py)
        self.address = f"{host}:{port}"
        self.max_idle = max_idle
        self.idle_timeout = idle_timeout
        self.idle: list[UpstreamConnection] = []
        self.open_connections = 0
        self.retired = False  # set when the endpoint leaves the config
        self.tls = tls  # None: plain TCP

    def take(self, now: float) -> UpstreamConnection | None:
        idle = self.idle
        while idle:
            connection = idle.pop()
            if not connection.closed and now - connection.idle_since < self.idle_timeout:
                return connection
            connection.close()
        return None

    def put(self, connection: UpstreamConnection, now: float) -> None:
        if connection.closed:
            return
        connection.exchange = None
        # A response can end in the same read that made its client slow down: the
        # connection must not go back to the pool with reading still paused, or the next
        # request on it would wait for an answer it can never read.
        if connection.reading_paused:
            connection.resume_reading()
        if self.retired or len(self.idle) >= self.max_idle:
            connection.close()
            return
        connection.idle_since = now
        self.idle.append(connection)

    def forget(self, connection: UpstreamConnection) -> None:
        with contextlib.suppress(ValueError):  # not idle: nothing to forget
            self.idle.remove(connection)

    def sweep(self, now: float) -> None:
        """Close connections idle for longer than the idle timeout."""
        expired = [c for c in self.idle if now - c.idle_since >= self.idle_timeout]
        for connection in expired:
            self.forget(connection)
            connection.close()

    def close_all(self) -> None:
        """The endpoint left the config: close what is idle, and what comes back later."""
        self.retired = True
        for connection in list(self.idle):
            connection.close()
        self.idle.clear()

    async def connect(self, timeout: float) -> UpstreamConnection:
        """A new connection; ``timeout`` covers the TLS handshake too. A failed handshake
        raises like a refused connection (the caller counts both alike) and is logged
        here, once, with its reason."""
        loop = asyncio.get_running_loop()
        tls = self.tls
        try:
            _, protocol = await asyncio.wait_for(
                loop.create_connection(
                    lambda: UpstreamConnection(self),
                    self.host,
                    self.port,
                    ssl=tls.context if tls is not None else None,
                    server_hostname=tls.server_name if tls is not None else None,
                ),
                timeout,
            )
        except ssl.SSLError as error:
            log.warning(
                "endpoint %s of upstream %s: %s",
                self.address,
                tls.upstream if tls is not None else "?",
                describe_handshake_error(error),
            )
            raise
        return protocol
