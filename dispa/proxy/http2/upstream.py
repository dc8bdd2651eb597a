"""HTTP/2 to an upstream: one multiplexed connection per endpoint, a stream per exchange.

The h2 library is the state machine; ``H2UpstreamConnection`` only moves bytes and hands
each stream's events to its ``H2UpstreamStream``, which the exchange treats as it treats
an HTTP/1.1 ``UpstreamConnection``: it gets the same events (Response, Data, EndOfMessage,
plus Trailers) and the same failure calls. Flow control is per stream both ways: request
body bytes wait in the stream's queue for window (the client is paused past a high-water
mark), and response bytes are acknowledged only while the client keeps up, so a slow
client holds back its own stream, never the connection's other streams.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque

from h2.config import H2Configuration
from h2.connection import (
    ConnectionInputs,
    ConnectionState,
    H2Connection,
    H2ConnectionStateMachine,
)
from h2.errors import ErrorCodes
from h2.events import (
    AlternativeServiceAvailable,
    ConnectionTerminated,
    DataReceived,
    InformationalResponseReceived,
    PingAckReceived,
    PingReceived,
    PriorityUpdated,
    RemoteSettingsChanged,
    ResponseReceived,
    SettingsAcknowledged,
    StreamEnded,
    StreamReset,
    TrailersReceived,
    UnknownFrameReceived,
    WindowUpdated,
)
from h2.exceptions import ProtocolError
from h2.settings import SettingCodes, Settings

from dispa.proxy.events import InterimResponse
from dispa.proxy.http2.upstream_headers import (
    MalformedResponse,
    response_from_block,
    trailer_fields,
)

# What the upstream may send on one stream before the client has taken it.
STREAM_WINDOW = 256 * 1024
# Wide enough that streams whose clients are slow cannot use up the connection's window.
CONNECTION_WINDOW = 64 * 1024 * 1024
_DEFAULT_WINDOW = 65535
# Request body bytes queued for window past which the client is paused, and below which
# it is read again.
OUTPUT_HIGH_WATER = 256 * 1024
OUTPUT_LOW_WATER = 64 * 1024
# While the socket is full only frames the upstream asked for go out (answers to its PING
# and SETTINGS, window updates, heads): past this, it asks without reading, and is dropped.
MAX_UNSENT_WHILE_PAUSED = 1024 * 1024
# Frames of the connection itself that the h2 library answers or acts on (PING, SETTINGS,
# PRIORITY, unknown types) an upstream may send per interval; more, and it is dropped: each
# costs the gateway's loop tens of microseconds in h2. Reads are handed to h2 in slices,
# so one read of such frames costs at most a slice before the count stops it.
MAX_CONTROL_EVENTS = 1000
CONTROL_INTERVAL = 10.0
_READ_SLICE = 65536
_CONTROL_EVENTS = frozenset(
    (
        AlternativeServiceAvailable,
        PingAckReceived,
        PingReceived,
        PriorityUpdated,
        RemoteSettingsChanged,
        SettingsAcknowledged,
        UnknownFrameReceived,
    )
)


class _StaysOpenAfterGoaway(H2ConnectionStateMachine):
    """h2 closes its side on a received GOAWAY and then refuses every frame, even those of
    streams at or below the GOAWAY's last stream id, which still finish (RFC 9113 6.8),
    and even frames that arrived in the same read as the GOAWAY. Ours stays open; the
    connection itself opens no new stream once it has seen a GOAWAY."""

    _transitions = {
        **H2ConnectionStateMachine._transitions,
        (ConnectionState.CLIENT_OPEN, ConnectionInputs.RECV_GOAWAY): (
            None,
            ConnectionState.CLIENT_OPEN,
        ),
    }


class H2UpstreamStream:
    """One request/response on a shared connection; the exchange's ``conn``."""

    multiplexed = True  # tells the exchange to send frames, not HTTP/1.1 bytes
    tunnel = None  # never a WebSocket tunnel (upgrades to h2 upstreams are refused)

    __slots__ = (
        "closed",
        "connection",
        "end_queued",
        "ended",
        "exchange",
        "keep_alive",
        "on_closed",
        "output",
        "output_bytes",
        "reading_paused",
        "response_ended",
        "stream_id",
        "trailers",
        "unacknowledged",
        "write_paused",
    )

    def __init__(self, connection: H2UpstreamConnection) -> None:
        self.connection = connection
        self.stream_id = 0  # given when the request head goes out
        self.exchange = None
        self.closed = False  # released: the exchange may not use it any more
        self.keep_alive = True  # nothing to keep alive: the exchange just gives it back
        self.on_closed = None  # told once when the stream is released (circuit breaker)
        self.output: deque = deque()  # request body pieces waiting for window
        self.output_bytes = 0
        self.end_queued = False  # the request ends once the output is out
        self.trailers = None  # request trailers, sent as the last HEADERS
        self.ended = False  # our END_STREAM sent
        self.response_ended = False
        self.reading_paused = False  # the client is slow: response bytes not acknowledged
        self.unacknowledged = 0
        self.write_paused = False  # the exchange was told to pause its client

    # ------------------------------------------------------------ the exchange calls these

    def send_request(self, block, end_stream: bool) -> None:
        connection = self.connection
        if connection.closing or connection.goaway_received:
            # It went away between being picked and now: never sent, so safe to retry.
            connection.loop.call_soon(self._refused)
            return
        h2 = connection.h2
        if connection.pool.tls is not None:
            # The block says :scheme http (h2c); over TLS the target's scheme is https.
            block = [block[0], (b":scheme", b"https"), *block[2:]]
        try:
            stream_id = h2.get_next_available_stream_id()
            h2.send_headers(stream_id, block, end_stream=end_stream)
        except ProtocolError:
            # The upstream lowered its stream limit meanwhile: never sent, safe to retry.
            connection.loop.call_soon(self._refused)
            return
        self.stream_id = stream_id
        connection.streams[stream_id] = self
        if end_stream:
            self.ended = True
        connection.write_out()

    def send_data(self, data: bytes) -> None:
        if self.closed or self.ended or not data:
            return
        self.output.append(data)
        self.output_bytes += len(data)
        self.push()
        if self.output_bytes > OUTPUT_HIGH_WATER and not self.write_paused:
            self.write_paused = True
            if self.exchange is not None:
                self.exchange.on_upstream_write_paused()

    def end_request(self, trailers=None) -> None:
        if self.closed or self.ended or self.end_queued:
            return
        self.end_queued = True
        if trailers:
            self.trailers = trailer_fields(trailers)
        self.push()

    def pause_reading(self) -> None:
        self.reading_paused = True

    def resume_reading(self) -> None:
        if self.reading_paused:
            self.reading_paused = False
            if self.unacknowledged:
                size, self.unacknowledged = self.unacknowledged, 0
                self.connection.acknowledge(self.stream_id, size)
                self.connection.write_out()

    def close(self) -> None:
        """The exchange gives up on the stream: reset it unless both sides have ended."""
        if self.closed:
            return
        if self.stream_id and not (self.ended and self.response_ended):
            self.connection.reset(self.stream_id, ErrorCodes.CANCEL)
        self.release()

    def release(self) -> None:
        """Done with: the connection forgets it (its slot may take a new stream)."""
        if self.closed:
            return
        self.closed = True
        self.exchange = None
        self.output.clear()
        self.output_bytes = 0
        if self.unacknowledged:
            # Give the connection window back: the bytes are dropped, not pending.
            self.connection.acknowledge(self.stream_id, self.unacknowledged)
            self.unacknowledged = 0
        self.connection.stream_released(self)
        if self.on_closed is not None:
            on_closed, self.on_closed = self.on_closed, None
            on_closed()

    # ------------------------------------------------------------ flow control out

    def push(self) -> None:
        """Send queued body bytes as far as the windows allow, then the end if due. Not
        while the socket is full: they wait here, where the high-water mark bounds them,
        not in the transport's buffer (the connection pushes again once it drains)."""
        if self.closed or self.ended or not self.stream_id:
            return
        connection = self.connection
        if connection.write_paused:
            return
        h2 = connection.h2
        stream_id = self.stream_id
        output = self.output
        try:
            while output:
                window = h2.local_flow_control_window(stream_id)
                if window <= 0:
                    break
                size = min(window, h2.max_outbound_frame_size)
                piece = output[0]
                if len(piece) > size:
                    view = piece if type(piece) is memoryview else memoryview(piece)
                    output[0] = view[size:]
                    piece = view[:size]
                else:
                    output.popleft()
                self.output_bytes -= len(piece)
                h2.send_data(stream_id, bytes(piece))
            if self.end_queued and not output:
                if self.trailers:
                    h2.send_headers(stream_id, self.trailers, end_stream=True)
                else:
                    h2.end_stream(stream_id)
                self.ended = True
        except ProtocolError:
            # Reset by the peer in frames read but not yet dispatched: that event follows.
            output.clear()
            self.output_bytes = 0
        connection.write_out()
        if self.write_paused and self.output_bytes < OUTPUT_LOW_WATER:
            self.write_paused = False
            if self.exchange is not None:
                self.exchange.on_upstream_write_resumed()

    # ------------------------------------------------------------ the connection calls these

    def on_head(self, block) -> None:
        exchange = self.exchange
        try:
            response = response_from_block(self.stream_id, block)
        except MalformedResponse:
            self.connection.reset(self.stream_id, ErrorCodes.PROTOCOL_ERROR)
            self.release()
            if exchange is not None:
                exchange.on_upstream_protocol_error(self)
            return
        if exchange is not None:
            exchange.on_response_head(self, response)

    def on_interim(self, block) -> None:
        """A 1xx HEADERS frame (103 Early Hints ...) before the final head: on to the
        exchange as the HTTP/1.1 parser's InterimResponse would be."""
        exchange = self.exchange
        if exchange is None:
            return
        try:
            head = response_from_block(self.stream_id, block)
        except MalformedResponse:
            return  # informational only: the final head decides whether the answer is bad
        exchange.on_interim_response(
            self, InterimResponse(self.stream_id, head.status, head.reason, head.headers)
        )

    def on_data(self, data: bytes, flow_controlled_length: int) -> None:
        if self.closed:
            self.connection.acknowledge(self.stream_id, flow_controlled_length)
            return
        if self.reading_paused:
            self.unacknowledged += flow_controlled_length
        else:
            self.connection.acknowledge(self.stream_id, flow_controlled_length)
        if data and self.exchange is not None:
            self.exchange.on_response_data(self, data)

    def on_trailers(self, block) -> None:
        if self.exchange is not None:
            self.exchange.on_response_trailers(self, trailer_fields(block))

    def on_end(self) -> None:
        self.response_ended = True
        exchange = self.exchange
        if not self.ended:
            # Answered before the request body ended: we stop sending it (RFC 9113 8.1).
            self.connection.reset(self.stream_id, ErrorCodes.NO_ERROR)
            self.ended = True
        if exchange is not None:
            exchange.on_response_end(self)  # gives the stream back (pool.put) or closes it
        else:
            self.release()

    def on_reset(self, error_code: int) -> None:
        """RST_STREAM from the upstream: a failed try. REFUSED_STREAM means the upstream
        never processed the request (RFC 9113 8.7), so it is retried as a connect failure."""
        exchange = self.exchange
        self.response_ended = self.ended = True  # nothing more to reset
        self.release()
        if exchange is None:
            return
        if error_code == ErrorCodes.REFUSED_STREAM:
            exchange.on_upstream_refused(self)
        else:
            exchange.on_upstream_lost(self)

    def on_refused(self) -> None:
        """Above the last stream id of the upstream's GOAWAY: never processed."""
        self.response_ended = self.ended = True
        self._refused()

    def on_lost(self) -> None:
        """The connection closed under the stream."""
        exchange = self.exchange
        self.response_ended = self.ended = True
        self.release()
        if exchange is not None:
            exchange.on_upstream_lost(self)

    def _refused(self) -> None:
        exchange = self.exchange
        self.release()
        if exchange is not None:
            exchange.on_upstream_refused(self)


