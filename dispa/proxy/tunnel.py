"""A WebSocket tunnel: after a 101, the client and upstream connections relay raw bytes.

No framing is parsed: close codes, ping/pong and fragments pass through as they came.
Backpressure stays with the exchange's callbacks (a paused writer pauses the other side's
reading); this object only moves bytes, counts them, and closes both sides once.

The client side is an HTTP/1.1 connection, whose socket takes the bytes as they are, or
an HTTP/2 stream (RFC 8441), which frames them as DATA within its flow-control windows.

Until one side sends a Close frame, the frame headers each way are followed (not the
payloads), so the access log can say who closed the tunnel (websocket_close.py).
"""

from __future__ import annotations

import time

from dispa.proxy import local_reply as reasons
from dispa.proxy.websocket_close import CLIENT, UPSTREAM, CloseFrameWatcher, end_reason


class Tunnel:
    __slots__ = (
        "client",
        "client_frames",
        "close_reason",
        "closed",
        "exchange",
        "first_close",
        "first_end",
        "last_activity",
        "send_to_client",
        "upstream",
        "upstream_frames",
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
        self.client_frames = CloseFrameWatcher()
        self.upstream_frames = CloseFrameWatcher()
        self.first_close: str | None = None  # the side that sent the first Close frame
        self.first_end: str | None = None  # the side that half-closed first

    def from_client(self, data: bytes) -> None:
        if self.closed:
            return
        self.last_activity = time.monotonic()
        self.exchange.ctx.bytes_in += len(data)
        if self.first_close is None:
            watcher = self.client_frames
            watcher.feed(data)
            if watcher.saw_close:
                self.first_close = CLIENT
        self.upstream.transport.write(data)

    def from_upstream(self, data: bytes) -> None:
        if self.closed:
            return
        self.last_activity = time.monotonic()
        self.exchange.ctx.bytes_out += len(data)
        if self.first_close is None:
            watcher = self.upstream_frames
            watcher.feed(data)
            if watcher.saw_close:
                self.first_close = UPSTREAM
        self.send_to_client(data)

    def end_from_client(self) -> None:
        """The client half-closed (HTTP/2 END_STREAM): half-close the upstream too, and
        keep relaying what it still sends until it closes."""
        if self.closed:
            return
        if self.first_end is None:
            self.first_end = CLIENT
        transport = self.upstream.transport
        if transport.can_write_eof():
            transport.write_eof()
        else:
            self.client_left()

    def client_left(self, client_gone: bool = False, gateway_stopping: bool = False) -> None:
        """The client's connection (or stream) ended: the reason says who closed the
        session; ``gateway_stopping`` when the gateway's drain cut it off."""
        if gateway_stopping and self.first_close is None:
            reason = reasons.SHUTTING_DOWN
        else:
            reason = end_reason(self.first_close, self.first_end or CLIENT)
        self.close(reason, client_gone)

    def upstream_left(self) -> None:
        """The upstream's connection ended."""
        self.close(end_reason(self.first_close, self.first_end or UPSTREAM))

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
