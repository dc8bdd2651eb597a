"""The HTTP/2 connections to one endpoint, seen by the exchange as its connection pool.

It answers the same calls as the HTTP/1.1 ``EndpointPool``, but what it hands out is a
stream: ``take`` opens one on a connection with room under the upstream's
SETTINGS_MAX_CONCURRENT_STREAMS, ``connect`` opens a new connection when none has room
(requests that arrive while it connects wait for it rather than each opening their own),
and ``put`` gives the stream back. Connections without streams close after the idle
timeout; a retired pool (the endpoint left the config) lets streams in flight finish,
then closes with GOAWAY. With ``tls`` the connection is h2 over TLS, agreed by ALPN;
without, prior-knowledge h2c.
"""

from __future__ import annotations

import asyncio
import logging
import ssl

from dispa.proxy.http2.handshake import H2HandshakeTimeout
from dispa.proxy.http2.upstream import H2UpstreamConnection, H2UpstreamStream
from dispa.proxy.upstream.tls import EndpointTls, describe_handshake_error

log = logging.getLogger("dispa.upstream")


class H2EndpointPool:
    multiplexed = True

    __slots__ = (
        "_connecting",
        "_room_waiters",
        "address",
        "connections",
        "host",
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
        self.address = f"{host}:{port}"
        self.max_idle = max_idle  # unused: a connection is kept while it has streams or is young
        self.idle_timeout = idle_timeout
        self.connections: list[H2UpstreamConnection] = []  # accepting new streams
        self.open_connections = 0
        self.retired = False
        self.tls = tls  # None: h2c on plain TCP
        self.upstream = "?"  # the name of its upstream, for the log (set by upstream.py)
        self._connecting: asyncio.Task | None = None
        # Requests in connect() waiting for a stream slot: told when one frees up.
        self._room_waiters: list[asyncio.Future] = []

    @property
    def idle(self) -> list[H2UpstreamConnection]:
        """Connections without a stream (the admin API counts them as idle)."""
        return [c for c in self.connections if c.active == 0]

    def take(self, now: float) -> H2UpstreamStream | None:
        connection = self._with_room()
        return connection.new_stream() if connection is not None else None

    def _with_room(self) -> H2UpstreamConnection | None:
        # The oldest connection with room first: streams pack onto few connections.
        for connection in self.connections:
            if connection.has_room():
                return connection
        return None

    def put(self, stream: H2UpstreamStream, now: float) -> None:
        if not stream.multiplexed:
            stream.close()  # an HTTP/1.1 connection from before the protocol changed
            return
        stream.release()

    def forget(self, connection: H2UpstreamConnection) -> None:
        if connection in self.connections:
            self.connections.remove(connection)

    def sweep(self, now: float) -> None:
        """Close connections without streams for longer than the idle timeout."""
        for connection in list(self.connections):
            if connection.active == 0 and now - connection.idle_since >= self.idle_timeout:
                self.forget(connection)
                connection.close()

    def close_all(self) -> None:
        """The endpoint left the config: streams in flight finish, then each connection
        closes with GOAWAY."""
        self.retired = True
        for connection in list(self.connections):
            connection.drain()

    async def connect(self, timeout: float) -> H2UpstreamStream:
        """A stream on a new connection, or on an open one where a stream ended meanwhile.
        A crowd of requests larger than one connection takes opens connections one after
        another. ``timeout`` bounds each connection attempt, not the wait for a stream
        slot: that wait is queueing, bounded by the request's response deadline (the
        exchange cancels this call when it passes), as with Envoy's pending requests. A
        busy endpoint's streams freeing up slowly is not a connect failure."""
        loop = asyncio.get_running_loop()
        waited = None  # the connect this request waited for last
        while True:
            connection = self._with_room()
            if connection is not None:
                return connection.new_stream()
            connecting = self._connecting
            if connecting is not None and connecting.done():
                # A failed connect fails every request that waited for it; a request
                # that comes later tries a connect of its own.
                if connecting is waited:
                    if connecting.exception() is not None:
                        raise connecting.exception()
                    opened = connecting.result()
                    if opened.h2.remote_settings.max_concurrent_streams == 0:
                        raise ConnectionError(f"{self.address} takes no HTTP/2 stream")
                    if opened.closing:
                        # Lost (or dropped by us) as it opened: a failed connect, not a
                        # reason to open another one at once, and another, without end.
                        raise ConnectionError(f"{self.address} closed the connection at once")
                connecting = None  # done: its connection, if it has room, was found above
            if connecting is None:
                connecting = loop.create_task(self._open(timeout))
                connecting.add_done_callback(_retrieve_exception)
                self._connecting = connecting
            waited = connecting
            # Whichever comes first: the new connection, or a stream ending on an open
            # one (a slow connect must not hold back a waiter that could go now).
            # asyncio.wait never cancels the connect, which other waiters share.
            freed = loop.create_future()
            self._room_waiters.append(freed)
            try:
                await asyncio.wait((connecting, freed), return_when=asyncio.FIRST_COMPLETED)
            finally:
                if not freed.done():
                    freed.cancel()
                    self._room_waiters.remove(freed)

    def room_freed(self) -> None:
        """A stream ended on a connection that takes new ones: wake the waiters."""
        waiters, self._room_waiters = self._room_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def _open(self, timeout: float) -> H2UpstreamConnection:
        """A new connection, once the endpoint's SETTINGS came. ``timeout`` bounds TCP and
        TLS, then, counted anew, the wait for the SETTINGS (H2HandshakeTimeout)."""
        loop = asyncio.get_running_loop()
        tls = self.tls
        connection = None
        try:
            async with asyncio.timeout(timeout):
                _, connection = await loop.create_connection(
                    lambda: H2UpstreamConnection(self),
                    self.host,
                    self.port,
                    ssl=tls.context if tls is not None else None,
                    server_hostname=tls.server_name if tls is not None else None,
                )
                if tls is not None:
                    _check_alpn(connection, self.address)
            # Its SETTINGS say how many streams it takes; a peer that closes instead (one
            # that does not speak HTTP/2) fails here as a connect failure, and one that
            # says nothing at all with its own reason.
            await _settings_within(connection, timeout, self.address)
        except ssl.SSLError as error:
            upstream = tls.upstream if tls is not None else "?"
            log.warning(
                "endpoint %s of upstream %s: %s",
                self.address,
                upstream,
                describe_handshake_error(error),
            )
            raise
        except BaseException:
            if connection is not None:
                connection.close()
            raise
        if self.retired:
            connection.drain()
        else:
            self.connections.append(connection)
        return connection


def _check_alpn(connection: H2UpstreamConnection, address: str) -> None:
    """Over TLS, HTTP/2 only if the endpoint chose it by ALPN (RFC 9113 3.2)."""
    ssl_object = connection.transport.get_extra_info("ssl_object")
    chosen = ssl_object.selected_alpn_protocol() if ssl_object is not None else None
    if chosen != "h2":
        connection.close()
        log.warning("endpoint %s did not agree to HTTP/2 by ALPN (chose %s)", address, chosen)
        raise ConnectionError(f"{address} did not agree to h2 by ALPN")


async def _settings_within(connection: H2UpstreamConnection, timeout: float, address: str) -> None:
    try:
        async with asyncio.timeout(timeout):
            await connection.settings_received
    except TimeoutError:
        # One line per attempt, and attempts to an endpoint are one at a time (connect()
        # shares them): a hung endpoint cannot flood the log.
        log.warning(
            "endpoint %s accepted the connection but sent no HTTP/2 SETTINGS within %gs "
            "(is it an HTTP/2 server?)",
            address,
            timeout,
        )
        raise H2HandshakeTimeout(f"{address} sent no HTTP/2 SETTINGS within {timeout:g}s") from None


def _retrieve_exception(task: asyncio.Task) -> None:
    # Every waiter may have been cancelled: the failure is theirs, not worth a warning.
    if not task.cancelled():
        task.exception()