class H2UpstreamConnection(asyncio.Protocol):
    """One HTTP/2 connection to an endpoint, shared by the streams of many exchanges."""

    __slots__ = (
        "active",
        "batching",
        "closing",
        "control_events",
        "control_since",
        "goaway_received",
        "h2",
        "idle_since",
        "loop",
        "pool",
        "settings_received",
        "streams",
        "transport",
        "write_paused",
    )

    def __init__(self, pool) -> None:
        self.pool = pool
        self.loop = asyncio.get_running_loop()
        self.transport = None
        config = H2Configuration(
            client_side=True,
            header_encoding=None,
            # Request blocks are built clean (upstream_headers.request_block).
            validate_outbound_headers=False,
            normalize_outbound_headers=False,
        )
        h2 = self.h2 = H2Connection(config)
        h2.state_machine = _StaysOpenAfterGoaway()
        h2.local_settings = Settings(
            client=True,
            initial_values={
                SettingCodes.ENABLE_PUSH: 0,
                SettingCodes.INITIAL_WINDOW_SIZE: STREAM_WINDOW,
            },
        )
        self.streams: dict[int, H2UpstreamStream] = {}
        self.active = 0  # streams handed out and not yet released (sent or about to be)
        self.closing = False
        self.goaway_received = False
        self.batching = False
        self.write_paused = False
        self.idle_since = time.monotonic()
        self.control_events = 0  # since control_since (the clock is read once per budget)
        self.control_since = self.idle_since
        # Set once the upstream's first SETTINGS arrive: its stream limit is known then.
        self.settings_received: asyncio.Future = self.loop.create_future()

    # ------------------------------------------------------------ streams

    def has_room(self) -> bool:
        if self.closing or self.goaway_received:
            return False
        return self.active < self.h2.remote_settings.max_concurrent_streams

    def new_stream(self) -> H2UpstreamStream:
        self.active += 1
        return H2UpstreamStream(self)

    def stream_released(self, stream: H2UpstreamStream) -> None:
        self.active -= 1
        if stream.stream_id:
            self.streams.pop(stream.stream_id, None)
        if self.active == 0:
            self.idle_since = time.monotonic()
            if (self.goaway_received or self.pool.retired) and not self.closing:
                self.close()
        self.write_out()
        if self.has_room():
            self.pool.room_freed()

    # ------------------------------------------------------------ transport callbacks

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.pool.open_connections += 1
        h2 = self.h2
        h2.initiate_connection()
        h2.increment_flow_control_window(CONNECTION_WINDOW - _DEFAULT_WINDOW)
        self.write_out()

    def data_received(self, data: bytes) -> None:
        if len(data) <= _READ_SLICE:
            self._receive(data)
            return
        for start in range(0, len(data), _READ_SLICE):
            self._receive(data[start : start + _READ_SLICE])

    def _receive(self, data: bytes) -> None:
        if self.closing:
            return
        try:
            events = self.h2.receive_data(data)
        except ProtocolError:
            self.write_out()
            self.close()
            return
        streams = self.streams
        touched = []  # downstreams to flush once the batch is handled
        self.batching = True
        window_opened = False
        try:
            for event in events:
                kind = type(event)
                stream = streams.get(getattr(event, "stream_id", 0) or 0)
                if stream is not None and stream.exchange is not None:
                    exchange = stream.exchange
                    exchange.gateway.now = time.monotonic()
                    touched.append(exchange.downstream)
                if kind is DataReceived:
                    if stream is not None:
                        stream.on_data(event.data, event.flow_controlled_length)
                    else:
                        self.acknowledge(event.stream_id, event.flow_controlled_length)
                elif stream is None:
                    if kind in _CONTROL_EVENTS:
                        self.control_events += 1
                    if kind is WindowUpdated or kind is RemoteSettingsChanged:
                        window_opened = True
                        if kind is RemoteSettingsChanged and not self.settings_received.done():
                            self.settings_received.set_result(None)
                    elif kind is ConnectionTerminated:
                        self._on_goaway(event.last_stream_id)
                elif kind is ResponseReceived:
                    stream.on_head(event.headers)
                elif kind is TrailersReceived:
                    stream.on_trailers(event.headers)
                elif kind is InformationalResponseReceived:
                    stream.on_interim(event.headers)
                elif kind is StreamEnded:
                    stream.on_end()
                elif kind is StreamReset:
                    stream.on_reset(event.error_code)
                elif kind is WindowUpdated:
                    window_opened = True
        finally:
            self.batching = False
        if self.control_events > MAX_CONTROL_EVENTS and self._control_flood():
            return
        if window_opened:
            for stream in list(streams.values()):
                if stream.output or stream.end_queued:
                    stream.push()
        for downstream in touched:
            downstream.flush()
        self.write_out()

    def _control_flood(self) -> bool:
        """Past the budget: a flood if within the interval (the connection is dropped),
        else a new interval begins."""
        now = time.monotonic()
        if now - self.control_since >= CONTROL_INTERVAL:
            self.control_since = now
            self.control_events = 0
            return False
        with contextlib.suppress(ProtocolError):
            self.h2.close_connection(error_code=ErrorCodes.ENHANCE_YOUR_CALM)
        self.batching = False
        self.write_out()
        self.closing = True
        if self.transport is not None:
            self.transport.abort()  # what it sent meanwhile is not read, nor answered
        return True

    def _on_goaway(self, last_stream_id: int) -> None:
        """GOAWAY: streams above ``last_stream_id`` were never processed and are retried;
        those below finish; new requests go to another connection."""
        self.goaway_received = True
        self.pool.forget(self)
        for stream_id, stream in list(self.streams.items()):
            if stream_id > last_stream_id:
                stream.on_refused()
        if self.active == 0:
            self.close()

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc) -> None:
        self.closing = True
        self.pool.open_connections -= 1
        self.pool.forget(self)
        if not self.settings_received.done():
            self.settings_received.set_exception(ConnectionError("closed before SETTINGS"))
            self.settings_received.exception()  # retrieved: nobody may wait for it
        streams = list(self.streams.values())
        self.streams.clear()
        for stream in streams:
            stream.on_lost()

    def pause_writing(self) -> None:
        self.write_paused = True
        for stream in self.streams.values():
            if stream.exchange is not None and not stream.write_paused:
                stream.write_paused = True
                stream.exchange.on_upstream_write_paused()

    def resume_writing(self) -> None:
        self.write_paused = False
        for stream in list(self.streams.values()):
            if stream.output or (stream.end_queued and not stream.ended):
                stream.push()  # resumes its exchange too, below the low-water mark
            elif stream.write_paused and stream.output_bytes < OUTPUT_LOW_WATER:
                stream.write_paused = False
                if stream.exchange is not None:
                    stream.exchange.on_upstream_write_resumed()

    # ------------------------------------------------------------ frames out

    def acknowledge(self, stream_id: int, size: int) -> None:
        if size and not self.closing:
            with contextlib.suppress(ProtocolError):  # the stream or connection is ending
                self.h2.acknowledge_received_data(size, stream_id)

    def reset(self, stream_id: int, error_code: ErrorCodes) -> None:
        if not self.closing:
            with contextlib.suppress(ProtocolError):  # already closed both ways
                self.h2.reset_stream(stream_id, error_code)
            self.write_out()

    def write_out(self) -> None:
        if self.batching:
            return
        data = self.h2.data_to_send()
        transport = self.transport
        if data and transport is not None and not transport.is_closing():
            transport.write(data)
            if self.write_paused and transport.get_write_buffer_size() > MAX_UNSENT_WHILE_PAUSED:
                self.closing = True
                transport.abort()  # its streams are lost, as with a connection cut off

    # ------------------------------------------------------------ ending

    def close(self) -> None:
        """GOAWAY(NO_ERROR) and close. Streams still open are lost (see drain())."""
        if self.closing:
            return
        with contextlib.suppress(ProtocolError):
            self.h2.close_connection()
        self.write_out()
        self.closing = True
        if self.transport is not None:
            self.transport.close()

    def drain(self) -> None:
        """No new streams; close once the streams in flight have finished."""
        self.pool.forget(self)
        self.goaway_received = True  # no new streams from our side either
        if self.active == 0:
            self.close()
