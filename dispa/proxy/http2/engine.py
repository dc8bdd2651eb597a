"""The server side of HTTP/2 framing (RFC 9113): bytes in, events out, frames to send.

Dispa used the h2 library here. Profiled under h2load it cost about 260 us of Python per
request on top of the HTTP/1.1 path (a state machine object per stream, an event object
per state transition, a header validation pass per field in several generators, a frame
object per frame), which held HTTP/2 at an eighth of nginx. This engine does only what a
gateway's server side needs, in flat code: frames are read with one ``struct`` call,
streams are three numbers and two flags, header blocks that only reference HPACK tables
are looked up, not decoded, and validation is a few regular expressions per block.
The client side (``http2/upstream.py``) still uses h2.

It answers the calls ``http2/server.py`` made of h2 (``receive_data``, ``send_headers``,
``send_data``, ``acknowledge_received_data`` ...), so the Protocol is unchanged but for
the event names. Connection errors queue GOAWAY and raise ``H2ProtocolError``; stream
errors queue RST_STREAM and, for a stream the application knows, report ``StreamReset``.
"""

from __future__ import annotations

import struct
from collections import deque

from hpack import Decoder
from hpack.exceptions import HPACKError, OversizedHeaderListError

from dispa.proxy.http2.events import (
    ConnectionTerminated,
    DataReceived,
    H2ProtocolError,
    HeadersTooLarge,
    RemoteSettingsChanged,
    RequestReceived,
    StreamClosedError,
    StreamEnded,
    StreamError,
    StreamReset,
    TrailersReceived,
    WindowUpdated,
)
from dispa.proxy.http2.fields import check_request, valid_trailers

__all__ = [  # the events and errors, for users of the engine
    "ConnectionTerminated",
    "DataReceived",
    "H2ProtocolError",
    "H2ServerEngine",
    "HeadersTooLarge",
    "RemoteSettingsChanged",
    "RequestReceived",
    "StreamClosedError",
    "StreamEnded",
    "StreamReset",
    "TrailersReceived",
    "WindowUpdated",
]

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# Frame types (RFC 9113 6) and flags.
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE = 0, 1, 2, 3, 4, 5
PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = 6, 7, 8, 9
END_STREAM, ACK, END_HEADERS, PADDED, PRIORITY_FLAG = 0x1, 0x1, 0x4, 0x8, 0x20

# Error codes (RFC 9113 7).
NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, FLOW_CONTROL_ERROR = 0x0, 0x1, 0x2, 0x3
STREAM_CLOSED, FRAME_SIZE_ERROR, REFUSED_STREAM, COMPRESSION_ERROR = 0x5, 0x6, 0x7, 0x9
ENHANCE_YOUR_CALM = 0xB

# Settings (RFC 9113 6.5.2, RFC 8441 3).
HEADER_TABLE_SIZE, ENABLE_PUSH, MAX_CONCURRENT_STREAMS, INITIAL_WINDOW_SIZE = 1, 2, 3, 4
MAX_FRAME_SIZE, MAX_HEADER_LIST_SIZE, ENABLE_CONNECT_PROTOCOL = 5, 6, 8

DEFAULT_WINDOW = 65535
MAX_WINDOW = 2**31 - 1
FRAME_SIZE = 16384  # the largest frame we take: the default, never raised
_MAX_FRAME_SIZE_LIMIT = 16777215

_FRAME_HEAD = struct.Struct(">HBBBL")  # 24-bit length as 16 + 8 bits, type, flags, stream
_U32 = struct.Struct(">L")
_SETTING = struct.Struct(">HL")
_GOAWAY = struct.Struct(">LL")

# A header block made only of one-byte indexed fields (0x81-0xFE) changes no HPACK table:
# it decodes the same until the next block that does.
_NOT_ONE_BYTE_INDEXED = bytes(range(0x81, 0xFF))
_RECENT_RESETS = 128  # closed streams remembered, to tell late frames from errors
# A header block made only of table references is remembered (it decodes the same until
# the table changes) when it is at most this long: requests' blocks are tens of bytes, and
# a long one (an HPACK bomb naming one large field thousands of times) must not be kept.
_CACHED_BLOCK_BYTES = 1024
# Flood defaults (the listener's ``limits.http2`` sets them; see dispa/config/schema.py).
MAX_CONTINUATION_FRAMES = 16
MAX_RESET_STREAMS = 500
MAX_CONTROL_FRAMES = 1000
# WINDOW_UPDATE frames a client may send: a start, and more for each DATA frame sent
# (it acknowledges them, per stream and per connection). Envoy allows 10 per DATA frame.
_WINDOW_UPDATES_AT_START = 1000
_WINDOW_UPDATES_PER_DATA_FRAME = 4
_SELF_DEPENDENT = 0x100  # not a wire flag: HEADERS whose priority names its own stream
_UNCHECKED = -2  # a decoded block not yet checked as a request

