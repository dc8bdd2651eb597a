"""A WebSocket tunnel: after a 101, the client and upstream connections relay raw bytes.

No framing is parsed: close codes, ping/pong and fragments pass through as they came.
Backpressure stays with the exchange's callbacks (a paused writer pauses the other side's
reading); this object only moves bytes, counts them, and closes both sides once.

The client side is an HTTP/1.1 connection, whose socket takes the bytes as they are, or
an HTTP/2 stream (RFC 8441), which frames them as DATA within its flow-control windows.
"""

from __future__ import annotations

import time


class Tunnel:
    __slots__ = (
        "client",
        "close_reason",
        "closed",
        "exchange",
        "last_activity",
        "send_to_client",
        "upstream",
    )

    def __init__(self, exchange, client, upstream) -> None:
        self.exchange = exchange
        self.client = client  # the downstream: H1ServerConnection or H2Stream
        self.upstream = upstream  # the UpstreamConnection, never pooled again
        self.closed = False
        self.close_reason = ""
        self.last_activity = time.monotonic()
        send = getattr(client, "send_tunnel_bytes", None)
        self.send_to_client = send if send is not None else client.transport.write

    def from_client(self, data: bytes) -> None:
        if self.closed:
            return
        self.last_activity = time.monotonic()
        self.exchange.ctx.bytes_in += len(data)
        self.upstream.transport.write(data)

    def from_upstream(self, data: bytes) -> None:
        if self.closed:
            return
        self.last_activity = time.monotonic()
        self.exchange.ctx.bytes_out += len(data)
        self.send_to_client(data)

    def end_from_client(self) -> None:
        """The client half-closed (HTTP/2 END_STREAM): half-close the upstream too, and
        keep relaying what it still sends until it closes."""
        if self.closed:
            return
        transport = self.upstream.transport
        if transport.can_write_eof():
            transport.write_eof()
        else:
            self.close("client_closed")

    def close(self, reason: str = "", client_gone: bool = False) -> None:
        """One side ended (or idled out): close both. ``transport.close`` writes what is
        still buffered before it closes, so bytes already relayed are not lost."""
        if self.closed:
            return
        self.closed = True
        self.close_reason = reason
        self.client.end_tunnel()
        self.upstream.close()
        self.exchange.tunnel_closed(reason, client_gone)
