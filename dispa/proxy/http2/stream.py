"""One HTTP/2 stream, seen by its exchange as the downstream.

The exchange calls the same methods it calls on an HTTP/1.1 connection; here they act on
one stream of a shared connection. Response bytes wait in the stream's own queue until
the peer's flow-control windows let them out, so a slow stream holds back only itself:
past a high-water mark its exchange stops reading the upstream. Request body bytes are
acknowledged (WINDOW_UPDATE) only once the exchange took them while not paused, so a slow
upstream throttles the client on that stream alone.
"""

from __future__ import annotations

import time
from collections import deque

from h2.errors import ErrorCodes

from dispa.proxy import local_reply as reasons
from dispa.proxy.http2.engine import H2ProtocolError
from dispa.proxy.http2.headers import response_headers
from dispa.proxy.http2.websocket import tunnel_response_headers
from dispa.proxy.local_reply import error_reply

_PAUSE_REASONS = {"pending": 1, "upstream": 2, "deferred": 4, "body_filter": 8}
# Queued response bytes past which the stream's upstream stops being read, and below
# which it is read again: the defaults of limits.http2.stream_output_buffer (and a quarter
# of it), which the connection applies, with its own mark for all its streams together.
OUTPUT_HIGH_WATER = 256 * 1024
OUTPUT_LOW_WATER = 64 * 1024


