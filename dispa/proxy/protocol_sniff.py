"""Which protocol a client speaks, decided per connection, like Envoy's automatic codec.

Over TLS, ALPN has already said it ("h2", else HTTP/1.1). In plaintext, an HTTP/2 client
with prior knowledge (h2c) opens with a fixed 24-byte preface that no HTTP/1.1 request
can begin with; the first bytes decide, and the connection goes, with the bytes already
read, to ``H1ServerConnection`` or ``H2ServerConnection``.

A connection whose first bytes claim HTTP/2 but do not go on as the exact preface is
answered as the protocol it claims (RFC 9113 3.4): it goes to HTTP/2 all the same, whose
engine answers GOAWAY(PROTOCOL_ERROR) and closes, not to HTTP/1.1 for a 400.
"""

from __future__ import annotations

import asyncio

from dispa.proxy.exchange import NO_DEADLINE
from dispa.proxy.http1.server import H1ServerConnection
from dispa.proxy.tls_alpn import warn_if_alpn_refused

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
# From these bytes on, a connection claims HTTP/2 (Envoy's automatic codec takes the same
# 12 bytes, its CLIENT_MAGIC_PREFIX): method PRI, target "*" and a major version 2, which
# no HTTP/1.1 request can carry (Dispa's HTTP/1.1 side answers an HTTP/2.0 request line
# 505, RFC 9112 2.3). Bytes that leave the preface sooner ("PRI * HTTP/1.1", "PRI /x") may
# be an HTTP/1.1 request with the unknown method PRI, and stay HTTP/1.1's to answer.
HTTP2_CLAIM = PREFACE[:12]  # b"PRI * HTTP/2"


def sniff(first_bytes: bytes) -> type | None:
    """The protocol class for a connection's first bytes; None until they can tell."""
    size = min(len(first_bytes), len(PREFACE))
    if first_bytes[:size] == PREFACE[:size]:
        # Still a prefix of the preface: undecided (and under the header timeout) until
        # all 24 bytes are in.
        return h2_connection_class() if size == len(PREFACE) else None
    if first_bytes[: len(HTTP2_CLAIM)] == HTTP2_CLAIM:
        return h2_connection_class()  # a mangled preface: HTTP/2's engine refuses it
    return H1ServerConnection


def h2_connection_class() -> type:
    """Imported on first use: a gateway no HTTP/2 client talks to never loads h2 (memory)."""
    from dispa.proxy.http2.server import H2ServerConnection

    return H2ServerConnection


class ProtocolSniffer(asyncio.Protocol):
    """A connection's first protocol, until it knows which one to hand over to."""

    __slots__ = ("buffered", "closing", "deadline", "gateway", "listener", "transport")

    exchange = None  # the gateway's ticker reads it: never one here

    def __init__(self, gateway, listener) -> None:
        self.gateway = gateway
        self.listener = listener
        self.transport = None
        self.buffered = b""
        self.closing = False
        self.deadline = NO_DEADLINE

    def connection_made(self, transport) -> None:
        self.transport = transport
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None:
            chosen = ssl_object.selected_alpn_protocol()
            if chosen is None:  # no ALPN offered, or an offer refused: that one is logged
                warn_if_alpn_refused(ssl_object, transport, self.listener)
            self._hand_over(h2_connection_class() if chosen == "h2" else H1ServerConnection)
            return
        # Listed with the connections while undecided, so a silent client times out and a
        # drain closes it.
        self.gateway.connections.add(self)
        self.deadline = self.gateway.now + self.listener.limits.header_timeout

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        buffered = self.buffered + data if self.buffered else data
        protocol_class = sniff(buffered)
        if protocol_class is None:
            self.buffered = buffered  # a prefix of the preface, split across reads
            return
        self.buffered = b""
        self._hand_over(protocol_class, buffered)

    def _hand_over(self, protocol_class: type, data: bytes = b"") -> None:
        self.gateway.connections.discard(self)
        self.deadline = NO_DEADLINE
        protocol = protocol_class(self.gateway, self.listener)
        transport = self.transport
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        if data and not transport.is_closing():
            protocol.data_received(data)

    def eof_received(self) -> bool:
        self._close()  # the client left before saying anything we could answer
        return False

    def connection_lost(self, exc) -> None:
        self.closing = True
        self.gateway.connections.discard(self)

    def check_deadlines(self, now: float) -> None:
        if self.deadline <= now:
            self._close()

    def close_if_idle(self) -> None:
        self._close()

    def abort(self) -> None:
        self.closing = True
        if self.transport is not None:
            self.transport.abort()

    def _close(self) -> None:
        if not self.closing:
            self.closing = True
            self.deadline = NO_DEADLINE
            if self.transport is not None:
                self.transport.close()