# ---------------------------------------------------------------- streams and windows


class _Stream:
    __slots__ = (
        "announced",
        "content_length",
        "local_open",
        "queued_in",
        "received",
        "recv_max",
        "recv_processed",
        "recv_window",
        "remote_open",
        "send_window",
    )

    def __init__(self, send_window: int, recv_window: int) -> None:
        self.send_window = send_window
        self.recv_window = recv_window
        self.recv_max = recv_window
        self.recv_processed = 0
        self.local_open = True  # we may still send (no END_STREAM or RST from us)
        self.remote_open = True  # the client may still send
        self.announced = False  # or the event that told the application of it
        self.content_length = -1  # the request's content-length, -1 if none
        self.received = 0  # request body bytes
        self.queued_in = -1  # the output batch (engine._batch) that last took a frame of it


def _window_increment(window: int, maximum: int, processed: int) -> int:
    """How much window to give back (h2's WindowManager rule, so peers see the same
    pacing): once half the window was processed, or when it is shut and some was."""
    if processed >= maximum // 2 or (window == 0 and processed > min(1024, maximum // 4)):
        return min(processed, maximum - window)
    return 0


def _frame(kind: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    size = len(payload)
    return _FRAME_HEAD.pack(size >> 8, size & 0xFF, kind, flags, stream_id) + payload


# ---------------------------------------------------------------- the engine


class H2ServerEngine:
    __slots__ = (
        "_batch",
        "_block",
        "_block_cache",
        "_block_flags",
        "_block_frames",
        "_block_size",
        "_buffer",
        "_closed",
        "_conn_recv_max",
        "_conn_recv_processed",
        "_conn_recv_window",
        "_conn_send_window",
        "_control_frames",
        "_decoder",
        "_local_settings",
        "_max_block_size",
        "_max_continuation_frames",
        "_max_control_frames",
        "_max_header_list_size",
        "_max_reset_streams",
        "_out",
        "_peer_resets",
        "_preface_done",
        "_recent_closes",
        "_recent_resets",
        "_remote_initial_window",
        "_reset_streams",
        "_settings_seen",
        "_streams",
        "_window_update_credit",
        "encoder",
        "header_block_stream",
        "highest_inbound_stream_id",
        "initial_window",
        "max_outbound_frame_size",
    )

    def __init__(
        self,
        *,
        max_concurrent_streams: int,
        initial_window: int,
        max_header_list_size: int,
        encoder,
        max_continuation_frames: int = MAX_CONTINUATION_FRAMES,
        max_reset_streams: int = MAX_RESET_STREAMS,
        max_control_frames: int = MAX_CONTROL_FRAMES,
    ) -> None:
        self.encoder = encoder
        self.initial_window = initial_window  # each stream's receive window, as advertised
        self.highest_inbound_stream_id = 0
        self.max_outbound_frame_size = FRAME_SIZE
        self._local_settings = (
            (MAX_CONCURRENT_STREAMS, max_concurrent_streams),
            (INITIAL_WINDOW_SIZE, initial_window),
            (MAX_HEADER_LIST_SIZE, max_header_list_size),
            (ENABLE_CONNECT_PROTOCOL, 1),
        )
        self._max_header_list_size = max_header_list_size
        decoder = self._decoder = Decoder()
        # Decoding stops only far past our limit (memory); within 4x a block is decoded
        # whole, so the HPACK tables stay in step, and answered 431 if over the limit.
        decoder.max_header_list_size = max_header_list_size * 4
        # A block's compressed bytes are never more than its header list, so a block
        # longer than what is decoded at all is refused as it arrives.
        self._max_block_size = decoder.max_header_list_size + FRAME_SIZE
        self._block_cache: dict[bytes, tuple] = {}
        self._buffer = b""
        self._out: list[bytes] = []
        self._preface_done = False
        self._settings_seen = False
        self._closed = False
        self._streams: dict[int, _Stream] = {}
        # Closed streams, by how they closed (RFC 9113 5.1). Reset by us: what the client
        # sent before our RST_STREAM reached it is ignored. Reset by the client: it sends
        # nothing more there, so DATA or HEADERS is a stream error STREAM_CLOSED. Ended both
        # ways: DATA or HEADERS is a connection error STREAM_CLOSED, where a lower id never
        # opened is PROTOCOL_ERROR (5.1.1). Older closed streams are forgotten: their late
        # frames are ignored.
        self._recent_resets: deque[int] = deque(maxlen=_RECENT_RESETS)
        self._peer_resets: deque[int] = deque(maxlen=_RECENT_RESETS)
        self._recent_closes: deque[int] = deque(maxlen=_RECENT_RESETS)
        self._batch = 0  # counts the batches data_to_send has handed out
        self._remote_initial_window = DEFAULT_WINDOW
        self._conn_send_window = DEFAULT_WINDOW
        self._conn_recv_window = DEFAULT_WINDOW
        self._conn_recv_max = DEFAULT_WINDOW
        self._conn_recv_processed = 0
        self.header_block_stream = 0  # a header block waits for CONTINUATION on this stream
        self._block_flags = 0
        self._block: list[bytes] = []
        self._block_size = 0  # bytes of the block so far
        self._block_frames = 0  # CONTINUATION frames of the block so far
        # Floods (RFC 9113 10.5): counted as frames arrive; over a limit, the connection
        # ends with GOAWAY(ENHANCE_YOUR_CALM). The per-interval counts are zeroed by
        # new_interval(), which the Protocol calls (the engine reads no clock).
        self._max_continuation_frames = max_continuation_frames
        self._max_reset_streams = max_reset_streams
        self._max_control_frames = max_control_frames
        self._reset_streams = 0  # streams reset by the client, or for its errors
        self._control_frames = 0  # frames that carry no request
        self._window_update_credit = _WINDOW_UPDATES_AT_START

    # ---------------------------------------------------------------- output

    def initiate_connection(self) -> None:
        payload = b"".join(_SETTING.pack(code, value) for code, value in self._local_settings)
        self._out.append(_frame(SETTINGS, 0, 0, payload))

    def increment_flow_control_window(self, increment: int) -> None:
        self._conn_recv_window += increment
        self._conn_recv_max = max(self._conn_recv_max, self._conn_recv_window)
        self._out.append(_frame(WINDOW_UPDATE, 0, 0, _U32.pack(increment)))

    def data_to_send(self) -> bytes:
        out = self._out
        if not out:
            return b""
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        self._batch += 1
        return data

    def _open_to_send(self, stream_id: int) -> _Stream:
        stream = self._streams.get(stream_id)
        if stream is None or not stream.local_open or self._closed:
            raise StreamClosedError(stream_id)
        return stream

    def send_headers(self, stream_id: int, headers, end_stream: bool = False) -> None:
        stream = self._open_to_send(stream_id)
        stream.queued_in = self._batch
        block = self.encoder.encode(headers)
        flags = END_STREAM if end_stream else 0
        limit = self.max_outbound_frame_size
        out = self._out
        if len(block) <= limit:
            out.append(_frame(HEADERS, flags | END_HEADERS, stream_id, block))
        else:
            out.append(_frame(HEADERS, flags, stream_id, block[:limit]))
            for start in range(limit, len(block), limit):
                last = start + limit >= len(block)
                piece = block[start : start + limit]
                out.append(_frame(CONTINUATION, END_HEADERS if last else 0, stream_id, piece))
        if end_stream:
            self._end_local(stream_id, stream)

    def send_data(self, stream_id: int, data, end_stream: bool = False) -> None:
        stream = self._open_to_send(stream_id)
        size = len(data)
        if size > self._conn_send_window or size > stream.send_window:
            raise H2ProtocolError(FLOW_CONTROL_ERROR, "DATA larger than the send window")
        if size > self.max_outbound_frame_size:
            raise H2ProtocolError(FRAME_SIZE_ERROR, "DATA larger than the client's frames")
        self._conn_send_window -= size
        stream.send_window -= size
        stream.queued_in = self._batch
        self._window_update_credit += _WINDOW_UPDATES_PER_DATA_FRAME
        out = self._out
        flags = END_STREAM if end_stream else 0
        out.append(_FRAME_HEAD.pack(size >> 8, size & 0xFF, DATA, flags, stream_id))
        if size:
            out.append(bytes(data) if type(data) is memoryview else data)
        if end_stream:
            self._end_local(stream_id, stream)

    def end_stream(self, stream_id: int) -> None:
        self.send_data(stream_id, b"", end_stream=True)

    def reset_stream(self, stream_id: int, error_code: int) -> None:
        stream = self._streams.get(stream_id)
        if stream is None or self._closed:
            raise StreamClosedError(stream_id)
        self._reset(stream_id, error_code)

    def refuse_stream(self, stream_id: int) -> None:
        """REFUSED_STREAM (over the stream limit, or after our GOAWAY): counted with the
        client's resets, since refusing streams without end is the same work for us."""
        if self._closed:
            return
        if stream_id in self._streams:
            self._reset(stream_id, REFUSED_STREAM)
        self._count_reset()

    def new_interval(self) -> None:
        """A new flood interval: the per-interval counts start again."""
        self._reset_streams = 0
        self._control_frames = 0

    def _count_reset(self) -> None:
        self._reset_streams += 1
        if self._reset_streams > self._max_reset_streams:
            self._fail(ENHANCE_YOUR_CALM)
            raise H2ProtocolError(ENHANCE_YOUR_CALM, "too many streams reset")

    def _count_control(self, weight: int = 1) -> None:
        self._control_frames += weight
        if self._control_frames > self._max_control_frames:
            raise H2ProtocolError(ENHANCE_YOUR_CALM, "too many control frames")

    def close_connection(self, error_code: int) -> None:
        """End the connection from our side: GOAWAY with ``error_code``, nothing more read."""
        self._fail(error_code)

    def _fail(self, error_code: int) -> None:
        """A connection error: nothing more is read, GOAWAY is queued."""
        if not self._closed:
            self._closed = True
            self._buffer = b""
            self.goaway(self.highest_inbound_stream_id, error_code)

    def _reset(self, stream_id: int, error_code: int) -> None:
        self._out.append(_frame(RST_STREAM, 0, stream_id, _U32.pack(error_code)))
        # Body bytes the application was given it still acknowledges (http2.server does, as
        # the stream settles); the connection window gets them back then.
        self._streams.pop(stream_id, None)
        self._recent_resets.append(stream_id)

    def _end_local(self, stream_id: int, stream: _Stream) -> None:
        stream.local_open = False
        if not stream.remote_open:
            del self._streams[stream_id]
            self._recent_closes.append(stream_id)

    def goaway(self, last_stream_id: int, error_code: int) -> None:
        self._out.append(_frame(GOAWAY, 0, 0, _GOAWAY.pack(last_stream_id, error_code)))

    def local_flow_control_window(self, stream_id: int) -> int:
        stream = self._open_to_send(stream_id)
        return min(self._conn_send_window, stream.send_window)

    def acknowledge_received_data(self, size: int, stream_id: int) -> None:
        if size <= 0 or self._closed:
            return
        self._give_back_connection(size)
        stream = self._streams.get(stream_id)
        if stream is not None and stream.remote_open:
            stream.recv_processed += size
            increment = _window_increment(
                stream.recv_window, stream.recv_max, stream.recv_processed
            )
            if increment:
                stream.recv_processed = 0
                stream.recv_window += increment
                stream.queued_in = self._batch
                self._out.append(_frame(WINDOW_UPDATE, 0, stream_id, _U32.pack(increment)))

    def _give_back_connection(self, size: int) -> None:
        if size <= 0:
            return
        self._conn_recv_processed += size
        increment = _window_increment(
            self._conn_recv_window, self._conn_recv_max, self._conn_recv_processed
        )
        if increment:
            self._conn_recv_processed = 0
            self._conn_recv_window += increment
            self._out.append(_frame(WINDOW_UPDATE, 0, 0, _U32.pack(increment)))

    # ---------------------------------------------------------------- input

    def receive_data(self, data: bytes) -> list:
        if self._closed:
            return []
        buffer = self._buffer + data if self._buffer else data
        events: list = []
        try:
            if not self._preface_done:
                if len(buffer) < len(PREFACE):
                    if not PREFACE.startswith(buffer):
                        raise H2ProtocolError(PROTOCOL_ERROR, "not the HTTP/2 preface")
                    self._buffer = buffer
                    return events
                if not buffer.startswith(PREFACE):
                    raise H2ProtocolError(PROTOCOL_ERROR, "not the HTTP/2 preface")
                self._preface_done = True
                buffer = buffer[len(PREFACE) :]
            position = 0
            end = len(buffer)
            unpack = _FRAME_HEAD.unpack_from
            while end - position >= 9:
                high, low, kind, flags, stream_id = unpack(buffer, position)
                size = (high << 8) | low
                if size > FRAME_SIZE:
                    raise H2ProtocolError(FRAME_SIZE_ERROR, "frame larger than 16384 bytes")
                if end - position - 9 < size:
                    break
                start = position + 9
                position = start + size
                payload = buffer[start:position]
                stream_id &= 0x7FFFFFFF
                try:
                    self._frame(kind, flags, stream_id, payload, events)
                except StreamError as error:
                    self._stream_error(error.stream_id, error.error_code, events)
            self._buffer = buffer[position:] if position < end else b""
        except H2ProtocolError as error:
            self._fail(error.error_code)
            raise
        return events

    def _on_closed_stream(self, stream_id: int, kind: str) -> bool:
        """DATA or HEADERS on a stream that is no longer open (RFC 9113 5.1, 6.1): raises
        if the client could not have sent it in good faith; True if the stream is one we
        reset (frames the client sent before our RST_STREAM reached it: ignored)."""
        if stream_id in self._peer_resets:
            # Answered once: the stream counts as reset by us from now on, so what the
            # client still sends there is ignored, not answered again (5.4.2).
            self._peer_resets.remove(stream_id)
            raise StreamError(stream_id, STREAM_CLOSED)
        if stream_id in self._recent_closes:
            raise H2ProtocolError(STREAM_CLOSED, f"{kind} on a stream closed both ways")
        return stream_id in self._recent_resets

    def _unqueue(self, stream_id: int) -> None:
        """The client reset a stream whose frames wait in the output (queued this turn of
        the loop, before its RST_STREAM was read): they are dropped, so that nothing goes
        out on the stream after the reset was read. DATA dropped gives its bytes back to
        the connection's send window. Header blocks may be dropped: the encoder adds to no
        HPACK table (http2.hpack.LiteralEncoder), and it is told to announce its table size
        again in case the dropped block carried the announcement."""
        out = self._out
        kept: list = []
        dropped_block = False
        index, end = 0, len(out)
        while index < end:
            piece = out[index]
            index += 1
            size = (piece[0] << 16) | (piece[1] << 8) | piece[2]
            # send_data queues a DATA frame's head and payload as two pieces.
            payload_apart = len(piece) == 9 and size > 0
            if _U32.unpack_from(piece, 5)[0] & 0x7FFFFFFF != stream_id:
                kept.append(piece)
                if payload_apart:
                    kept.append(out[index])
                    index += 1
                continue
            if payload_apart:
                index += 1
            kind = piece[3]
            if kind == DATA:
                self._conn_send_window += size
            elif kind in (HEADERS, CONTINUATION):
                dropped_block = True
        out[:] = kept
        if dropped_block:
            encoder = self.encoder
            encoder.header_table_size = encoder.header_table_size

    def _stream_error(self, stream_id: int, error_code: int, events: list) -> None:
        stream = self._streams.get(stream_id)
        self._reset(stream_id, error_code)
        if stream is not None and stream.announced:
            stream.announced.cancelled = True  # not yet dispatched: never started
            events.append(StreamReset(stream_id, error_code))
        self._count_reset()

    def _frame(self, kind: int, flags: int, stream_id: int, payload: bytes, events: list) -> None:
        if self.header_block_stream and (
            kind != CONTINUATION or stream_id != self.header_block_stream
        ):
            raise H2ProtocolError(PROTOCOL_ERROR, "a header block was interrupted")
        if not self._settings_seen:
            if kind != SETTINGS or flags & ACK:
                raise H2ProtocolError(PROTOCOL_ERROR, "the first frame must be SETTINGS")
            self._settings_seen = True
        if kind == DATA:
            self._on_data(flags, stream_id, payload, events)
        elif kind == HEADERS:
            self._on_headers(flags, stream_id, payload, events)
        elif kind == CONTINUATION:
            if not self.header_block_stream or stream_id == 0:
                raise H2ProtocolError(PROTOCOL_ERROR, "CONTINUATION without HEADERS")
            # Counted, never re-summed: empty frames are stopped by the count, large ones
            # by the size (CVE-2024-27316 and kin).
            self._block_frames += 1
            self._block_size += len(payload)
            if self._block_frames > self._max_continuation_frames:
                raise H2ProtocolError(ENHANCE_YOUR_CALM, "too many CONTINUATION frames")
            if self._block_size > self._max_block_size:
                raise H2ProtocolError(ENHANCE_YOUR_CALM, "header block too large")
            self._block.append(payload)
            if flags & END_HEADERS:
                block = b"".join(self._block)
                self._block = []
                self.header_block_stream = 0
                self._on_header_block(stream_id, self._block_flags, block, events)
        elif kind == WINDOW_UPDATE:
            self._on_window_update(stream_id, payload, events)
        elif kind == SETTINGS:
            self._on_settings(flags, stream_id, payload, events)
        elif kind == RST_STREAM:
            if stream_id == 0:
                raise H2ProtocolError(PROTOCOL_ERROR, "RST_STREAM on stream 0")
            if len(payload) != 4:
                raise H2ProtocolError(FRAME_SIZE_ERROR, "RST_STREAM must be 4 bytes")
            if stream_id > self.highest_inbound_stream_id:
                raise H2ProtocolError(PROTOCOL_ERROR, "RST_STREAM on an idle stream")
            stream = self._streams.pop(stream_id, None)
            if stream is None:
                self._count_control()  # a closed stream: nothing to do, but not free
                return
            self._peer_resets.append(stream_id)
            if stream.queued_in == self._batch:
                self._unqueue(stream_id)
            if stream.announced:
                # Reset before the Protocol saw the request (the same read, as rapid reset
                # sends them): it is skipped, and no exchange starts.
                stream.announced.cancelled = True
                events.append(StreamReset(stream_id, _U32.unpack(payload)[0]))
            self._count_reset()
        elif kind == PING:
            if stream_id != 0:
                raise H2ProtocolError(PROTOCOL_ERROR, "PING on a stream")
            if len(payload) != 8:
                raise H2ProtocolError(FRAME_SIZE_ERROR, "PING must be 8 bytes")
            self._count_control()
            if not flags & ACK:
                self._out.append(_frame(PING, ACK, 0, payload))
        elif kind == PRIORITY:
            self._count_control()
            if stream_id == 0:
                raise H2ProtocolError(PROTOCOL_ERROR, "PRIORITY on stream 0")
            if len(payload) != 5:
                raise StreamError(stream_id, FRAME_SIZE_ERROR)
            if _U32.unpack_from(payload)[0] & 0x7FFFFFFF == stream_id:
                raise StreamError(stream_id, PROTOCOL_ERROR)
        elif kind == GOAWAY:
            if stream_id != 0:
                raise H2ProtocolError(PROTOCOL_ERROR, "GOAWAY on a stream")
            if len(payload) < 8:
                raise H2ProtocolError(FRAME_SIZE_ERROR, "GOAWAY shorter than 8 bytes")
            self._count_control()
            last_stream_id, error_code = _GOAWAY.unpack_from(payload)
            # Streams in flight may still finish (RFC 9113 6.8): reading goes on; the
            # application decides when to close.
            events.append(ConnectionTerminated(error_code, last_stream_id & 0x7FFFFFFF))
        elif kind == PUSH_PROMISE:
            raise H2ProtocolError(PROTOCOL_ERROR, "a client cannot push")
        else:
            # Extensions we do not speak: ignored (RFC 9113 5.5), and counted.
            self._count_control()

    @staticmethod
    def _unpad(flags: int, payload: bytes) -> bytes:
        if not flags & PADDED:
            return payload
        if not payload or payload[0] >= len(payload):
            raise H2ProtocolError(PROTOCOL_ERROR, "padding longer than the frame")
        return payload[1 : len(payload) - payload[0]]

    def _on_data(self, flags: int, stream_id: int, payload: bytes, events: list) -> None:
        if stream_id == 0:
            raise H2ProtocolError(PROTOCOL_ERROR, "DATA on stream 0")
        size = len(payload)
        self._conn_recv_window -= size
        if self._conn_recv_window < 0:
            raise H2ProtocolError(FLOW_CONTROL_ERROR, "DATA beyond the connection window")
        data = self._unpad(flags, payload)
        stream = self._streams.get(stream_id)
        if stream is None:
            if stream_id > self.highest_inbound_stream_id:
                raise H2ProtocolError(PROTOCOL_ERROR, "DATA on an idle stream")
            # A stream already closed or reset: nobody will acknowledge these bytes, which
            # still count against the connection window (RFC 9113 5.1): give them back.
            self._give_back_connection(size)
            self._on_closed_stream(stream_id, "DATA")
            if not size:
                self._count_control()  # moves nothing, as on an open stream
            return
        ended = flags & END_STREAM
        if not size and not ended:
            self._count_control()  # an empty DATA frame moves nothing
        error = 0
        if not stream.remote_open:
            error = STREAM_CLOSED
        elif size > stream.recv_window:
            error = FLOW_CONTROL_ERROR
        elif stream.content_length >= 0:
            stream.received += len(data)
            if stream.received > stream.content_length or (
                ended and stream.received != stream.content_length
            ):
                error = PROTOCOL_ERROR
        if error:
            # No event carries these bytes, so nobody acknowledges them: give them back.
            self._give_back_connection(size)
            raise StreamError(stream_id, error)
        stream.recv_window -= size
        events.append(DataReceived(stream_id, data, size))
        if ended:
            self._end_remote(stream_id, stream, events)

    def _end_remote(self, stream_id: int, stream: _Stream, events: list) -> None:
        stream.remote_open = False
        if not stream.local_open:
            del self._streams[stream_id]
            self._recent_closes.append(stream_id)
        events.append(StreamEnded(stream_id))

    def _on_headers(self, flags: int, stream_id: int, payload: bytes, events: list) -> None:
        if stream_id == 0:
            raise H2ProtocolError(PROTOCOL_ERROR, "HEADERS on stream 0")
        block = self._unpad(flags, payload)
        if flags & PRIORITY_FLAG:
            if len(block) < 5:
                raise H2ProtocolError(FRAME_SIZE_ERROR, "HEADERS too short for its priority")
            depends_on = _U32.unpack_from(block)[0] & 0x7FFFFFFF
            block = block[5:]
            if depends_on == stream_id:
                flags |= _SELF_DEPENDENT  # the block is read whole, then the stream reset
        if flags & END_HEADERS:
            self._on_header_block(stream_id, flags, block, events)
        else:
            self.header_block_stream = stream_id
            self._block_flags = flags
            self._block = [block]
            self._block_size = len(block)
            self._block_frames = 0

    def _decode(self, block: bytes) -> list:
        """``[headers, request check]`` for a block; the check is filled in by the first
        request that needs it. A block of table references only changes no HPACK table,
        so it decodes (and checks) the same until a block that does: it is looked up."""
        cache = self._block_cache
        entry = cache.get(block)
        if entry is not None:
            return entry
        try:
            if (
                block
                and len(block) <= _CACHED_BLOCK_BYTES
                and not block.translate(None, _NOT_ONE_BYTE_INDEXED)
            ):
                get = self._decoder.header_table.get_by_index
                entry = [tuple(get(byte & 0x7F) for byte in block), _UNCHECKED]
                if len(cache) >= 64:
                    cache.clear()
                cache[block] = entry
                return entry
            headers = tuple(self._decoder.decode(block, raw=True))
        except OversizedHeaderListError:
            raise H2ProtocolError(ENHANCE_YOUR_CALM, "header list far too large") from None
        except (HPACKError, IndexError, ValueError, UnicodeDecodeError):
            raise H2ProtocolError(COMPRESSION_ERROR, "bad HPACK header block") from None
        cache.clear()  # the block may have changed the dynamic table
        return [headers, _UNCHECKED]

    def _on_header_block(self, stream_id: int, flags: int, block: bytes, events: list) -> None:
        entry = self._decode(block)
        headers = entry[0]
        ended = bool(flags & END_STREAM)
        stream = self._streams.get(stream_id)
        if stream is not None:
            if flags & _SELF_DEPENDENT:
                raise StreamError(stream_id, PROTOCOL_ERROR)
            self._on_trailers(stream_id, stream, ended, headers, events)
            return
        if stream_id % 2 == 0:
            raise H2ProtocolError(PROTOCOL_ERROR, "a client stream id must be odd")
        if stream_id <= self.highest_inbound_stream_id:
            # Decoded already, for the tables' sake; then answered by how the stream closed.
            if not self._on_closed_stream(stream_id, "HEADERS"):
                raise H2ProtocolError(PROTOCOL_ERROR, "a new stream id must be higher")
            self._count_control()
            return
        self.highest_inbound_stream_id = stream_id
        stream = self._streams[stream_id] = _Stream(
            self._remote_initial_window, self.initial_window
        )
        check = entry[1]
        if check == _UNCHECKED:
            check = entry[1] = check_request(headers, self._max_header_list_size)
        if check is None or flags & _SELF_DEPENDENT:
            raise StreamError(stream_id, PROTOCOL_ERROR)
        content_length, too_large = check
        if content_length >= 0:
            if ended and content_length:
                raise StreamError(stream_id, PROTOCOL_ERROR)
            stream.content_length = content_length
        # The event itself: a reset in the same read marks it cancelled.
        if too_large:
            event = HeadersTooLarge(stream_id, ended)
        else:
            event = RequestReceived(stream_id, headers, ended)
        stream.announced = event
        events.append(event)
        if ended:
            self._end_remote(stream_id, stream, events)

    def _on_trailers(
        self, stream_id: int, stream: _Stream, ended: bool, headers, events: list
    ) -> None:
        if not stream.remote_open:
            raise StreamError(stream_id, STREAM_CLOSED)
        if not ended or not valid_trailers(headers):
            raise StreamError(stream_id, PROTOCOL_ERROR)
        if stream.content_length >= 0 and stream.received != stream.content_length:
            raise StreamError(stream_id, PROTOCOL_ERROR)
        events.append(TrailersReceived(stream_id, list(headers)))
        self._end_remote(stream_id, stream, events)

    def _on_window_update(self, stream_id: int, payload: bytes, events: list) -> None:
        if len(payload) != 4:
            raise H2ProtocolError(FRAME_SIZE_ERROR, "WINDOW_UPDATE must be 4 bytes")
        increment = _U32.unpack(payload)[0] & 0x7FFFFFFF
        self._window_update_credit -= 1
        if self._window_update_credit < 0:
            raise H2ProtocolError(ENHANCE_YOUR_CALM, "too many WINDOW_UPDATE frames")
        if stream_id == 0:
            if increment == 0:
                raise H2ProtocolError(PROTOCOL_ERROR, "WINDOW_UPDATE of 0")
            self._conn_send_window += increment
            if self._conn_send_window > MAX_WINDOW:
                raise H2ProtocolError(FLOW_CONTROL_ERROR, "connection window over 2^31-1")
            events.append(WindowUpdated(0, increment))
            return
        stream = self._streams.get(stream_id)
        if stream is None:
            if stream_id > self.highest_inbound_stream_id:
                raise H2ProtocolError(PROTOCOL_ERROR, "WINDOW_UPDATE on an idle stream")
            return  # a closed stream: nothing to send there any more
        if increment == 0:
            raise StreamError(stream_id, PROTOCOL_ERROR)
        stream.send_window += increment
        if stream.send_window > MAX_WINDOW:
            raise StreamError(stream_id, FLOW_CONTROL_ERROR)
        events.append(WindowUpdated(stream_id, increment))

    def _on_settings(self, flags: int, stream_id: int, payload: bytes, events: list) -> None:
        if stream_id != 0:
            raise H2ProtocolError(PROTOCOL_ERROR, "SETTINGS on a stream")
        if flags & ACK:
            if payload:
                raise H2ProtocolError(FRAME_SIZE_ERROR, "SETTINGS ACK with a payload")
            return
        if len(payload) % 6:
            raise H2ProtocolError(FRAME_SIZE_ERROR, "SETTINGS length not a multiple of 6")
        self._count_control(1 + len(payload) // 60)  # one more per 10 entries
        changed = {}
        initial_window = -1
        for offset in range(0, len(payload), 6):
            code, value = _SETTING.unpack_from(payload, offset)
            if code == INITIAL_WINDOW_SIZE:
                if value > MAX_WINDOW:
                    raise H2ProtocolError(FLOW_CONTROL_ERROR, "initial window over 2^31-1")
                initial_window = value  # applied once, after the loop (see below)
            elif code == MAX_FRAME_SIZE:
                if not FRAME_SIZE <= value <= _MAX_FRAME_SIZE_LIMIT:
                    raise H2ProtocolError(PROTOCOL_ERROR, "bad SETTINGS_MAX_FRAME_SIZE")
                self.max_outbound_frame_size = value
            elif code in (ENABLE_PUSH, ENABLE_CONNECT_PROTOCOL):
                if value > 1:
                    raise H2ProtocolError(PROTOCOL_ERROR, f"setting {code} must be 0 or 1")
            elif code == HEADER_TABLE_SIZE:
                self.encoder.header_table_size = value
            changed[code] = value
        if initial_window >= 0:
            # Once per frame, not per entry: a frame of 2,730 entries would otherwise walk
            # every open stream 2,730 times.
            delta = initial_window - self._remote_initial_window
            self._remote_initial_window = initial_window
            if delta:
                for stream in self._streams.values():
                    stream.send_window += delta
                    if stream.send_window > MAX_WINDOW:
                        raise H2ProtocolError(FLOW_CONTROL_ERROR, "stream window over 2^31-1")
        self._out.append(_frame(SETTINGS, ACK, 0))
        events.append(RemoteSettingsChanged(changed))