class H2Stream:
    __slots__ = (
        "body_unwanted",
        "connection",
        "counted",
        "deferred",
        "end_queued",
        "ended",
        "exchange",
        "head",
        "head_only",
        "head_sent",
        "held",
        "last_read",
        "output",
        "output_bytes",
        "pace_credit",
        "paused_at",
        "paused_for",
        "received",
        "request",
        "request_ended",
        "reset",
        "stream_id",
        "trailers",
        "tunnel",
        "unacknowledged",
        "upstream_paused",
        "websocket_key",
    )

    def __init__(self, connection, stream_id: int, request=None) -> None:
        self.connection = connection
        self.stream_id = stream_id
        self.request = request
        self.exchange = None
        self.request_ended = False  # the client's END_STREAM arrived
        self.body_unwanted = False  # answered already: the rest of the body is dropped
        self.received = 0  # request body bytes, for max_body_bytes
        self.unacknowledged = 0  # flow-controlled bytes received, not yet given back
        self.paused_for = 0  # bits of _PAUSE_REASONS: hold back WINDOW_UPDATEs
        self.paused_at = 0.0
        self.pace_credit = 0.0  # seconds the body spent held back by the gateway
        self.last_read = 0.0
        self.head = None  # the response header block, held until body bytes or flush
        self.head_only = False
        self.head_sent = False
        self.output: deque = deque()  # response body pieces the windows did not let out
        self.output_bytes = 0
        self.counted = 0  # of output_bytes, what the connection's count holds (see _after_push)
        self.end_queued = False  # the response is complete once the output is out
        self.trailers = None  # response trailers: the last HEADERS frame, with END_STREAM
        self.ended = False  # END_STREAM sent
        self.reset = False  # RST_STREAM sent or received: nothing more goes out
        self.upstream_paused = False  # told the exchange to stop reading its upstream
        # A request not started yet, because its connection's queue is full: what the
        # client sent meanwhile (body pieces, then its trailers as a list), in order.
        self.deferred: list | None = None
        # WebSocket over HTTP/2 (RFC 8441): the key of the upstream's handshake, then the
        # Tunnel once the upstream accepted it; the client's bytes sent before that wait.
        self.websocket_key: bytes | None = None
        self.tunnel = None
        self.held: list[bytes] = []

    # ---------------------------------------------------------------- the exchange calls these

    def send_response(
        self,
        status: int,
        reason: bytes,
        headers,
        content_length,
        no_body: bool,
        request_id: bytes | None = None,
    ) -> None:
        if self.websocket_key is not None and status < 300:
            self._refuse_websocket(request_id)
            return
        self.head_only = no_body
        self.head = response_headers(status, headers, content_length, request_id)

    def send_interim(self, status: int, reason: bytes, headers) -> None:
        """An interim (1xx) head: a HEADERS frame without END_STREAM (RFC 9113 8.1), out at
        once, before the final head. Dropped while the connection's socket is full (it
        is informational, not worth buffering), and on a WebSocket's CONNECT stream."""
        connection = self.connection
        if (
            self.reset
            or self.head_sent
            or self.head is not None
            or self.websocket_key is not None
            or connection.write_paused
            or connection.closing
        ):
            return
        try:
            block = response_headers(status, headers, None, None)
            connection.h2.send_headers(self.stream_id, block)
        except H2ProtocolError:
            return  # closed by the peer in frames not yet seen as events
        connection.transmit(self)

    def send_body(self, data: bytes) -> None:
        # Only queued: the flush after each upstream read (or send_end) sends it, so one
        # read becomes one write, and the last DATA frame carries END_STREAM.
        if self.head_only or not data or self.reset:
            return
        self.output.append(data)
        self.output_bytes += len(data)

    def send_whole(
        self, status, reason, headers, content_length, no_body, body, request_id
    ) -> None:
        """A whole response: its head, its body, its end."""
        self.send_response(status, reason, headers, content_length, no_body, request_id)
        self.send_body(body)
        self.send_end()

    def send_trailers(self, headers) -> None:
        if headers and not self.head_only and not self.reset:
            self.trailers = headers

    def send_end(self) -> None:
        self.end_queued = True
        self.connection.transmit(self)

    def flush(self) -> None:
        if self.head is not None or self.output:
            self.connection.transmit(self)

    def send_local_reply(self, answer, head_only: bool) -> None:
        if self.reset or self.ended:
            return
        if self.head_sent:
            # Too late for another head: cut the stream rather than leave the client waiting.
            self.connection.reset_stream(self, ErrorCodes.INTERNAL_ERROR)
            return
        exchange = self.exchange
        request_id = exchange.ctx.request_id.encode("latin-1") if exchange is not None else None
        # gRPC's trailers-only reply carries no content-length: it is one HEADERS frame.
        content_length = None if answer.trailers_only else len(answer.body)
        self.head = response_headers(
            answer.status, list(answer.headers), content_length, request_id, proxied=False
        )
        self.head_only = head_only
        self.output.clear()
        self.output_bytes = 0
        if not head_only and answer.body:
            self.output.append(answer.body)
            self.output_bytes = len(answer.body)
        self.end_queued = True
        self.connection.transmit(self)

    def pause_reading(self, reason: str) -> None:
        if not self.paused_for:
            self.paused_at = time.monotonic()
        self.paused_for |= _PAUSE_REASONS[reason]

    def resume_reading(self, reason: str) -> None:
        bit = _PAUSE_REASONS[reason]
        if self.paused_for & bit:
            self.paused_for &= ~bit
            if not self.paused_for:
                # Time the gateway held the body back is not the client's slowness.
                self.pace_credit += time.monotonic() - self.paused_at
                self.connection.acknowledge(self)

    def close_after_exchange(self) -> None:
        """The answer went out before the request body ended: the exchange need not wait
        for it. The stream is reset with NO_ERROR once the answer is out (RFC 9113 8.1)."""
        self.body_unwanted = True
        exchange = self.exchange
        if exchange is not None and exchange.response_done and not exchange.request_done:
            exchange.on_request_end()  # ends the exchange; later body bytes are dropped

    def abort(self) -> None:
        self.connection.reset_stream(self, ErrorCodes.INTERNAL_ERROR)
        # As a closed HTTP/1.1 connection reports itself lost, soon after: an exchange
        # that is not finishing on its own still ends (counted as the client's loss).
        self.connection.loop.call_soon(self.lost)

    def exchange_finished(self, exchange, client_gone: bool) -> None:
        if exchange is not self.exchange:
            return
        self.exchange = None
        self.paused_for = 0
        self.connection.stream_settled(self)

    # ---------------------------------------------------------------- WebSocket (RFC 8441)

    def start_tunnel(self, tunnel, head: bytes) -> None:
        """The upstream accepted the WebSocket handshake: the extended CONNECT is answered
        200 (RFC 8441 5), then bytes flow as DATA frames; the client's early bytes go first."""
        self.tunnel = tunnel
        headers = tunnel_response_headers(head, self.websocket_key)
        if headers is None:
            tunnel.exchange.ctx.status = 502
            self.send_local_reply(error_reply(502, reasons.UPSTREAM_PROTOCOL), head_only=False)
            tunnel.close(reasons.UPSTREAM_PROTOCOL)
            return
        self.head = response_headers(200, headers, None, None, proxied=False)
        self.connection.transmit(self)
        held, self.held = self.held, []
        for data in held:
            tunnel.from_client(data)
        if self.request_ended:
            tunnel.end_from_client()
        self.resume_reading("pending")

    def _refuse_websocket(self, request_id: bytes | None) -> None:
        """The upstream answered the handshake 2xx but not 101: it opened no WebSocket, and
        to an HTTP/2 client a 2xx would say it did (RFC 8441 5). The client gets a 502;
        the upstream's body is dropped. (Its status stays in the log and health counts:
        a route to a plain endpoint is no fault of the endpoint.)"""
        answer = error_reply(502, reasons.UPSTREAM_PROTOCOL)
        self.exchange.ctx.reason = reasons.UPSTREAM_PROTOCOL
        self.head = response_headers(
            502, list(answer.headers), len(answer.body), request_id, proxied=False
        )
        self.output.append(answer.body)
        self.output_bytes += len(answer.body)
        self.head_only = True  # send_body drops what the upstream sends

    def from_client(self, data: bytes) -> None:
        """WebSocket bytes from the client: to the tunnel, or held (and not acknowledged,
        so the stream's window bounds them) until the upstream has answered."""
        tunnel = self.tunnel
        if tunnel is not None:
            tunnel.from_client(data)
        elif self.exchange is not None:
            self.held.append(data)
            self.pause_reading("pending")

    def client_ended(self) -> None:
        """END_STREAM: the client sends no more (a TCP FIN, RFC 9113 8.5); the upstream is
        told so, and what it still sends (its Close frame) comes through."""
        if self.tunnel is not None:
            self.tunnel.end_from_client()

    def send_tunnel_bytes(self, data: bytes) -> None:
        if self.reset or self.end_queued:
            return
        self.output.append(data)
        self.output_bytes += len(data)
        self.connection.transmit(self)

    def end_tunnel(self) -> None:
        """The tunnel closed. An upstream that hung up with no WebSocket Close frame sent
        either way died mid-session: the stream is reset (CONNECT_ERROR). Otherwise it
        ends once what is queued is out."""
        if self.reset or self.end_queued:
            return
        if self.tunnel.close_reason == reasons.UPSTREAM_RESET:
            self.connection.reset_stream(self, ErrorCodes.CONNECT_ERROR)
            return
        self.end_queued = True
        self.connection.transmit(self)

    # ---------------------------------------------------------------- the connection calls these

    def lost(self) -> None:
        """The stream is gone (reset, or the connection closed): end its exchange."""
        exchange = self.exchange
        if exchange is not None:
            self.exchange = None
            exchange.on_downstream_lost()
        self.connection.stream_settled(self)

    def push(self, h2, budget: int) -> bool:
        """Move queued output into frames as far as the windows and ``budget`` allow.

        True if anything moved. A stream the peer has closed drops its output."""
        if self.reset or self.ended:
            return False
        stream_id = self.stream_id
        moved = False
        try:
            if self.head is not None:
                end = self.end_queued and not self.output and not self.trailers
                h2.send_headers(stream_id, self.head, end_stream=end)
                self.head = None
                self.head_sent = True
                moved = True
                if end:
                    self.ended = True
                    return True
            output = self.output
            while output and budget > 0:
                window = h2.local_flow_control_window(stream_id)
                if window <= 0:
                    break
                size = min(window, h2.max_outbound_frame_size, budget)
                piece = output[0]
                if len(piece) > size:
                    view = piece if type(piece) is memoryview else memoryview(piece)
                    output[0] = view[size:]
                    piece = view[:size]
                else:
                    output.popleft()
                self.output_bytes -= len(piece)
                budget -= len(piece)
                end = self.end_queued and not output and not self.trailers
                h2.send_data(stream_id, piece, end_stream=end)
                moved = True
                if end:
                    self.ended = True
            if self.end_queued and not output and not self.ended:
                if self.trailers:
                    h2.send_headers(stream_id, self.trailers, end_stream=True)
                else:
                    h2.end_stream(stream_id)
                self.ended = True
                moved = True
        except H2ProtocolError:
            # Closed by the peer in frames the engine has read but we have not yet seen as
            # events.
            self.reset = True
            self.output.clear()
            self.output_bytes = 0
        return moved

    @property
    def done(self) -> bool:
        """Nothing more will go out and no exchange depends on the stream."""
        return self.exchange is None and (self.ended or self.reset)
