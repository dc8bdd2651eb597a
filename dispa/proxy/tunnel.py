"""A WebSocket tunnel: after a 101, the client and upstream connections relay raw bytes.

No framing is parsed: close codes, ping/pong and fragments pass through as they came.
Backpressure stays with the exchange's callbacks (a paused writer pauses the other side's
reading); this object only moves bytes, counts them, and closes both sides once.
"""

from __future__ import annotations

import time


class Tunnel:
    __slots__ = ("client", "closed", "exchange", "last_activity", "upstream")

    def __init__(self, exchange, client, upstream) -> None:
        self.exchange = exchange
        self.client = client  # the downstream Protocol (H1ServerConnection)
        self.upstream = upstream  # the UpstreamConnection, never pooled again
        self.closed = False
        self.last_activity = time.monotonic()

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
        self.client.transport.write(data)

    def close(self, reason: str = "", client_gone: bool = False) -> None:
        """One side ended (or idled out): close both. ``transport.close`` writes what is
        still buffered before it closes, so bytes already relayed are not lost."""
        if self.closed:
            return
        self.closed = True
        self.client.end_tunnel()
        self.upstream.close()
        self.exchange.tunnel_closed(reason, client_gone)
