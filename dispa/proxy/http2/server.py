"""The client side of HTTP/2: one Protocol per connection, one exchange per stream.

The engine (http2/engine.py) is the state machine (bytes in, events out, frames to send);
this Protocol only moves bytes and dispatches: a stream's header block becomes the same
``Request`` the HTTP/1.1 parser builds, handed to an ``Exchange`` whose downstream is that
stream (``H2Stream``). Streams share the socket but not their backpressure: each has its
own output queue and its own flow-control windows. An extended CONNECT (RFC 8441)
becomes a WebSocket upgrade: its stream's DATA frames are the tunnel's bytes
(http2/websocket.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time

from h2.errors import ErrorCodes

from dispa.proxy import local_reply as reasons
from dispa.proxy.body_pace import paced_deadline
from dispa.proxy.client_connection import accept_connection, request_context
from dispa.proxy.exchange import NO_DEADLINE, Exchange
from dispa.proxy.grpc.status import grpc_local_reply, is_grpc
from dispa.proxy.http2.engine import (
    ConnectionTerminated,
    DataReceived,
    H2ProtocolError,
    H2ServerEngine,
    HeadersTooLarge,
    RemoteSettingsChanged,
    RequestReceived,
    StreamEnded,
    StreamReset,
    TrailersReceived,
    WindowUpdated,
)
from dispa.proxy.http2.headers import MalformedRequest, request_from_headers
from dispa.proxy.http2.hpack import LiteralEncoder
from dispa.proxy.http2.stream import H2Stream
from dispa.proxy.http2.websocket import websocket_key
from dispa.proxy.local_reply import error_reply
from dispa.proxy.request_target import path_rules_of

MAX_CONCURRENT_STREAMS = 100  # the default of limits.http2.max_concurrent_streams
# Per stream: what a client may send before the exchange has taken it (RFC default: 64 KiB).
STREAM_WINDOW = 256 * 1024
# Room for every stream's whole window at once: a stream whose upstream is slow keeps its
# bytes unacknowledged, and must not use up the window the other streams share.
CONNECTION_WINDOW = MAX_CONCURRENT_STREAMS * STREAM_WINDOW
_DEFAULT_WINDOW = 65535
_MAX_WINDOW = 2**31 - 1
# After a connection error, how long the client's bytes are still read (and dropped) so
# that closing does not reset the connection under our GOAWAY (nginx's lingering close).
LINGER = 5.0
# Response bytes one stream sends before the others waiting get their turn.
_QUANTUM = 64 * 1024
_UNBOUNDED = 1 << 62
_CONTINUE = [(b":status", b"100")]


class H2ServerConnection(asyncio.Protocol):
    __slots__ = (
        "buffered",
        "client_identity",
        "client_ip",
        "client_port",
        "closing",
        "connection_high_water",
        "deadline",
        "deferred",
        "flood_interval",
        "flood_interval_ends",
        "flush_scheduled",
        "gateway",
        "goaway_stream_id",
        "h2",
        "limits",
        "listener",
        "loop",
        "max_streams",
        "path_rules",
        "requests_served",
        "scheme",
        "stream_high_water",
        "stream_low_water",
        "streams",
        "timer_reason",
        "transport",
        "waiting",
        "write_paused",
    )

    def __init__(self, gateway, listener) -> None:
        self.gateway = gateway
        self.listener = listener
        self.limits = listener.limits
        self.path_rules = path_rules_of(listener.paths)  # how :path is normalised
        self.loop = gateway.loop
        self.transport = None
        self.client_ip = ""
        self.client_port = 0
        self.scheme = "http"
        self.client_identity = None  # a ClientIdentity once a client certificate is verified
        # The stream limit is advertised, not enforced by the engine: one stream too many
        # is refused alone (REFUSED_STREAM, see _on_request), which a client may retry.
        # Response headers are encoded with the static table and literals (http2/hpack.py).
        limits = self.limits.http2
        self.max_streams = limits.max_concurrent_streams
        self.h2 = H2ServerEngine(
            max_concurrent_streams=self.max_streams,
            initial_window=STREAM_WINDOW,
            max_header_list_size=self.limits.max_header_bytes,
            encoder=LiteralEncoder(),
            max_continuation_frames=limits.max_continuation_frames,
            max_reset_streams=limits.max_reset_streams,
            max_control_frames=limits.max_control_frames,
        )
        self.flood_interval = limits.flood_interval
        self.flood_interval_ends = 0.0  # the engine's flood counts restart past it
        # Response bytes queued on the streams (counted at each push, not per write): past
        # a stream's or the connection's high-water mark the stream's upstream is paused.
        self.buffered = 0
        self.stream_high_water = limits.stream_output_buffer
        self.stream_low_water = limits.stream_output_buffer // 4
        self.connection_high_water = limits.connection_output_buffer
        self.deferred: list[H2Stream] = []  # requests waiting for that queue to drain
        self.streams: dict[int, H2Stream] = {}
        self.waiting: dict[int, H2Stream] = {}  # streams with output the windows hold back
        self.write_paused = False
        self.flush_scheduled = False  # a write of what the engine queued is on its way
        self.closing = False
        self.goaway_stream_id: int | None = None  # set once GOAWAY is sent
        self.requests_served = 0
        self.deadline = NO_DEADLINE
        self.timer_reason = ""

    @property
    def exchange(self):
        """An exchange in progress, or None: the gateway's ticker visits connections that
        have one to check its deadlines."""
        for stream in self.streams.values():
            if stream.exchange is not None:
                return stream.exchange
        return None

    # ---------------------------------------------------------------- transport callbacks

    def connection_made(self, transport) -> None:
        accept_connection(self, transport)
        h2 = self.h2
        h2.initiate_connection()
        window = min(self.max_streams * STREAM_WINDOW, _MAX_WINDOW)
        h2.increment_flow_control_window(window - _DEFAULT_WINDOW)
        self._flush()  # our preface at once: the client's first window depends on it
        self._arm_timer(self.limits.idle_timeout, "idle")

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return  # lingering after an error: what the client still sends is dropped
        now = self.gateway.now = time.monotonic()
        h2 = self.h2
        if now >= self.flood_interval_ends:
            self.flood_interval_ends = now + self.flood_interval
            h2.new_interval()
        try:
            events = h2.receive_data(data)
        except H2ProtocolError:
            # The engine has queued GOAWAY with the error's code: _close sends it.
            self._close(linger=True)
            return
        window_opened = False
        # Consecutive DATA frames of one stream reach its exchange as one piece: one write
        # upstream instead of one per frame (16 KiB each, as most clients send them).
        data_stream = 0
        pieces: list[bytes] = []
        data_size = 0
        for event in events:
            kind = type(event)
            if kind is DataReceived:
                if event.stream_id != data_stream:
                    if data_stream:
                        self._on_data(data_stream, pieces, data_size)
                    data_stream, pieces, data_size = event.stream_id, [], 0
                pieces.append(event.data)
                data_size += event.flow_controlled_length
                continue
            if data_stream:
                self._on_data(data_stream, pieces, data_size)
                data_stream = 0
            if kind is RequestReceived:
                if not event.cancelled:  # reset in the same read: no exchange at all
                    self._on_request(event)
            elif kind is StreamEnded:
                self._on_request_end(event.stream_id)
            elif kind is HeadersTooLarge:
                if not event.cancelled:
                    self._reject(event.stream_id, event.stream_ended, 431, reasons.HEADER_TOO_LARGE)
            elif kind is TrailersReceived:
                self._on_request_trailers(event.stream_id, event.headers)
            elif kind is WindowUpdated:
                window_opened = True
            elif kind is StreamReset:
                self._on_reset(event.stream_id)
            elif kind is RemoteSettingsChanged:
                window_opened = True
            elif kind is ConnectionTerminated:
                # The client's GOAWAY. NO_ERROR: it is done opening streams, the ones in
                # flight finish (RFC 9113 6.8), as on our drain. An error: close now.
                if event.error_code:
                    self._close()
                    return
                self._send_goaway()
        if data_stream:
            self._on_data(data_stream, pieces, data_size)
        if window_opened:
            self._push_waiting()
        if h2.header_block_stream:
            # A header block waits for its CONTINUATION frames: as long as an HTTP/1.1
            # head may take, not as long as an idle connection may stay.
            if self.timer_reason != "header":
                self._arm_timer(self.limits.header_timeout, "header")
        elif self.timer_reason == "header":
            self._idle_or_busy()
        self._write_out()

    def eof_received(self) -> bool:
        self._close()
        return False

    def connection_lost(self, exc) -> None:
        self.closing = True
        self._cancel_timer()
        gateway = self.gateway
        gateway.connections.discard(self)
        gateway.stats.connections_active -= 1
        streams = list(self.streams.values())
        self.streams.clear()
        self.waiting.clear()
        self.deferred.clear()
        for stream in streams:
            stream.reset = True
            stream.lost()

    def pause_writing(self) -> None:
        """The client does not read what we send: read nothing more from it either, so
        that what it asks for (SETTINGS and PING answers, resets, responses) cannot pile
        up here (Envoy's read-disable at the write buffer's high-water mark)."""
        self.write_paused = True
        if not self.closing and self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.closing:
            return
        if self.transport is not None:
            self.transport.resume_reading()
        self._push_waiting()
        self._write_out()

    # ---------------------------------------------------------------- frames in

    def _on_request(self, event) -> None:
        stream_id = event.stream_id
        gateway = self.gateway
        end_stream = event.stream_ended
        after_goaway = self.goaway_stream_id is not None and stream_id > self.goaway_stream_id
        if after_goaway or len(self.streams) >= self.max_streams or self.closing:
            self._refuse(stream_id)
            return
        self._cancel_timer()
        self.requests_served += 1
        try:
            request = request_from_headers(
                stream_id, event.headers, end_stream, self.limits.max_body_bytes, self.path_rules
            )
        except MalformedRequest as error:
            self._reject(stream_id, end_stream, error.status, error.reason, event.headers)
            return
        stream = self.streams[stream_id] = H2Stream(self, stream_id, request)
        stream.request_ended = end_stream
        stream.last_read = gateway.now
        if self.buffered > self.connection_high_water and request.upgrade is None:
            # The client does not take what its streams have queued already: this request
            # waits, its body held back by its window, until that drains (as a pipelined
            # HTTP/1.1 request waits for the one before), and no upstream is read for it.
            stream.deferred = []
            stream.pause_reading("deferred")  # no WINDOW_UPDATE for its body meanwhile
            self.deferred.append(stream)
        else:
            self._start(stream, request)
        limit = self.limits.max_requests_per_connection
        if gateway.draining or (limit and self.requests_served >= limit):
            self._send_goaway()

    def _start(self, stream: H2Stream, request) -> None:
        """The request's exchange begins."""
        gateway = self.gateway
        websocket = request.upgrade is not None
        if websocket:
            # The upstream gets an HTTP/1.1 handshake, which needs a key (RFC 6455 4.1).
            key = stream.websocket_key = websocket_key(os.urandom(16))
            request.headers.append((b"sec-websocket-key", key))
        ctx = request_context(self, request)
        exchange = Exchange(gateway, gateway.snapshot, stream, request, ctx)
        stream.exchange = exchange
        try:
            exchange.start()
            if websocket and stream.exchange is exchange:
                # The handshake is all the request there is: the stream's DATA frames
                # carry the WebSocket, as the bytes after an HTTP/1.1 upgrade do.
                exchange.on_request_end()
        except Exception:
            gateway.internal_error(exchange)
        if (
            request.expect_continue
            and request.has_body
            and stream.exchange is exchange
            and not exchange.response_started
        ):
            # The body is welcome: say so now. The request's one 100: the upstream's is
            # not sent on (Exchange.on_interim_response).
            with contextlib.suppress(H2ProtocolError):  # unless the client reset the stream
                self.h2.send_headers(stream.stream_id, _CONTINUE)

    def _start_deferred(self) -> None:
        """The connection's queue drained: the requests that waited start, in order, and
        get what their clients sent meanwhile."""
        while self.deferred and not self.closing:
            if self.buffered > self.connection_high_water:
                return
            stream = self.deferred.pop(0)
            if self.streams.get(stream.stream_id) is not stream or stream.reset:
                continue  # reset while it waited
            held, stream.deferred = stream.deferred, None
            self._start(stream, stream.request)
            exchange = stream.exchange
            try:
                for item in held:
                    if exchange is None or stream.exchange is not exchange:
                        break  # answered already (a local reply, say)
                    if type(item) is bytes:
                        self._body_to_exchange(stream, exchange, item)
                    else:
                        exchange.on_request_trailers(item)
                if exchange is not None and stream.exchange is exchange and stream.request_ended:
                    exchange.on_request_end()
            except Exception:
                self.gateway.internal_error(exchange)
            stream.resume_reading("deferred")

    def _reject(
        self, stream_id: int, end_stream: bool, status: int, reason: str, headers=()
    ) -> None:
        """Answer a request Dispa will not route (malformed, headers too large) itself."""
        if len(self.streams) >= self.max_streams or self.closing:
            self._refuse(stream_id)
            return
        self._cancel_timer()
        stream = self.streams[stream_id] = H2Stream(self, stream_id)
        stream.request_ended = end_stream
        stream.body_unwanted = True
        self.gateway.stats.record_local_reply(reason)
        answer = error_reply(status, reason)
        if is_grpc(headers):
            answer = grpc_local_reply(answer)
        stream.send_local_reply(answer, head_only=False)

    def _on_data(self, stream_id: int, pieces: list[bytes], size: int) -> None:
        """Body bytes of one stream; ``size`` is what they count against the windows."""
        stream = self.streams.get(stream_id)
        if stream is None:
            # Refused or already answered and forgotten: give the connection window back.
            self._acknowledge(stream_id, size)
            return
        stream.unacknowledged += size
        stream.last_read = self.gateway.now
        data = pieces[0] if len(pieces) == 1 else b"".join(pieces)
        if stream.websocket_key is not None:
            if data:
                stream.from_client(data)
            if not stream.paused_for:
                self.acknowledge(stream)
            return
        exchange = stream.exchange
        if exchange is not None and data and not stream.body_unwanted:
            self._body_to_exchange(stream, exchange, data)
        elif stream.deferred is not None and data:
            stream.deferred.append(data)  # not acknowledged: its window bounds it
        if not stream.paused_for:
            self.acknowledge(stream)

    def _body_to_exchange(self, stream: H2Stream, exchange, data: bytes) -> None:
        stream.received += len(data)
        max_body = self.limits.max_body_bytes
        if max_body and stream.received > max_body:
            self._body_too_large(stream, exchange)
        else:
            exchange.on_request_data(data)

    def _on_request_end(self, stream_id: int) -> None:
        stream = self.streams.get(stream_id)
        if stream is None:
            return
        stream.request_ended = True
        if stream.exchange is None:
            self.stream_settled(stream)
        elif stream.websocket_key is not None:
            stream.client_ended()
        else:
            stream.exchange.on_request_end()

    def _on_request_trailers(self, stream_id: int, headers) -> None:
        stream = self.streams.get(stream_id)
        if stream is None:
            return
        if stream.exchange is not None and stream.websocket_key is None:
            stream.exchange.on_request_trailers(headers)
        elif stream.deferred is not None:
            stream.deferred.append(list(headers))

    def _on_reset(self, stream_id: int) -> None:
        stream = self.streams.get(stream_id)
        if stream is None:
            return
        stream.reset = True
        self._drop_output(stream)
        stream.lost()  # the exchange ends as when an HTTP/1.1 client goes away

    def _body_too_large(self, stream: H2Stream, exchange) -> None:
        stream.body_unwanted = True
        if exchange.response_started:
            stream.abort()
        else:
            exchange.reply(error_reply(413, reasons.BODY_TOO_LARGE))

    # ---------------------------------------------------------------- flow control

    def acknowledge(self, stream: H2Stream) -> None:
        """Give the client back the window of body bytes the exchange has taken."""
        size = stream.unacknowledged
        if size:
            stream.unacknowledged = 0
            self._acknowledge(stream.stream_id, size)
            self._write_out()

    def _acknowledge(self, stream_id: int, size: int) -> None:
        if size and not self.closing:
            with contextlib.suppress(H2ProtocolError):  # the connection is ending
                self.h2.acknowledge_received_data(size, stream_id)

    def transmit(self, stream: H2Stream) -> None:
        """Send what the stream has queued, as far as the windows allow."""
        if self.closing:
            return
        if not self.write_paused:
            stream.push(self.h2, _UNBOUNDED)
        self._after_push(stream)
        self._write_out()

    def _push_waiting(self) -> None:
        """Windows opened or the socket drained: streams take turns, a quantum each."""
        while self.waiting and not self.write_paused and not self.closing:
            moved = False
            for stream in list(self.waiting.values()):
                if stream.push(self.h2, _QUANTUM):
                    moved = True
                self._after_push(stream)
            if not moved:
                break
            self._write_out()

    def _after_push(self, stream: H2Stream) -> None:
        stream_id = stream.stream_id
        if (
            not stream.reset
            and not stream.ended
            and (stream.output or stream.head is not None or stream.end_queued)
        ):
            self.waiting[stream_id] = stream  # the windows or the socket hold it back
        else:
            self.waiting.pop(stream_id, None)
        queued = stream.output_bytes
        if queued != stream.counted:  # something stays queued, or what stayed went out
            self._count_queued(stream, queued)
        if stream.upstream_paused:
            # Its own queue drained: it reads again unless the connection's queue is over
            # its mark (streams the client does not read must not starve one it does).
            if queued < self.stream_low_water and self.buffered <= self.connection_high_water:
                self._resume_upstream(stream)
        elif queued and (
            queued > self.stream_high_water or self.buffered > self.connection_high_water
        ):
            exchange = stream.exchange
            if exchange is not None:
                stream.upstream_paused = True
                exchange.on_downstream_write_paused()
        if stream.ended or stream.reset:
            self.stream_settled(stream)

    def _count_queued(self, stream: H2Stream, queued: int) -> None:
        """The connection's count of queued response bytes follows the stream's."""
        before = self.buffered
        self.buffered = after = before + queued - stream.counted
        stream.counted = queued
        if after > before:
            if after > self.connection_high_water >= before:
                self._pause_all_streams()
        else:
            self._buffered_fell(before)

    def _pause_all_streams(self) -> None:
        """The connection's queue went past its high-water mark: every stream's upstream
        stops being read, those with nothing queued yet too (most have not had a first read
        of their response, and now will not until the queue drains)."""
        for stream in list(self.streams.values()):
            exchange = stream.exchange
            if not stream.upstream_paused and exchange is not None:
                stream.upstream_paused = True
                exchange.on_downstream_write_paused()

    def _resume_upstream(self, stream: H2Stream) -> None:
        stream.upstream_paused = False
        exchange = stream.exchange
        if exchange is not None:
            exchange.on_downstream_write_resumed()

    def _buffered_fell(self, before: int) -> None:
        """The connection's queue shrank from ``before``: back under its high-water mark,
        the streams it paused that have little queued of their own read their upstreams
        again, and the requests that waited start. (Streams with more queued resume as
        they drain, in _after_push: the stream's own marks give the hysteresis.)"""
        if self.buffered <= self.connection_high_water < before:
            low_water = self.stream_low_water
            for stream in list(self.streams.values()):
                if stream.upstream_paused and stream.output_bytes < low_water:
                    self._resume_upstream(stream)
            if self.deferred:
                self.loop.call_soon(self._start_deferred)  # not inside a push

    def _forget_queued(self, stream: H2Stream) -> None:
        """A stream leaves with response bytes counted, or a request still waiting."""
        if stream.counted:
            self._drop_output(stream)
        if stream.deferred is not None:
            # Reset while it waited: what it held goes now, not when the queue drains.
            stream.deferred = None
            self.deferred.remove(stream)

    def _drop_output(self, stream: H2Stream) -> None:
        """The stream will send nothing more: its queue goes, and leaves the count."""
        stream.output.clear()
        stream.output_bytes = 0
        if stream.counted:
            before = self.buffered
            self.buffered = before - stream.counted
            stream.counted = 0
            self._buffered_fell(before)

    # ---------------------------------------------------------------- streams out

    def stream_settled(self, stream: H2Stream) -> None:
        """Forget a stream once it has no exchange and nothing more to send."""
        stream_id = stream.stream_id
        if self.streams.get(stream_id) is not stream or not stream.done:
            return
        if not stream.reset and not stream.request_ended:
            # Answered before the request body ended: the client may stop sending it
            # (RFC 9113 8.1).
            self._reset(stream_id, ErrorCodes.NO_ERROR)
        del self.streams[stream_id]
        self.waiting.pop(stream_id, None)
        if stream.counted or stream.deferred is not None:
            self._forget_queued(stream)
        self._acknowledge(stream_id, stream.unacknowledged)
        stream.unacknowledged = 0
        if not self.streams and not self.closing:
            if self.goaway_stream_id is not None:
                self._close()
            elif self.timer_reason != "header":
                self._arm_timer(self.limits.idle_timeout, "idle")
        self._write_out()

    def reset_stream(self, stream: H2Stream, error_code: ErrorCodes) -> None:
        """The exchange gave up on the stream (an upstream cut off mid-body, say)."""
        if stream.reset:
            return
        stream.reset = True
        self._drop_output(stream)
        if not stream.ended or not stream.request_ended:
            self._reset(stream.stream_id, error_code)
        self.waiting.pop(stream.stream_id, None)
        self._write_out()
        self.stream_settled(stream)

    def _reset(self, stream_id: int, error_code: ErrorCodes) -> None:
        if self.closing:
            return
        with contextlib.suppress(H2ProtocolError):  # closed on both sides: nothing to reset
            self.h2.reset_stream(stream_id, error_code)

    def _refuse(self, stream_id: int) -> None:
        """Over the stream limit, or opened after our GOAWAY: safe for the client to retry,
        but counted with its resets: a client refused without end is cut off."""
        if self.closing:
            return
        try:
            self.h2.refuse_stream(stream_id)
        except H2ProtocolError:
            self._close(linger=True)

    def _write_out(self) -> None:
        """Send what the engine queued, once this turn of the event loop is over: the
        responses to one client's streams that complete in the same turn (their
        upstreams' reads) leave in one write, not a system call each."""
        if not self.flush_scheduled:
            self.flush_scheduled = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self.flush_scheduled = False
        data = self.h2.data_to_send()
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    # ---------------------------------------------------------------- drain, timers, close

    def _send_goaway(self) -> None:
        """GOAWAY(NO_ERROR): no new streams; those already open finish, then we close."""
        if self.goaway_stream_id is not None or self.closing:
            return
        last_stream_id = self.h2.highest_inbound_stream_id
        self.goaway_stream_id = last_stream_id
        self.h2.goaway(last_stream_id, ErrorCodes.NO_ERROR)
        self._flush()
        if not self.streams:
            self._close()

    def close_if_idle(self) -> None:
        """Graceful drain: GOAWAY now; close once the streams in flight have finished."""
        self._send_goaway()

    def check_deadlines(self, now: float) -> None:
        """Called by the gateway's ticker: fire whichever deadline has passed."""
        if self.deadline <= now:
            self._on_timer()
        limits = self.limits
        body_timeout = limits.body_timeout
        for stream in list(self.streams.values()):
            exchange = stream.exchange
            if exchange is None:
                continue
            if exchange.deadline <= now:
                exchange.check_deadline(now)
            if (
                stream.exchange is exchange
                and not stream.request_ended
                and not stream.paused_for
                and not exchange.request_done
                and not stream.body_unwanted
                and not exchange.body_may_pause()
            ):
                if now - stream.last_read >= body_timeout:
                    reason = reasons.CLIENT_TIMEOUT
                elif now >= paced_deadline(
                    exchange.ctx.started + stream.pace_credit, exchange.ctx.bytes_in, limits
                ):
                    reason = reasons.BODY_TOO_SLOW  # slow POST, one stream at a time
                else:
                    continue
                if exchange.response_started:
                    self.gateway.stats.record_local_reply(reason)
                    stream.abort()
                else:
                    exchange.reply(error_reply(408, reason))

    def _on_timer(self) -> None:
        reason = self.timer_reason
        self._cancel_timer()
        if reason == "linger":
            self.abort()  # the client never took our last bytes, nor closed
        elif self.closing:
            return
        elif reason == "idle" and not self.streams:
            self._send_goaway()
        elif reason == "header":
            # A header block left unfinished: its stream never opened (its id is above
            # the GOAWAY's), and the connection cannot go on without it.
            self.h2.close_connection(ErrorCodes.NO_ERROR)
            self._close(linger=True)

    def _idle_or_busy(self) -> None:
        """The timer once nothing is awaited of the client: idle if it has no streams."""
        if self.streams or self.closing:
            self._cancel_timer()
        else:
            self._arm_timer(self.limits.idle_timeout, "idle")

    def _arm_timer(self, seconds: float, reason: str) -> None:
        self.timer_reason = reason
        self.deadline = self.gateway.now + seconds

    def _cancel_timer(self) -> None:
        self.deadline = NO_DEADLINE
        self.timer_reason = ""

    def abort(self) -> None:
        self.closing = True
        if self.transport is not None:
            self.transport.abort()

    def _close(self, linger: bool = False) -> None:
        """Close once what is queued is out. ``linger`` (after a connection error, the
        client may still be sending): write our end, then read and drop what comes until
        the client closes or LINGER passes; closing at once with its bytes unread would
        reset the connection, and the GOAWAY that tells it why could be lost with it."""
        if self.closing:
            return
        self._flush()  # a GOAWAY or the last frames queued go out first
        self.closing = True
        self._cancel_timer()
        transport = self.transport
        if transport is None:
            return
        # A client that never reads what is still queued does not keep the socket.
        self._arm_timer(LINGER if linger else self.limits.idle_timeout, "linger")
        if linger and transport.can_write_eof():
            transport.write_eof()
            if self.write_paused:
                transport.resume_reading()  # to drop what it sends, not to answer it
        else:
            transport.close()
