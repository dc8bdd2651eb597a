"""Frame-level conformance of the server-side HTTP/2 engine (RFC 9113, RFC 7541, RFC 8441).

Two kinds of peer drive the engine here. Well-formed traffic comes from a real h2 client
(``h2.connection.H2Connection``), whose events show what the engine put on the wire.
Malformed traffic, which h2 refuses to produce, is written byte by byte: the client
preface, then frames built with hyperframe or packed by hand; what the engine sends back
is parsed into hyperframe frames.
"""

from __future__ import annotations

import random
import struct

import pytest
from h2 import events as h2_events
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.errors import ErrorCodes
from hpack import Decoder, Encoder
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    PriorityFrame,
    RstStreamFrame,
    SettingsFrame,
    WindowUpdateFrame,
)

from dispa.proxy.http2.engine import (
    ConnectionTerminated,
    DataReceived,
    H2ProtocolError,
    H2ServerEngine,
    HeadersTooLarge,
    RemoteSettingsChanged,
    RequestReceived,
    StreamClosedError,
    StreamEnded,
    StreamReset,
    TrailersReceived,
    WindowUpdated,
)
from dispa.proxy.http2.hpack import LiteralEncoder

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# Frame types and flags (RFC 9113 6).
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS = 0x0, 0x1, 0x2, 0x3, 0x4
PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = 0x5, 0x6, 0x7, 0x8, 0x9
END_STREAM = ACK = 0x1
END_HEADERS, PADDED, PRIORITY_FLAG = 0x4, 0x8, 0x20

# Setting identifiers (RFC 9113 6.5.2, RFC 8441 3).
HEADER_TABLE_SIZE, ENABLE_PUSH, MAX_CONCURRENT_STREAMS = 0x1, 0x2, 0x3
INITIAL_WINDOW_SIZE, MAX_FRAME_SIZE, MAX_HEADER_LIST_SIZE = 0x4, 0x5, 0x6
ENABLE_CONNECT_PROTOCOL = 0x8

MAX_WINDOW = 2**31 - 1

GET = [
    (b":method", b"GET"),
    (b":scheme", b"https"),
    (b":path", b"/"),
    (b":authority", b"example.com"),
]
POST = [
    (b":method", b"POST"),
    (b":scheme", b"https"),
    (b":path", b"/upload"),
    (b":authority", b"example.com"),
]


# --- helpers -------------------------------------------------------------------------


def make_engine(
    *,
    max_concurrent_streams: int = 100,
    initial_window: int = 65535,
    max_header_list_size: int = 16384,
    encoder=None,
    **flood_limits: int,
) -> H2ServerEngine:
    engine = H2ServerEngine(
        max_concurrent_streams=max_concurrent_streams,
        initial_window=initial_window,
        max_header_list_size=max_header_list_size,
        encoder=encoder if encoder is not None else LiteralEncoder(),
        **flood_limits,
    )
    engine.initiate_connection()
    return engine


def raw_frame(frame_type: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    """A frame packed by hand, for frames hyperframe (or h2) would refuse to build."""
    header = struct.pack(">I", len(payload))[1:] + bytes((frame_type, flags))
    return header + struct.pack(">I", stream_id) + payload


def settings_payload(settings: dict[int, int]) -> bytes:
    return b"".join(struct.pack(">HI", key, value) for key, value in settings.items())


def client_preface(settings: dict[int, int] | None = None) -> bytes:
    """The connection preface, the client's SETTINGS, and its ACK of ours."""
    return (
        PREFACE
        + raw_frame(SETTINGS, 0, 0, settings_payload(settings or {}))
        + raw_frame(SETTINGS, ACK, 0)
    )


def parse_frames(data: bytes) -> list[Frame]:
    """Every frame in ``data``, which must end on a frame boundary."""
    frames, view, offset = [], memoryview(data), 0
    while offset < len(data):
        assert len(data) - offset >= 9, "a partial frame header was sent"
        frame, length = Frame.parse_frame_header(view[offset : offset + 9])
        assert len(data) - offset - 9 >= length, "a partial frame body was sent"
        frame.parse_body(view[offset + 9 : offset + 9 + length])
        frames.append(frame)
        offset += 9 + length
    return frames


def frame_lengths(data: bytes) -> list[tuple[int, int]]:
    """(type, payload length) of every frame in ``data``."""
    out, offset = [], 0
    while offset < len(data):
        length = int.from_bytes(data[offset : offset + 3], "big")
        out.append((data[offset + 3], length))
        offset += 9 + length
    return out


def headers_of(event) -> list[tuple[bytes, bytes]]:
    return [(bytes(name), bytes(value)) for name, value in event.headers]


def of_type(items, kind) -> list:
    return [item for item in items if isinstance(item, kind)]


def rst_codes(frames: list[Frame], stream_id: int) -> list[int]:
    return [f.error_code for f in of_type(frames, RstStreamFrame) if f.stream_id == stream_id]


def window_updates(frames: list[Frame], stream_id: int) -> list[int]:
    return [
        f.window_increment for f in of_type(frames, WindowUpdateFrame) if f.stream_id == stream_id
    ]


_ATTRIBUTES = {
    "RequestReceived": ("stream_id", "headers", "stream_ended"),
    "HeadersTooLarge": ("stream_id", "stream_ended"),
    "TrailersReceived": ("stream_id", "headers"),
    "DataReceived": ("stream_id", "data", "flow_controlled_length"),
    "StreamEnded": ("stream_id",),
    "StreamReset": ("stream_id", "error_code"),
    "WindowUpdated": ("stream_id", "delta"),
    "RemoteSettingsChanged": ("changed",),
    "ConnectionTerminated": ("error_code", "last_stream_id"),
}


def describe(event) -> tuple:
    """An event as plain values, to compare two runs."""
    name = type(event).__name__
    values = []
    for attribute in _ATTRIBUTES[name]:
        value = getattr(event, attribute)
        if attribute == "headers":
            value = headers_of(event)
        elif attribute == "changed":
            value = {int(k): getattr(v, "new_value", v) for k, v in value.items()}
        elif attribute == "data":
            value = bytes(value)
        values.append(value)
    return (name, *values)


def changed_value(event: RemoteSettingsChanged, setting: int) -> int:
    """The new value of one setting in a RemoteSettingsChanged (a plain int or h2-style)."""
    for key, value in event.changed.items():
        if int(key) == setting:
            return getattr(value, "new_value", value)
    raise AssertionError(f"setting {setting:#x} not reported in {event.changed!r}")


class RawClient:
    """A hand-written client: frames in as bytes, the engine's frames out parsed."""

    def __init__(self, settings: dict[int, int] | None = None, **engine_options) -> None:
        self.engine = make_engine(**engine_options)
        self.encoder = Encoder()
        self.opening_events = self.engine.receive_data(client_preface(settings))
        self.opening_frames = self.sent()

    def block(self, headers) -> bytes:
        return self.encoder.encode(headers)

    def headers(
        self, stream_id: int, headers=GET, *, end_stream: bool = True, flags: int = 0
    ) -> bytes:
        flags |= END_HEADERS | (END_STREAM if end_stream else 0)
        return raw_frame(HEADERS, flags, stream_id, self.block(headers))

    def data(self, stream_id: int, payload: bytes, *, end_stream: bool = False) -> bytes:
        return raw_frame(DATA, END_STREAM if end_stream else 0, stream_id, payload)

    def send(self, *frames: bytes) -> list:
        return self.engine.receive_data(b"".join(frames))

    def sent(self) -> list[Frame]:
        return parse_frames(self.engine.data_to_send())

    def open(self, stream_id: int = 1, headers=GET, *, end_stream: bool = False) -> list:
        events = self.send(self.headers(stream_id, headers, end_stream=end_stream))
        assert [describe(e)[:2] for e in of_type(events, RequestReceived)] == [
            ("RequestReceived", stream_id)
        ]
        self.sent()
        return events

    def connection_error(self, *frames: bytes) -> int:
        """Send ``frames``, expect a connection error, check its GOAWAY; the error code."""
        with pytest.raises(H2ProtocolError) as info:
            self.send(*frames)
        goaways = of_type(self.sent(), GoAwayFrame)
        assert len(goaways) == 1, "a connection error sends exactly one GOAWAY"
        assert goaways[0].error_code == info.value.error_code
        assert goaways[0].last_stream_id == self.engine.highest_inbound_stream_id
        return info.value.error_code


def pump(client: H2Connection, engine: H2ServerEngine) -> tuple[list, list]:
    """Move bytes both ways until neither side has anything to send."""
    server_events, client_events = [], []
    while True:
        outbound = client.data_to_send()
        if outbound:
            server_events += engine.receive_data(outbound)
        inbound = engine.data_to_send()
        if inbound:
            client_events += client.receive_data(inbound)
        if not outbound and not inbound:
            return server_events, client_events


def h2_pair(**engine_options) -> tuple[H2Connection, H2ServerEngine]:
    client = H2Connection(H2Configuration(client_side=True, header_encoding=None))
    client.initiate_connection()
    engine = make_engine(**engine_options)
    server_events, client_events = pump(client, engine)
    assert of_type(server_events, RemoteSettingsChanged)
    assert of_type(client_events, h2_events.SettingsAcknowledged)
    return client, engine


# --- the preface and SETTINGS ------------------------------------------------------------


def test_initial_settings_advertise_limits_and_extended_connect() -> None:
    engine = H2ServerEngine(
        max_concurrent_streams=7,
        initial_window=123456,
        max_header_list_size=9999,
        encoder=LiteralEncoder(),
    )
    engine.initiate_connection()
    frames = parse_frames(engine.data_to_send())
    assert isinstance(frames[0], SettingsFrame)
    assert "ACK" not in frames[0].flags
    assert frames[0].settings[MAX_CONCURRENT_STREAMS] == 7
    assert frames[0].settings[INITIAL_WINDOW_SIZE] == 123456
    assert frames[0].settings[MAX_HEADER_LIST_SIZE] == 9999
    assert frames[0].settings[ENABLE_CONNECT_PROTOCOL] == 1  # RFC 8441 3
    assert engine.data_to_send() == b""  # the queue was emptied


@pytest.mark.parametrize(
    "opening",
    [
        b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
        b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n",
        b"PRI * HTTP/1.1\r\n\r\nSM\r\n\r\n",
    ],
)
def test_bad_client_preface_is_a_protocol_error(opening: bytes) -> None:
    engine = make_engine()
    engine.data_to_send()
    with pytest.raises(H2ProtocolError) as info:
        engine.receive_data(opening + raw_frame(SETTINGS, 0, 0))
    assert info.value.error_code == ErrorCodes.PROTOCOL_ERROR
    goaways = of_type(parse_frames(engine.data_to_send()), GoAwayFrame)
    assert [g.error_code for g in goaways] == [ErrorCodes.PROTOCOL_ERROR]


def test_bad_preface_fed_byte_by_byte_is_caught() -> None:
    engine = make_engine()
    engine.data_to_send()
    bad = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\r"  # the last byte is wrong
    with pytest.raises(H2ProtocolError) as info:
        for i in range(len(bad)):
            assert engine.receive_data(bad[i : i + 1]) == []
    assert info.value.error_code == ErrorCodes.PROTOCOL_ERROR


@pytest.mark.parametrize(
    "first_frame",
    [
        raw_frame(PING, 0, 0, b"12345678"),
        raw_frame(SETTINGS, ACK, 0),  # an ACK is not the client's SETTINGS
        raw_frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 100)),
    ],
    ids=["ping", "settings-ack", "window-update"],
)
def test_first_frame_not_a_settings_frame_is_a_protocol_error(first_frame: bytes) -> None:
    engine = make_engine()
    engine.data_to_send()
    with pytest.raises(H2ProtocolError) as info:
        engine.receive_data(PREFACE + first_frame)
    assert info.value.error_code == ErrorCodes.PROTOCOL_ERROR
    assert of_type(parse_frames(engine.data_to_send()), GoAwayFrame)


def test_client_settings_are_acknowledged_and_reported() -> None:
    engine = make_engine()
    engine.data_to_send()
    events = engine.receive_data(
        PREFACE + raw_frame(SETTINGS, 0, 0, settings_payload({MAX_CONCURRENT_STREAMS: 50}))
    )
    changed = of_type(events, RemoteSettingsChanged)
    assert len(changed) == 1
    assert changed_value(changed[0], MAX_CONCURRENT_STREAMS) == 50
    acks = [f for f in parse_frames(engine.data_to_send()) if isinstance(f, SettingsFrame)]
    assert len(acks) == 1 and "ACK" in acks[0].flags and acks[0].settings == {}


def test_every_later_settings_frame_is_acknowledged_and_reported() -> None:
    peer = RawClient()
    events = peer.send(raw_frame(SETTINGS, 0, 0, settings_payload({MAX_FRAME_SIZE: 20000})))
    assert changed_value(of_type(events, RemoteSettingsChanged)[0], MAX_FRAME_SIZE) == 20000
    assert peer.engine.max_outbound_frame_size == 20000
    acks = of_type(peer.sent(), SettingsFrame)
    assert len(acks) == 1 and "ACK" in acks[0].flags


def test_settings_ack_from_the_client_is_not_answered() -> None:
    peer = RawClient()
    events = peer.send(raw_frame(SETTINGS, ACK, 0))
    assert of_type(events, RemoteSettingsChanged) == []
    assert peer.sent() == []  # an ACK is never acknowledged


def test_unknown_setting_is_ignored() -> None:
    # RFC 9113 6.5.2: an unknown or unsupported identifier MUST be ignored.
    peer = RawClient()
    peer.send(raw_frame(SETTINGS, 0, 0, settings_payload({0x99: 12345})))
    acks = of_type(peer.sent(), SettingsFrame)
    assert len(acks) == 1 and "ACK" in acks[0].flags


def test_client_header_table_size_reaches_the_encoder() -> None:
    # RFC 7541 4.2: our encoder must keep within the client's decoder table size.
    class SpyEncoder(LiteralEncoder):
        __slots__ = ("sizes",)

        def __init__(self) -> None:
            super().__init__()
            self.sizes = []

        @property
        def header_table_size(self) -> int:
            return 0

        @header_table_size.setter
        def header_table_size(self, value: int) -> None:
            self.sizes.append(value)
            self._announce_size = True

    spy = SpyEncoder()
    RawClient(settings={HEADER_TABLE_SIZE: 100}, encoder=spy)
    assert spy.sizes and spy.sizes[-1] == 100


def test_settings_length_not_a_multiple_of_six_is_a_frame_size_error() -> None:
    peer = RawClient()
    payload = settings_payload({MAX_CONCURRENT_STREAMS: 10}) + b"\x00"
    code = peer.connection_error(raw_frame(SETTINGS, 0, 0, payload))
    assert code == ErrorCodes.FRAME_SIZE_ERROR


def test_settings_ack_with_a_payload_is_a_frame_size_error() -> None:
    peer = RawClient()
    code = peer.connection_error(raw_frame(SETTINGS, ACK, 0, settings_payload({ENABLE_PUSH: 0})))
    assert code == ErrorCodes.FRAME_SIZE_ERROR


@pytest.mark.parametrize(
    ("setting", "value", "expected"),
    [
        (ENABLE_PUSH, 2, ErrorCodes.PROTOCOL_ERROR),
        (MAX_FRAME_SIZE, 16383, ErrorCodes.PROTOCOL_ERROR),
        (MAX_FRAME_SIZE, 16777216, ErrorCodes.PROTOCOL_ERROR),
        (ENABLE_CONNECT_PROTOCOL, 2, ErrorCodes.PROTOCOL_ERROR),
        (INITIAL_WINDOW_SIZE, MAX_WINDOW + 1, ErrorCodes.FLOW_CONTROL_ERROR),
    ],
    ids=[
        "enable-push-2",
        "max-frame-size-too-small",
        "max-frame-size-too-large",
        "connect-protocol-2",
        "initial-window-too-large",
    ],
)
def test_setting_out_of_range_is_a_connection_error(setting, value, expected) -> None:
    peer = RawClient()
    code = peer.connection_error(raw_frame(SETTINGS, 0, 0, settings_payload({setting: value})))
    assert code == expected


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        (MAX_FRAME_SIZE, 16384),
        (MAX_FRAME_SIZE, 16777215),
        (INITIAL_WINDOW_SIZE, MAX_WINDOW),
        (ENABLE_PUSH, 0),
    ],
)
def test_setting_at_the_edge_of_its_range_is_accepted(setting, value) -> None:
    peer = RawClient()
    events = peer.send(raw_frame(SETTINGS, 0, 0, settings_payload({setting: value})))
    assert changed_value(of_type(events, RemoteSettingsChanged)[0], setting) == value
    assert of_type(peer.sent(), GoAwayFrame) == []


def test_settings_on_a_stream_is_a_protocol_error() -> None:
    peer = RawClient()
    code = peer.connection_error(raw_frame(SETTINGS, 0, 1, settings_payload({ENABLE_PUSH: 0})))
    assert code == ErrorCodes.PROTOCOL_ERROR


# --- frame sizes and stream-0 rules ------------------------------------------------------


def test_frame_longer_than_16384_is_a_frame_size_error() -> None:
    peer = RawClient()
    peer.open(1, POST)
    code = peer.connection_error(peer.data(1, b"x" * 16385))
    assert code == ErrorCodes.FRAME_SIZE_ERROR


def test_frame_of_exactly_16384_bytes_is_accepted() -> None:
    peer = RawClient()
    peer.open(1, POST)
    events = peer.send(peer.data(1, b"x" * 16384))
    received = of_type(events, DataReceived)
    assert sum(len(e.data) for e in received) == 16384
    assert of_type(peer.sent(), GoAwayFrame) == []


@pytest.mark.parametrize(
    "frame",
    [
        raw_frame(DATA, 0, 0, b"hello"),
        raw_frame(HEADERS, END_HEADERS | END_STREAM, 0, b"\x82\x87\x84"),
        raw_frame(PRIORITY, 0, 0, struct.pack(">IB", 1, 15)),
        raw_frame(RST_STREAM, 0, 0, struct.pack(">I", ErrorCodes.CANCEL)),
        raw_frame(CONTINUATION, END_HEADERS, 0, b"\x82"),
    ],
    ids=["data", "headers", "priority", "rst-stream", "continuation"],
)
def test_stream_frame_on_stream_zero_is_a_protocol_error(frame: bytes) -> None:
    peer = RawClient()
    assert peer.connection_error(frame) == ErrorCodes.PROTOCOL_ERROR


@pytest.mark.parametrize(
    "frame",
    [
        raw_frame(PING, 0, 1, b"12345678"),
        raw_frame(GOAWAY, 0, 1, struct.pack(">II", 0, 0)),
    ],
    ids=["ping", "goaway"],
)
def test_connection_frame_on_a_stream_is_a_protocol_error(frame: bytes) -> None:
    peer = RawClient()
    assert peer.connection_error(frame) == ErrorCodes.PROTOCOL_ERROR


def test_unknown_frame_types_are_ignored() -> None:
    # RFC 9113 5.5: unknown types are ignored, on stream 0 and on streams alike.
    peer = RawClient()
    events = peer.send(
        raw_frame(0xFA, 0xFF, 0, b"whatever"),
        raw_frame(0x21, 0, 7, b"\x00" * 40),
        raw_frame(PING, 0, 0, b"afterall"),
    )
    assert events == []
    frames = peer.sent()
    assert [type(f) for f in frames] == [PingFrame]
    assert frames[0].opaque_data == b"afterall"  # the stream still parses after them


# --- PING, GOAWAY ------------------------------------------------------------------------


def test_ping_is_answered_with_an_ack_of_the_same_bytes() -> None:
    peer = RawClient()
    assert peer.send(raw_frame(PING, 0, 0, b"\x01\x02\x03\x04\x05\x06\x07\x08")) == []
    frames = peer.sent()
    assert len(frames) == 1 and isinstance(frames[0], PingFrame)
    assert "ACK" in frames[0].flags
    assert frames[0].opaque_data == b"\x01\x02\x03\x04\x05\x06\x07\x08"


def test_ping_ack_from_the_client_is_not_answered() -> None:
    peer = RawClient()
    assert peer.send(raw_frame(PING, ACK, 0, b"abcdefgh")) == []
    assert peer.sent() == []


@pytest.mark.parametrize("length", [0, 7, 9])
def test_ping_of_the_wrong_length_is_a_frame_size_error(length: int) -> None:
    peer = RawClient()
    code = peer.connection_error(raw_frame(PING, 0, 0, b"p" * length))
    assert code == ErrorCodes.FRAME_SIZE_ERROR


def test_goaway_shorter_than_eight_bytes_is_a_frame_size_error() -> None:
    peer = RawClient()
    code = peer.connection_error(raw_frame(GOAWAY, 0, 0, struct.pack(">I", 0)))
    assert code == ErrorCodes.FRAME_SIZE_ERROR


def test_open_streams_still_work_after_a_client_goaway() -> None:
    # RFC 9113 6.8: GOAWAY stops new streams, while "still finishing processing of
    # previously established streams"; a client's GOAWAY only refuses pushed streams
    # above its last stream id, so its own stream 1 may still send and be answered.
    peer = RawClient()
    peer.open(1, POST)
    events = peer.send(
        raw_frame(GOAWAY, 0, 0, struct.pack(">II", 0, ErrorCodes.NO_ERROR)),
        peer.data(1, b"rest of the body", end_stream=True),
    )
    assert [describe(e) for e in events] == [
        ("ConnectionTerminated", ErrorCodes.NO_ERROR, 0),
        ("DataReceived", 1, b"rest of the body", 16),
        ("StreamEnded", 1),
    ]
    peer.engine.send_headers(1, [(b":status", b"200")])
    peer.engine.send_data(1, b"answer", end_stream=True)
    frames = peer.sent()
    assert [type(f) for f in frames] == [HeadersFrame, DataFrame]
    assert frames[1].data == b"answer" and "END_STREAM" in frames[1].flags


def test_client_goaway_is_reported_not_an_error() -> None:
    peer = RawClient()
    peer.open(1)
    events = peer.send(
        raw_frame(GOAWAY, 0, 0, struct.pack(">II", 0, ErrorCodes.ENHANCE_YOUR_CALM) + b"dbg")
    )
    terminated = of_type(events, ConnectionTerminated)
    assert [(e.error_code, e.last_stream_id) for e in terminated] == [
        (ErrorCodes.ENHANCE_YOUR_CALM, 0)
    ]
    assert of_type(peer.sent(), GoAwayFrame) == []  # we do not answer it with our own error


def test_engine_goaway_queues_a_goaway_frame() -> None:
    peer = RawClient()
    peer.open(1)
    peer.open(3)
    peer.engine.goaway(3, ErrorCodes.NO_ERROR)
    goaways = of_type(peer.sent(), GoAwayFrame)
    assert [(g.last_stream_id, g.error_code) for g in goaways] == [(3, ErrorCodes.NO_ERROR)]


def test_connection_error_goaway_names_the_highest_inbound_stream() -> None:
    peer = RawClient()
    peer.open(1)
    peer.open(5)
    assert peer.engine.highest_inbound_stream_id == 5
    with pytest.raises(H2ProtocolError):
        peer.send(raw_frame(PING, 0, 3, b"12345678"))
    goaways = of_type(peer.sent(), GoAwayFrame)
    assert [(g.last_stream_id, g.error_code) for g in goaways] == [(5, ErrorCodes.PROTOCOL_ERROR)]


def test_nothing_is_processed_after_a_connection_error() -> None:
    peer = RawClient()
    with pytest.raises(H2ProtocolError):
        peer.send(raw_frame(PING, 0, 0, b"short"))
    peer.sent()
    # A valid request and a PING after the error: no events, no PING ACK.
    assert peer.send(peer.headers(1), raw_frame(PING, 0, 0, b"12345678")) == []
    assert peer.sent() == []


def test_frames_after_the_bad_one_in_the_same_read_are_not_processed() -> None:
    peer = RawClient()
    with pytest.raises(H2ProtocolError):
        peer.send(raw_frame(DATA, 0, 0, b"x"), raw_frame(PING, 0, 0, b"12345678"))
    frames = peer.sent()
    assert of_type(frames, PingFrame) == []
    assert len(of_type(frames, GoAwayFrame)) == 1


# --- WINDOW_UPDATE and RST_STREAM framing ------------------------------------------------


@pytest.mark.parametrize("length", [3, 5])
def test_window_update_of_the_wrong_length_is_a_frame_size_error(length: int) -> None:
    peer = RawClient()
    code = peer.connection_error(raw_frame(WINDOW_UPDATE, 0, 0, b"\x00\x00\x00\x01\x00"[:length]))
    assert code == ErrorCodes.FRAME_SIZE_ERROR


@pytest.mark.parametrize("length", [3, 5])
def test_rst_stream_of_the_wrong_length_is_a_frame_size_error(length: int) -> None:
    peer = RawClient()
    peer.open(1)
    code = peer.connection_error(raw_frame(RST_STREAM, 0, 1, b"\x00\x00\x00\x08\x00"[:length]))
    assert code == ErrorCodes.FRAME_SIZE_ERROR


def test_connection_window_update_of_zero_is_a_protocol_error() -> None:
    peer = RawClient()
    code = peer.connection_error(raw_frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 0)))
    assert code == ErrorCodes.PROTOCOL_ERROR


def test_connection_send_window_past_the_maximum_is_a_flow_control_error() -> None:
    peer = RawClient()
    # 65535 + (2^31 - 65535) = 2^31: one past the largest window.
    increment = MAX_WINDOW - 65535 + 1
    code = peer.connection_error(raw_frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", increment)))
    assert code == ErrorCodes.FLOW_CONTROL_ERROR


def test_connection_send_window_up_to_the_maximum_is_accepted() -> None:
    peer = RawClient()
    peer.open(1)
    events = peer.send(raw_frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", MAX_WINDOW - 65535)))
    assert [describe(e) for e in events] == [("WindowUpdated", 0, MAX_WINDOW - 65535)]
    assert of_type(peer.sent(), GoAwayFrame) == []


@pytest.mark.parametrize(
    "frame",
    [
        raw_frame(DATA, 0, 1, b"data"),
        raw_frame(WINDOW_UPDATE, 0, 1, struct.pack(">I", 100)),
        raw_frame(RST_STREAM, 0, 1, struct.pack(">I", ErrorCodes.CANCEL)),
    ],
    ids=["data", "window-update", "rst-stream"],
)
def test_frame_on_an_idle_stream_is_a_protocol_error(frame: bytes) -> None:
    peer = RawClient()
    assert peer.connection_error(frame) == ErrorCodes.PROTOCOL_ERROR


def test_data_on_a_stream_above_the_highest_opened_is_a_protocol_error() -> None:
    peer = RawClient()
    peer.open(1, POST)
    assert peer.connection_error(peer.data(3, b"early")) == ErrorCodes.PROTOCOL_ERROR


def test_stream_window_update_of_zero_is_a_stream_error() -> None:
    peer = RawClient()
    peer.open(1)
    events = peer.send(raw_frame(WINDOW_UPDATE, 0, 1, struct.pack(">I", 0)))
    assert [describe(e) for e in of_type(events, StreamReset)] == [
        ("StreamReset", 1, ErrorCodes.PROTOCOL_ERROR)
    ]
    frames = peer.sent()
    assert rst_codes(frames, 1) == [ErrorCodes.PROTOCOL_ERROR]
    assert of_type(frames, GoAwayFrame) == []


def test_stream_send_window_past_the_maximum_is_a_stream_flow_control_error() -> None:
    peer = RawClient()
    peer.open(1)
    increment = MAX_WINDOW - 65535 + 1
    events = peer.send(raw_frame(WINDOW_UPDATE, 0, 1, struct.pack(">I", increment)))
    assert [describe(e) for e in of_type(events, StreamReset)] == [
        ("StreamReset", 1, ErrorCodes.FLOW_CONTROL_ERROR)
    ]
    frames = peer.sent()
    assert rst_codes(frames, 1) == [ErrorCodes.FLOW_CONTROL_ERROR]
    assert of_type(frames, GoAwayFrame) == []
    # The connection goes on.
    assert of_type(peer.send(peer.headers(3)), RequestReceived)


def test_window_update_on_a_closed_stream_is_not_an_error() -> None:
    # RFC 9113 6.9: WINDOW_UPDATE can arrive after END_STREAM; it must not be an error.
    peer = RawClient()
    peer.open(1, end_stream=True)
    peer.engine.send_headers(1, [(b":status", b"204")], end_stream=True)
    peer.sent()
    peer.send(raw_frame(WINDOW_UPDATE, 0, 1, struct.pack(">I", 100)))
    assert of_type(peer.sent(), GoAwayFrame) == []


def test_client_reset_is_reported_and_closes_the_stream_to_sending() -> None:
    peer = RawClient()
    peer.open(1)
    events = peer.send(raw_frame(RST_STREAM, 0, 1, struct.pack(">I", ErrorCodes.CANCEL)))
    assert [describe(e) for e in events] == [("StreamReset", 1, ErrorCodes.CANCEL)]
    assert peer.sent() == []  # a reset is never answered with a reset
    with pytest.raises(StreamClosedError):
        peer.engine.send_headers(1, [(b":status", b"200")])
    with pytest.raises(StreamClosedError):
        peer.engine.send_data(1, b"late")


# --- requests: HEADERS and CONTINUATION --------------------------------------------------


def test_request_with_end_stream_is_received_then_ended() -> None:
    peer = RawClient()
    events = peer.send(peer.headers(1, GET, end_stream=True))
    assert [describe(e) for e in events] == [
        ("RequestReceived", 1, GET, True),
        ("StreamEnded", 1),
    ]
    assert peer.engine.highest_inbound_stream_id == 1


def test_request_body_arrives_as_data_then_stream_ended() -> None:
    peer = RawClient()
    events = peer.send(
        peer.headers(1, POST, end_stream=False),
        peer.data(1, b"hello "),
        peer.data(1, b"world", end_stream=True),
    )
    assert [describe(e) for e in events] == [
        ("RequestReceived", 1, POST, False),
        ("DataReceived", 1, b"hello ", 6),
        ("DataReceived", 1, b"world", 5),
        ("StreamEnded", 1),
    ]


def test_empty_data_frame_with_end_stream_ends_the_stream() -> None:
    peer = RawClient()
    peer.open(1, POST)
    events = peer.send(peer.data(1, b"", end_stream=True))
    assert of_type(events, StreamEnded) and of_type(events, StreamEnded)[0].stream_id == 1
    assert all(len(e.data) == 0 for e in of_type(events, DataReceived))


def test_padded_headers_with_priority_are_decoded() -> None:
    peer = RawClient()
    frame = HeadersFrame(1, data=peer.block(GET), flags=["END_HEADERS", "END_STREAM"])
    frame.flags.add("PADDED")
    frame.pad_length = 10
    frame.flags.add("PRIORITY")
    frame.depends_on, frame.stream_weight, frame.exclusive = 0, 200, False
    events = peer.send(frame.serialize())
    assert [describe(e) for e in events] == [
        ("RequestReceived", 1, GET, True),
        ("StreamEnded", 1),
    ]


def test_headers_padding_as_long_as_the_payload_is_a_protocol_error() -> None:
    peer = RawClient()
    block = peer.block(GET)
    # Pad Length counts the whole rest of the payload and one more: too long.
    payload = bytes((len(block) + 1,)) + block
    code = peer.connection_error(raw_frame(HEADERS, END_HEADERS | PADDED, 1, payload))
    assert code == ErrorCodes.PROTOCOL_ERROR


def test_header_block_split_across_continuation_frames_is_decoded() -> None:
    peer = RawClient()
    headers = [*GET, (b"x-long", b"v" * 300)]
    block = peer.block(headers)
    first, second, third = block[:5], block[5:200], block[200:]
    events = peer.send(
        raw_frame(HEADERS, END_STREAM, 1, first),
        raw_frame(CONTINUATION, 0, 1, second),
        raw_frame(CONTINUATION, END_HEADERS, 1, third),
    )
    assert [describe(e) for e in events] == [
        ("RequestReceived", 1, headers, True),
        ("StreamEnded", 1),
    ]


def test_other_frame_inside_a_header_block_is_a_protocol_error() -> None:
    peer = RawClient()
    block = peer.block(GET)
    code = peer.connection_error(
        raw_frame(HEADERS, END_STREAM, 1, block[:3]),
        raw_frame(PING, 0, 0, b"12345678"),
        raw_frame(CONTINUATION, END_HEADERS, 1, block[3:]),
    )
    assert code == ErrorCodes.PROTOCOL_ERROR


def test_unknown_frame_inside_a_header_block_is_a_protocol_error() -> None:
    # RFC 9113 6.10: any frame but CONTINUATION of that stream, unknown types included.
    peer = RawClient()
    block = peer.block(GET)
    code = peer.connection_error(
        raw_frame(HEADERS, END_STREAM, 1, block[:3]),
        raw_frame(0xFA, 0, 0, b""),
    )
    assert code == ErrorCodes.PROTOCOL_ERROR


def test_continuation_of_another_stream_inside_a_header_block_is_a_protocol_error() -> None:
    peer = RawClient()
    block = peer.block(GET)
    code = peer.connection_error(
        raw_frame(HEADERS, END_STREAM, 1, block[:3]),
        raw_frame(CONTINUATION, END_HEADERS, 3, block[3:]),
    )
    assert code == ErrorCodes.PROTOCOL_ERROR


def test_continuation_without_an_open_header_block_is_a_protocol_error() -> None:
    peer = RawClient()
    peer.open(1)
    code = peer.connection_error(raw_frame(CONTINUATION, END_HEADERS, 1, peer.block(GET)))
    assert code == ErrorCodes.PROTOCOL_ERROR


def test_end_stream_on_a_continuation_frame_means_nothing() -> None:
    # RFC 9113 6.10: CONTINUATION defines only END_HEADERS; END_STREAM comes from HEADERS.
    peer = RawClient()
    block = peer.block(POST)
    events = peer.send(
        raw_frame(HEADERS, 0, 1, block[:2]),
        raw_frame(CONTINUATION, END_HEADERS | END_STREAM, 1, block[2:]),
    )
    assert [describe(e) for e in events] == [("RequestReceived", 1, POST, False)]


def test_reserved_bit_of_the_stream_id_is_ignored() -> None:
    # RFC 9113 4.1: the reserved bit MUST be ignored when receiving.
    peer = RawClient()
    events = peer.send(raw_frame(HEADERS, END_HEADERS | END_STREAM, 0x80000001, peer.block(GET)))
    assert [describe(e)[:2] for e in events] == [("RequestReceived", 1), ("StreamEnded", 1)]
    assert peer.engine.highest_inbound_stream_id == 1


def test_headers_with_priority_flag_too_short_for_it_is_a_frame_size_error() -> None:
    peer = RawClient()
    code = peer.connection_error(raw_frame(HEADERS, END_HEADERS | PRIORITY_FLAG, 1, b"\x00\x00"))
    assert code == ErrorCodes.FRAME_SIZE_ERROR


def test_content_length_with_end_stream_on_headers_is_a_stream_error() -> None:
    # RFC 9113 8.1.1: content-length 5 and no body at all.
    peer = RawClient()
    events = peer.send(peer.headers(1, [*POST, (b"content-length", b"5")], end_stream=True))
    assert of_type(events, RequestReceived) == []
    frames = peer.sent()
    assert rst_codes(frames, 1) == [ErrorCodes.PROTOCOL_ERROR]
    assert of_type(frames, GoAwayFrame) == []


def test_content_length_zero_with_end_stream_on_headers_is_accepted() -> None:
    peer = RawClient()
    headers = [*POST, (b"content-length", b"0")]
    events = peer.send(peer.headers(1, headers, end_stream=True))
    assert [describe(e) for e in events] == [
        ("RequestReceived", 1, headers, True),
        ("StreamEnded", 1),
    ]


def test_trailers_after_a_body_shorter_than_content_length_are_a_stream_error() -> None:
    peer = RawClient()
    peer.open(1, [*POST, (b"content-length", b"10")])
    events = peer.send(peer.data(1, b"01234"), peer.headers(1, [(b"x-t", b"1")]))
    assert of_type(events, TrailersReceived) == []
    assert [describe(e) for e in of_type(events, StreamReset)] == [
        ("StreamReset", 1, ErrorCodes.PROTOCOL_ERROR)
    ]
    assert rst_codes(peer.sent(), 1) == [ErrorCodes.PROTOCOL_ERROR]


def test_headers_on_an_even_stream_is_a_protocol_error() -> None:
    peer = RawClient()
    assert peer.connection_error(peer.headers(2)) == ErrorCodes.PROTOCOL_ERROR


def test_headers_on_a_new_stream_below_the_highest_is_a_protocol_error() -> None:
    peer = RawClient()
    peer.open(5)
    assert peer.connection_error(peer.headers(3)) == ErrorCodes.PROTOCOL_ERROR


def test_headers_on_a_normally_closed_stream_is_a_stream_closed_error() -> None:
    peer = RawClient()
    peer.open(1, end_stream=True)
    peer.engine.send_headers(1, [(b":status", b"200")], end_stream=True)
    peer.sent()
    assert peer.connection_error(peer.headers(1)) == ErrorCodes.STREAM_CLOSED


def test_headers_on_a_half_closed_remote_stream_is_a_stream_closed_error() -> None:
    # RFC 9113 5.1: in half-closed (remote), frames other than WINDOW_UPDATE, PRIORITY and
    # RST_STREAM are a stream error of type STREAM_CLOSED.
    peer = RawClient()
    peer.open(1, end_stream=True)
    events = peer.send(peer.headers(1, [(b"x-trailer", b"1")], end_stream=True))
    assert of_type(events, TrailersReceived) == []
    assert [describe(e) for e in of_type(events, StreamReset)] == [
        ("StreamReset", 1, ErrorCodes.STREAM_CLOSED)
    ]
    assert rst_codes(peer.sent(), 1) == [ErrorCodes.STREAM_CLOSED]


def test_headers_on_a_stream_we_reset_are_ignored_but_keep_hpack_in_step() -> None:
    peer = RawClient()
    peer.open(1, POST)
    peer.engine.reset_stream(1, ErrorCodes.CANCEL)
    assert rst_codes(peer.sent(), 1) == [ErrorCodes.CANCEL]
    # hpack's encoder indexes x-trace: the next block refers to it by dynamic index only.
    trailers = [(b"x-trace", b"abc123"), (b"x-other", b"zzz")]
    assert peer.send(peer.headers(1, trailers, end_stream=True)) == []
    request = [*GET, (b"x-trace", b"abc123"), (b"x-other", b"zzz")]
    events = peer.send(peer.headers(3, request))
    assert [describe(e) for e in events] == [
        ("RequestReceived", 3, request, True),
        ("StreamEnded", 3),
    ]
    assert of_type(peer.sent(), GoAwayFrame) == []


def test_hpack_dynamic_table_carries_across_requests() -> None:
    peer = RawClient()
    request = [*GET, (b"cookie", b"session=abc"), (b"x-custom", b"value")]
    first = peer.send(peer.headers(1, request))
    second = peer.send(peer.headers(3, request))  # now mostly dynamic-table indexes
    assert headers_of(first[0]) == request
    assert headers_of(second[0]) == request


def test_push_promise_from_the_client_is_a_protocol_error() -> None:
    peer = RawClient()
    peer.open(1)
    payload = struct.pack(">I", 2) + peer.block(GET)
    code = peer.connection_error(raw_frame(PUSH_PROMISE, END_HEADERS, 1, payload))
    assert code == ErrorCodes.PROTOCOL_ERROR


@pytest.mark.parametrize(
    "block",
    [
        b"\x80",  # indexed field 0: RFC 7541 6.1 says a decoding error
        b"\xbe",  # index 62 with an empty dynamic table
        b"\xff\x80\x01",  # index 255: far past both tables
        b"\x3f\xe1\xff\xff\xff\x0f",  # a table size update far above SETTINGS_HEADER_TABLE_SIZE
    ],
    ids=["index-0", "index-62", "index-255", "table-size-too-large"],
)
def test_bad_hpack_block_is_a_compression_error(block: bytes) -> None:
    peer = RawClient()
    code = peer.connection_error(raw_frame(HEADERS, END_HEADERS | END_STREAM, 1, block))
    assert code == ErrorCodes.COMPRESSION_ERROR


# --- malformed requests are stream errors ------------------------------------------------

MALFORMED_REQUESTS = {
    "uppercase-name": [*GET, (b"X-Foo", b"1")],
    "connection": [*GET, (b"connection", b"close")],
    "keep-alive": [*GET, (b"keep-alive", b"timeout=5")],
    "proxy-connection": [*GET, (b"proxy-connection", b"keep-alive")],
    "transfer-encoding": [*GET, (b"transfer-encoding", b"chunked")],
    "upgrade": [*GET, (b"upgrade", b"websocket")],
    "te-gzip": [*GET, (b"te", b"gzip")],
    "pseudo-after-regular": [*GET[:3], (b"accept", b"*/*"), GET[3]],
    "unknown-pseudo": [*GET, (b":foo", b"bar")],
    "duplicate-path": [*GET, (b":path", b"/again")],
    "duplicate-method": [(b":method", b"GET"), *GET],
    "missing-method": GET[1:],
    "missing-scheme": [GET[0], *GET[2:]],
    "missing-path": [*GET[:2], GET[3]],
    "empty-path": [*GET[:2], (b":path", b""), GET[3]],
    "protocol-without-connect": [*GET, (b":protocol", b"websocket")],
    "status-in-request": [*GET, (b":status", b"200")],
    "nul-in-value": [*GET, (b"x-a", b"a\x00b")],
    "cr-in-value": [*GET, (b"x-a", b"a\rb")],
    "lf-in-value": [*GET, (b"x-a", b"a\nb")],
    "leading-space": [*GET, (b"x-a", b" a")],
    "trailing-space": [*GET, (b"x-a", b"a ")],
    "leading-tab": [*GET, (b"x-a", b"\ta")],
    "trailing-tab": [*GET, (b"x-a", b"a\t")],
    "connect-with-path": [
        (b":method", b"CONNECT"),
        (b":authority", b"example.com:443"),
        (b":path", b"/"),
    ],
    "connect-with-scheme": [
        (b":method", b"CONNECT"),
        (b":authority", b"example.com:443"),
        (b":scheme", b"https"),
    ],
    "connect-without-authority": [(b":method", b"CONNECT")],
}


@pytest.mark.parametrize("end_stream", [True, False], ids=["ended", "open"])
@pytest.mark.parametrize("headers", MALFORMED_REQUESTS.values(), ids=MALFORMED_REQUESTS.keys())
def test_malformed_request_is_reset_not_received(headers, end_stream: bool) -> None:
    peer = RawClient()
    events = peer.send(peer.headers(1, headers, end_stream=end_stream))
    assert of_type(events, RequestReceived) == []
    assert of_type(events, StreamEnded) == []
    frames = peer.sent()
    assert rst_codes(frames, 1) == [ErrorCodes.PROTOCOL_ERROR]
    assert of_type(frames, GoAwayFrame) == []
    # Only that stream: the next request on the same connection goes through.
    assert [describe(e)[:2] for e in peer.send(peer.headers(3))] == [
        ("RequestReceived", 3),
        ("StreamEnded", 3),
    ]


VALID_REQUESTS = {
    "te-trailers": [*GET, (b"te", b"trailers")],
    "inner-space": [*GET, (b"x-a", b"a b\tc")],
    "empty-value": [*GET, (b"x-empty", b"")],
    "no-authority": GET[:3],
    "options-asterisk": [(b":method", b"OPTIONS"), (b":scheme", b"https"), (b":path", b"*")],
    "connect": [(b":method", b"CONNECT"), (b":authority", b"example.com:443")],
    "extended-connect": [
        (b":method", b"CONNECT"),
        (b":protocol", b"websocket"),
        (b":scheme", b"https"),
        (b":path", b"/chat"),
        (b":authority", b"example.com"),
        (b"sec-websocket-version", b"13"),
    ],
}


@pytest.mark.parametrize("headers", VALID_REQUESTS.values(), ids=VALID_REQUESTS.keys())
def test_valid_request_is_received_with_its_headers_in_order(headers) -> None:
    peer = RawClient()
    events = peer.send(peer.headers(1, headers, end_stream=False))
    assert [describe(e) for e in events] == [("RequestReceived", 1, headers, False)]
    assert rst_codes(peer.sent(), 1) == []


def test_header_list_over_the_limit_is_headers_too_large() -> None:
    peer = RawClient(max_header_list_size=1000)
    events = peer.send(peer.headers(1, [*GET, (b"x-big", b"b" * 1500)]))
    assert of_type(events, RequestReceived) == []
    assert [describe(e) for e in of_type(events, HeadersTooLarge)] == [("HeadersTooLarge", 1, True)]
    assert of_type(peer.sent(), GoAwayFrame) == []
    # The stream exists: the application answers 431 on it.
    peer.engine.send_headers(1, [(b":status", b"431")], end_stream=True)
    replies = of_type(peer.sent(), HeadersFrame)
    assert [(f.stream_id, "END_STREAM" in f.flags) for f in replies] == [(1, True)]
    assert Decoder().decode(replies[0].data, raw=True) == [(b":status", b"431")]


def test_header_list_size_counts_32_octets_per_field() -> None:
    limit = 1000
    base = sum(len(n) + len(v) + 32 for n, v in GET)
    exactly = [*GET, (b"x-pad", b"p" * (limit - base - len(b"x-pad") - 32))]
    one_over = [*GET, (b"x-pad", b"p" * (limit - base - len(b"x-pad") - 32 + 1))]
    peer = RawClient(max_header_list_size=limit)
    at_limit = peer.send(peer.headers(1, exactly))
    assert [describe(e)[:2] for e in at_limit] == [("RequestReceived", 1), ("StreamEnded", 1)]
    over = peer.send(peer.headers(3, one_over, end_stream=False))
    assert [describe(e) for e in over] == [("HeadersTooLarge", 3, False)]


# --- trailers ----------------------------------------------------------------------------


def test_trailers_are_received_then_the_stream_ends() -> None:
    peer = RawClient()
    peer.open(1, POST)
    trailers = [(b"grpc-status", b"0"), (b"x-checksum", b"abc")]
    events = peer.send(peer.data(1, b"body"), peer.headers(1, trailers, end_stream=True))
    assert [describe(e) for e in events] == [
        ("DataReceived", 1, b"body", 4),
        ("TrailersReceived", 1, trailers),
        ("StreamEnded", 1),
    ]


@pytest.mark.parametrize(
    ("trailers", "end_stream"),
    [
        ([(b"x-checksum", b"abc")], False),
        ([(b":path", b"/x"), (b"x-checksum", b"abc")], True),
        ([(b":status", b"200")], True),
        ([(b"X-Checksum", b"abc")], True),
        ([(b"connection", b"close")], True),
        ([(b"x-checksum", b"abc\r\nx: y")], True),
    ],
    ids=["without-end-stream", "with-path", "with-status", "uppercase", "connection", "crlf"],
)
def test_malformed_trailers_are_a_stream_error(trailers, end_stream: bool) -> None:
    peer = RawClient()
    peer.open(1, POST)
    events = peer.send(peer.headers(1, trailers, end_stream=end_stream))
    assert of_type(events, TrailersReceived) == []
    assert [describe(e) for e in of_type(events, StreamReset)] == [
        ("StreamReset", 1, ErrorCodes.PROTOCOL_ERROR)
    ]
    frames = peer.sent()
    assert rst_codes(frames, 1) == [ErrorCodes.PROTOCOL_ERROR]
    assert of_type(frames, GoAwayFrame) == []


# --- DATA --------------------------------------------------------------------------------


def test_padded_data_reports_padding_in_the_flow_controlled_length() -> None:
    peer = RawClient()
    peer.open(1, POST)
    frame = DataFrame(1, data=b"payload", flags=["PADDED", "END_STREAM"])
    frame.pad_length = 20
    events = peer.send(frame.serialize())
    # 7 bytes of data + 20 of padding + the Pad Length byte itself.
    assert [describe(e) for e in events] == [
        ("DataReceived", 1, b"payload", 28),
        ("StreamEnded", 1),
    ]


@pytest.mark.parametrize("pad_length", [5, 6, 200])
def test_data_padding_not_shorter_than_the_payload_is_a_protocol_error(pad_length: int) -> None:
    peer = RawClient()
    peer.open(1, POST)
    payload = bytes((pad_length,)) + b"abcd"  # 5 bytes: Pad Length must be below 5
    code = peer.connection_error(raw_frame(DATA, PADDED, 1, payload))
    assert code == ErrorCodes.PROTOCOL_ERROR


def test_data_padding_of_all_but_the_pad_length_byte_is_accepted() -> None:
    peer = RawClient()
    peer.open(1, POST)
    events = peer.send(raw_frame(DATA, PADDED, 1, bytes((4,)) + b"\x00" * 4))
    received = of_type(events, DataReceived)
    assert [(bytes(e.data), e.flow_controlled_length) for e in received] == [(b"", 5)]


def test_data_after_the_client_ended_the_stream_is_a_stream_closed_error() -> None:
    peer = RawClient()
    peer.open(1, end_stream=True)
    events = peer.send(peer.data(1, b"late"))
    assert of_type(events, DataReceived) == []
    assert [describe(e) for e in of_type(events, StreamReset)] == [
        ("StreamReset", 1, ErrorCodes.STREAM_CLOSED)
    ]
    frames = peer.sent()
    assert rst_codes(frames, 1) == [ErrorCodes.STREAM_CLOSED]
    assert of_type(frames, GoAwayFrame) == []


def test_data_on_a_fully_closed_stream_is_a_stream_closed_connection_error() -> None:
    # RFC 9113 5.1 (closed), as RFC 7540 required and h2spec checks: the client ended the
    # stream itself, so no DATA of its can be in flight there.
    peer = RawClient()
    peer.open(1, end_stream=True)
    peer.engine.send_headers(1, [(b":status", b"200")], end_stream=True)
    peer.sent()
    assert peer.connection_error(peer.data(1, b"late")) == ErrorCodes.STREAM_CLOSED


def test_data_on_a_stream_we_reset_is_ignored() -> None:
    peer = RawClient()
    peer.open(1, POST)
    peer.engine.reset_stream(1, ErrorCodes.CANCEL)
    peer.sent()
    events = peer.send(peer.data(1, b"in flight"), peer.data(1, b"more", end_stream=True))
    assert events == []
    assert of_type(peer.sent(), GoAwayFrame) == []
    assert of_type(peer.send(peer.headers(3)), RequestReceived)


def test_body_and_trailers_of_a_malformed_request_are_ignored() -> None:
    # The client sent them before our RST_STREAM reached it: not a connection error.
    peer = RawClient()
    events = peer.send(
        peer.headers(1, [*POST, (b"Bad", b"1")], end_stream=False),
        peer.data(1, b"body"),
        peer.headers(1, [(b"x-trailer", b"1")], end_stream=True),
        peer.headers(3),
    )
    assert [describe(e)[:2] for e in events] == [("RequestReceived", 3), ("StreamEnded", 3)]
    frames = peer.sent()
    assert rst_codes(frames, 1) == [ErrorCodes.PROTOCOL_ERROR]
    assert of_type(frames, GoAwayFrame) == []


def test_rejected_data_is_given_back_to_the_connection_window() -> None:
    # DATA refused with a stream error reaches no application to acknowledge it; unless
    # the engine returns it, five such frames would use up the connection window.
    peer = RawClient()
    chunk, frames = b"x" * 16384, []
    for stream_id in (1, 3, 5, 7, 9):
        peer.open(stream_id, end_stream=True)
        events = peer.send(peer.data(stream_id, chunk))  # on a half-closed (remote) stream
        assert [describe(e) for e in of_type(events, StreamReset)] == [
            ("StreamReset", stream_id, ErrorCodes.STREAM_CLOSED)
        ]
        frames += peer.sent()
    assert sum(window_updates(frames, 0)) >= 2 * 16384
    peer.open(11, POST)
    events = peer.send(peer.data(11, chunk), peer.data(11, chunk))
    assert sum(e.flow_controlled_length for e in of_type(events, DataReceived)) == 2 * 16384
    assert of_type(peer.sent(), GoAwayFrame) == []


def test_data_on_a_reset_stream_is_given_back_to_the_connection_window() -> None:
    peer = RawClient()
    peer.open(1, POST)
    peer.engine.reset_stream(1, ErrorCodes.CANCEL)
    peer.sent()
    chunk = b"x" * 16384
    assert peer.send(*(peer.data(1, chunk) for _ in range(3))) == []
    assert sum(window_updates(peer.sent(), 0)) >= 32768


def test_client_reset_of_a_stream_we_already_reset_is_ignored() -> None:
    peer = RawClient()
    peer.open(1)
    peer.engine.reset_stream(1, ErrorCodes.CANCEL)
    peer.sent()
    assert peer.send(raw_frame(RST_STREAM, 0, 1, struct.pack(">I", ErrorCodes.CANCEL))) == []
    assert peer.sent() == []


def test_data_up_to_the_connection_window_is_accepted_and_one_byte_more_is_an_error() -> None:
    peer = RawClient()
    peer.open(1, POST)
    peer.open(3, POST)
    chunk = b"x" * 16384
    # 3 * 16384 + 16383 = 65535: exactly the connection window, each stream within its own.
    events = peer.send(
        peer.data(1, chunk), peer.data(1, chunk), peer.data(1, chunk), peer.data(3, chunk[:-1])
    )
    assert sum(e.flow_controlled_length for e in of_type(events, DataReceived)) == 65535
    assert of_type(peer.sent(), GoAwayFrame) == []
    assert peer.connection_error(peer.data(3, b"!")) == ErrorCodes.FLOW_CONTROL_ERROR


def test_data_past_the_stream_window_is_a_stream_flow_control_error() -> None:
    peer = RawClient(initial_window=1000)
    peer.open(1, POST)
    events = peer.send(peer.data(1, b"x" * 1000))
    assert sum(e.flow_controlled_length for e in of_type(events, DataReceived)) == 1000
    events = peer.send(peer.data(1, b"!"))
    assert of_type(events, DataReceived) == []
    assert [describe(e) for e in of_type(events, StreamReset)] == [
        ("StreamReset", 1, ErrorCodes.FLOW_CONTROL_ERROR)
    ]
    frames = peer.sent()
    assert rst_codes(frames, 1) == [ErrorCodes.FLOW_CONTROL_ERROR]
    assert of_type(frames, GoAwayFrame) == []


def test_content_length_matching_the_body_is_accepted() -> None:
    peer = RawClient()
    peer.open(1, [*POST, (b"content-length", b"10")])
    events = peer.send(peer.data(1, b"01234"), peer.data(1, b"56789", end_stream=True))
    assert [describe(e)[0] for e in events] == ["DataReceived", "DataReceived", "StreamEnded"]
    assert rst_codes(peer.sent(), 1) == []


def test_body_longer_than_content_length_is_a_stream_error() -> None:
    peer = RawClient()
    peer.open(1, [*POST, (b"content-length", b"10")])
    events = peer.send(peer.data(1, b"0123456789A"))
    assert of_type(events, StreamEnded) == []
    assert [describe(e) for e in of_type(events, StreamReset)] == [
        ("StreamReset", 1, ErrorCodes.PROTOCOL_ERROR)
    ]
    assert rst_codes(peer.sent(), 1) == [ErrorCodes.PROTOCOL_ERROR]


def test_body_shorter_than_content_length_is_a_stream_error() -> None:
    peer = RawClient()
    peer.open(1, [*POST, (b"content-length", b"10")])
    events = peer.send(peer.data(1, b"01234", end_stream=True))
    assert of_type(events, StreamEnded) == []
    assert [describe(e) for e in of_type(events, StreamReset)] == [
        ("StreamReset", 1, ErrorCodes.PROTOCOL_ERROR)
    ]
    assert rst_codes(peer.sent(), 1) == [ErrorCodes.PROTOCOL_ERROR]


# --- PRIORITY ----------------------------------------------------------------------------


@pytest.mark.parametrize("length", [4, 6])
def test_priority_of_the_wrong_length_is_a_stream_frame_size_error(length: int) -> None:
    peer = RawClient()
    peer.open(1)
    events = peer.send(raw_frame(PRIORITY, 0, 1, b"\x00\x00\x00\x00\x10\x00"[:length]))
    assert [describe(e) for e in of_type(events, StreamReset)] == [
        ("StreamReset", 1, ErrorCodes.FRAME_SIZE_ERROR)
    ]
    frames = peer.sent()
    assert rst_codes(frames, 1) == [ErrorCodes.FRAME_SIZE_ERROR]
    assert of_type(frames, GoAwayFrame) == []


def test_priority_depending_on_its_own_stream_is_a_stream_error() -> None:
    peer = RawClient()
    peer.open(1)
    events = peer.send(PriorityFrame(1, depends_on=1, stream_weight=15).serialize())
    assert [describe(e) for e in of_type(events, StreamReset)] == [
        ("StreamReset", 1, ErrorCodes.PROTOCOL_ERROR)
    ]
    frames = peer.sent()
    assert rst_codes(frames, 1) == [ErrorCodes.PROTOCOL_ERROR]
    assert of_type(frames, GoAwayFrame) == []


def test_headers_depending_on_its_own_stream_is_a_stream_error() -> None:
    peer = RawClient()
    frame = HeadersFrame(1, data=peer.block(GET), flags=["END_HEADERS", "END_STREAM", "PRIORITY"])
    frame.depends_on, frame.stream_weight = 1, 15
    events = peer.send(frame.serialize())
    frames = peer.sent()
    assert rst_codes(frames, 1) == [ErrorCodes.PROTOCOL_ERROR]
    assert of_type(frames, GoAwayFrame) == []
    if of_type(events, RequestReceived):  # announced, so its reset must be too
        assert ("StreamReset", 1, ErrorCodes.PROTOCOL_ERROR) in [describe(e) for e in events]
    assert of_type(peer.send(peer.headers(3)), RequestReceived)


def test_priority_on_an_idle_stream_is_ignored_and_does_not_open_it() -> None:
    peer = RawClient()
    events = peer.send(PriorityFrame(7, depends_on=0, stream_weight=100).serialize())
    assert events == []
    assert peer.sent() == []
    assert peer.engine.highest_inbound_stream_id == 0
    # Stream 3 is still a valid new stream: 7 was never opened.
    assert [describe(e)[:2] for e in peer.send(peer.headers(3))] == [
        ("RequestReceived", 3),
        ("StreamEnded", 3),
    ]


def test_priority_on_an_open_stream_is_ignored() -> None:
    peer = RawClient()
    peer.open(1, POST)
    assert (
        peer.send(PriorityFrame(1, depends_on=0, stream_weight=1, exclusive=True).serialize()) == []
    )
    assert peer.sent() == []
    assert of_type(peer.send(peer.data(1, b"still open")), DataReceived)


# --- sending -----------------------------------------------------------------------------


def test_response_headers_data_and_end_stream_reach_the_client() -> None:
    client, engine = h2_pair()
    client.send_headers(1, GET, end_stream=True)
    pump(client, engine)
    engine.send_headers(1, [(b":status", b"200"), (b"content-type", b"text/plain")])
    engine.send_data(1, b"hello")
    engine.end_stream(1)
    _, events = pump(client, engine)
    response = of_type(events, h2_events.ResponseReceived)
    assert [(e.stream_id, list(e.headers)) for e in response] == [
        (1, [(b":status", b"200"), (b"content-type", b"text/plain")])
    ]
    assert b"".join(e.data for e in of_type(events, h2_events.DataReceived)) == b"hello"
    assert [e.stream_id for e in of_type(events, h2_events.StreamEnded)] == [1]


def test_end_stream_is_an_empty_data_frame_with_end_stream() -> None:
    peer = RawClient()
    peer.open(1, end_stream=True)
    peer.engine.send_headers(1, [(b":status", b"200")])
    peer.sent()
    peer.engine.end_stream(1)
    frames = peer.sent()
    assert len(frames) == 1 and isinstance(frames[0], DataFrame)
    assert frames[0].stream_id == 1 and frames[0].data == b""
    assert "END_STREAM" in frames[0].flags


def test_sending_on_a_stream_we_ended_raises_stream_closed_error() -> None:
    peer = RawClient()
    peer.open(1, end_stream=False)
    peer.engine.send_headers(1, [(b":status", b"200")], end_stream=True)
    peer.sent()
    with pytest.raises(StreamClosedError):
        peer.engine.send_data(1, b"more")
    with pytest.raises(StreamClosedError):
        peer.engine.send_headers(1, [(b"x-trailer", b"1")], end_stream=True)
    with pytest.raises(StreamClosedError):
        peer.engine.end_stream(1)
    assert peer.sent() == []  # nothing was queued for the refused calls


def test_sending_on_a_stream_we_reset_raises_stream_closed_error() -> None:
    peer = RawClient()
    peer.open(1)
    peer.engine.reset_stream(1, ErrorCodes.REFUSED_STREAM)
    assert rst_codes(peer.sent(), 1) == [ErrorCodes.REFUSED_STREAM]
    with pytest.raises(StreamClosedError):
        peer.engine.send_headers(1, [(b":status", b"200")])
    with pytest.raises(StreamClosedError):
        peer.engine.send_data(1, b"x")


def test_sending_on_a_never_opened_stream_raises_stream_closed_error() -> None:
    peer = RawClient()
    with pytest.raises(StreamClosedError):
        peer.engine.send_headers(1, [(b":status", b"200")])
    with pytest.raises(StreamClosedError):
        peer.engine.send_data(3, b"x")
    with pytest.raises(StreamClosedError):
        peer.engine.reset_stream(5, ErrorCodes.CANCEL)
    assert peer.sent() == []


def test_stream_closed_error_is_an_h2_protocol_error() -> None:
    assert issubclass(StreamClosedError, H2ProtocolError)


def test_large_response_header_block_is_split_into_continuation_frames() -> None:
    client, engine = h2_pair()
    client.send_headers(1, GET, end_stream=True)
    pump(client, engine)
    big = [(b":status", b"200"), (b"x-big", b"v" * 40000), (b"x-after", b"1")]
    engine.send_headers(1, big, end_stream=True)
    wire = engine.data_to_send()
    frames = parse_frames(wire)
    assert isinstance(frames[0], HeadersFrame) and "END_HEADERS" not in frames[0].flags
    assert all(isinstance(f, ContinuationFrame) for f in frames[1:])
    assert "END_HEADERS" in frames[-1].flags
    assert all(length <= 16384 for _, length in frame_lengths(wire))
    events = client.receive_data(wire)
    response = of_type(events, h2_events.ResponseReceived)
    assert [list(e.headers) for e in response] == [big]
    assert of_type(events, h2_events.StreamEnded)


def test_response_data_never_goes_out_above_the_clients_max_frame_size() -> None:
    # RFC 9113 4.2: no frame above the peer's SETTINGS_MAX_FRAME_SIZE. The engine may split
    # the data or refuse it (leaving the chunking to its caller), but not send it whole.
    client, engine = h2_pair()
    client.send_headers(1, GET, end_stream=True)
    pump(client, engine)
    engine.send_headers(1, [(b":status", b"200")])
    engine.data_to_send()
    try:
        engine.send_data(1, b"d" * 40000, end_stream=True)
    except H2ProtocolError:
        assert engine.data_to_send() == b""  # refused: nothing half-queued
        return
    wire = engine.data_to_send()
    assert all(length <= 16384 for _, length in frame_lengths(wire))
    events = client.receive_data(wire)
    assert sum(len(e.data) for e in of_type(events, h2_events.DataReceived)) == 40000


def test_data_of_exactly_the_max_frame_size_reaches_the_client() -> None:
    client, engine = h2_pair()
    client.send_headers(1, GET, end_stream=True)
    pump(client, engine)
    assert engine.max_outbound_frame_size == 16384
    engine.send_headers(1, [(b":status", b"200")])
    engine.send_data(1, b"d" * 16384)
    engine.send_data(1, b"e" * 16384, end_stream=True)
    _, events = pump(client, engine)
    received = b"".join(e.data for e in of_type(events, h2_events.DataReceived))
    assert received == b"d" * 16384 + b"e" * 16384
    assert of_type(events, h2_events.ConnectionTerminated) == []
    assert [e.stream_id for e in of_type(events, h2_events.StreamEnded)] == [1]


def test_larger_client_max_frame_size_allows_larger_frames() -> None:
    peer = RawClient(settings={MAX_FRAME_SIZE: 32768})
    assert peer.engine.max_outbound_frame_size == 32768
    peer.open(1, end_stream=True)
    peer.engine.send_headers(1, [(b":status", b"200")])
    peer.engine.send_data(1, b"d" * 30000, end_stream=True)
    wire = peer.engine.data_to_send()
    assert [length for kind, length in frame_lengths(wire) if kind == DATA] == [30000]


# --- send-side flow control --------------------------------------------------------------


def test_send_windows_start_at_defaults_and_send_data_uses_them() -> None:
    peer = RawClient()
    peer.open(1, end_stream=True)
    assert peer.engine.local_flow_control_window(1) == 65535
    peer.engine.send_headers(1, [(b":status", b"200")])
    peer.engine.send_data(1, b"x" * 1000)
    assert peer.engine.local_flow_control_window(1) == 64535
    peer.open(3, end_stream=True)
    # Stream 3 has its whole window; the connection's is what limits it.
    assert peer.engine.local_flow_control_window(3) == 64535


def test_new_stream_send_window_is_the_clients_initial_window_size() -> None:
    peer = RawClient(settings={INITIAL_WINDOW_SIZE: 30000})
    peer.open(1, end_stream=True)
    assert peer.engine.local_flow_control_window(1) == 30000


def test_initial_window_size_does_not_change_the_connection_window() -> None:
    # RFC 9113 6.9.2: SETTINGS_INITIAL_WINDOW_SIZE applies to streams only.
    peer = RawClient(settings={INITIAL_WINDOW_SIZE: 1_000_000})
    peer.open(1, end_stream=True)
    assert peer.engine.local_flow_control_window(1) == 65535
    peer.send(raw_frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 500_000)))
    assert peer.engine.local_flow_control_window(1) == 565535


def test_window_updates_raise_the_send_windows() -> None:
    peer = RawClient()
    peer.open(1, end_stream=True)
    events = peer.send(raw_frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 100000)))
    assert [describe(e) for e in events] == [("WindowUpdated", 0, 100000)]
    assert peer.engine.local_flow_control_window(1) == 65535  # now the stream limits
    events = peer.send(raw_frame(WINDOW_UPDATE, 0, 1, struct.pack(">I", 5000)))
    assert [(e.stream_id, e.delta) for e in of_type(events, WindowUpdated)] == [(1, 5000)]
    assert len(events) == 1
    assert peer.engine.local_flow_control_window(1) == 70535


def test_initial_window_size_change_moves_open_streams_and_can_go_negative() -> None:
    peer = RawClient()
    peer.open(1, end_stream=True)
    peer.send(raw_frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 1_000_000)))
    peer.send(raw_frame(SETTINGS, 0, 0, settings_payload({INITIAL_WINDOW_SIZE: 1000})))
    assert peer.engine.local_flow_control_window(1) == 1000
    peer.engine.send_headers(1, [(b":status", b"200")])
    peer.engine.send_data(1, b"x" * 600)
    assert peer.engine.local_flow_control_window(1) == 400
    peer.send(raw_frame(SETTINGS, 0, 0, settings_payload({INITIAL_WINDOW_SIZE: 100})))
    assert peer.engine.local_flow_control_window(1) == -500  # RFC 9113 6.9.2
    # A WINDOW_UPDATE brings it back above zero.
    peer.send(raw_frame(WINDOW_UPDATE, 0, 1, struct.pack(">I", 700)))
    assert peer.engine.local_flow_control_window(1) == 200


def test_initial_window_size_change_overflowing_an_open_stream_is_a_flow_control_error() -> None:
    peer = RawClient()
    peer.open(1, end_stream=True)
    peer.send(raw_frame(WINDOW_UPDATE, 0, 1, struct.pack(">I", MAX_WINDOW - 65535)))
    assert peer.engine.local_flow_control_window(1) == 65535  # the connection limits it
    code = peer.connection_error(
        raw_frame(SETTINGS, 0, 0, settings_payload({INITIAL_WINDOW_SIZE: 65536}))
    )
    assert code == ErrorCodes.FLOW_CONTROL_ERROR


# --- receive-side flow control -----------------------------------------------------------


def test_acknowledging_half_a_window_sends_stream_and_connection_updates() -> None:
    peer = RawClient()
    peer.open(1, POST)
    peer.send(
        peer.data(1, b"a" * 16384),
        peer.data(1, b"b" * 16384),
        peer.data(1, b"c" * 7232),
    )
    peer.engine.acknowledge_received_data(20000, 1)
    assert peer.sent() == []  # 20000 < 65535 // 2
    peer.engine.acknowledge_received_data(20000, 1)
    frames = peer.sent()
    assert window_updates(frames, 1) == [40000]
    assert window_updates(frames, 0) == [40000]


def test_connection_and_stream_windows_are_managed_separately() -> None:
    peer = RawClient(initial_window=10000)
    peer.open(1, POST)
    peer.send(peer.data(1, b"x" * 6000))
    peer.engine.acknowledge_received_data(6000, 1)
    frames = peer.sent()
    # The stream's 10000-byte window is past half; the connection's 65535 is not.
    assert window_updates(frames, 1) == [6000]
    assert window_updates(frames, 0) == []


def test_an_exhausted_stream_window_is_reopened_after_a_small_acknowledgement() -> None:
    peer = RawClient(initial_window=2000)
    peer.open(1, POST)
    peer.send(peer.data(1, b"x" * 2000))  # the stream window is now 0
    peer.engine.acknowledge_received_data(400, 1)
    assert window_updates(peer.sent(), 1) == []  # 400 is under min(1024, 2000 // 4)
    peer.engine.acknowledge_received_data(200, 1)
    frames = peer.sent()
    assert window_updates(frames, 1) == [600]
    assert window_updates(frames, 0) == []


def test_no_stream_window_update_once_the_client_has_ended_the_stream() -> None:
    peer = RawClient()
    peer.open(1, POST)
    peer.send(peer.data(1, b"x" * 16384), peer.data(1, b"y" * 16384, end_stream=True))
    peer.engine.acknowledge_received_data(32768, 1)
    frames = peer.sent()
    assert window_updates(frames, 1) == []
    assert window_updates(frames, 0) == [32768]


def test_increment_flow_control_window_queues_a_connection_window_update() -> None:
    peer = RawClient()
    peer.engine.increment_flow_control_window(100000)
    assert window_updates(peer.sent(), 0) == [100000]
    # The client may now send past the default connection window.
    peer.open(1, POST)
    peer.open(3, POST)
    chunk = b"x" * 16384
    events = peer.send(
        *(peer.data(1, chunk) for _ in range(3)), *(peer.data(3, chunk) for _ in range(3))
    )
    assert sum(e.flow_controlled_length for e in of_type(events, DataReceived)) == 6 * 16384
    assert of_type(peer.sent(), GoAwayFrame) == []


# --- byte-split robustness ---------------------------------------------------------------


def busy_conversation() -> bytes:
    """A connection's worth of client bytes touching most frame types and paths."""
    encoder = Encoder()

    def headers(stream_id: int, block: bytes, flags: int) -> bytes:
        return raw_frame(HEADERS, flags, stream_id, block)

    request = [*POST, (b"content-type", b"application/json"), (b"x-long", b"L" * 500)]
    block = encoder.encode(request)
    padded = DataFrame(1, data=b"padded body", flags=["PADDED"])
    padded.pad_length = 9
    priority_headers = HeadersFrame(3, data=encoder.encode(GET), flags=["END_HEADERS"])
    for flag in ("END_STREAM", "PRIORITY", "PADDED"):
        priority_headers.flags.add(flag)
    priority_headers.depends_on, priority_headers.stream_weight, priority_headers.pad_length = (
        1,
        50,
        3,
    )
    return b"".join(
        [
            client_preface({MAX_CONCURRENT_STREAMS: 10, INITIAL_WINDOW_SIZE: 100000}),
            headers(1, block[:100], 0),
            raw_frame(CONTINUATION, 0, 1, block[100:300]),
            raw_frame(CONTINUATION, END_HEADERS, 1, block[300:]),
            padded.serialize(),
            raw_frame(DATA, 0, 1, b"x" * 5000),
            raw_frame(PING, 0, 0, b"pingpong"),
            raw_frame(0xFA, 0, 1, b"unknown"),
            PriorityFrame(9, depends_on=0, stream_weight=10).serialize(),
            priority_headers.serialize(),
            headers(1, encoder.encode([(b"x-trailer", b"done")]), END_HEADERS | END_STREAM),
            headers(5, encoder.encode([*GET, (b"Bad-Name", b"1")]), END_HEADERS | END_STREAM),
            headers(7, encoder.encode([*POST, (b"x-trailer", b"done")]), END_HEADERS),
            raw_frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 1000)),
            raw_frame(WINDOW_UPDATE, 0, 7, struct.pack(">I", 2000)),
            raw_frame(DATA, END_STREAM, 7, b"end"),
            raw_frame(RST_STREAM, 0, 7, struct.pack(">I", ErrorCodes.CANCEL)),
            raw_frame(SETTINGS, 0, 0, settings_payload({MAX_FRAME_SIZE: 20000})),
            raw_frame(GOAWAY, 0, 0, struct.pack(">II", 7, ErrorCodes.NO_ERROR)),
        ]
    )


def run_split(wire: bytes, sizes) -> tuple[list, bytes]:
    engine = make_engine()
    out = engine.data_to_send()
    events, offset = [], 0
    for size in sizes:
        if offset >= len(wire):
            break
        events += engine.receive_data(wire[offset : offset + size])
        out += engine.data_to_send()
        offset += size
    if offset < len(wire):
        events += engine.receive_data(wire[offset:])
        out += engine.data_to_send()
    return [describe(e) for e in events], out


def test_busy_conversation_gives_the_expected_events() -> None:
    events, out = run_split(busy_conversation(), [])
    names = [e[:2] for e in events if e[0] != "RemoteSettingsChanged"]
    assert names == [
        ("RequestReceived", 1),
        ("DataReceived", 1),
        ("DataReceived", 1),
        ("RequestReceived", 3),
        ("StreamEnded", 3),
        ("TrailersReceived", 1),
        ("StreamEnded", 1),
        ("RequestReceived", 7),
        ("WindowUpdated", 0),
        ("WindowUpdated", 7),
        ("DataReceived", 7),
        ("StreamEnded", 7),
        ("StreamReset", 7),
        ("ConnectionTerminated", ErrorCodes.NO_ERROR),
    ]
    frames = parse_frames(out)
    assert rst_codes(frames, 5) == [ErrorCodes.PROTOCOL_ERROR]
    assert [f.opaque_data for f in of_type(frames, PingFrame)] == [b"pingpong"]
    assert of_type(frames, GoAwayFrame) == []


def test_feeding_one_byte_at_a_time_gives_the_same_events() -> None:
    wire = busy_conversation()
    whole_events, whole_out = run_split(wire, [])
    byte_events, byte_out = run_split(wire, [1] * len(wire))
    assert byte_events == whole_events
    assert parse_frames(byte_out) and byte_out == whole_out


@pytest.mark.parametrize("seed", range(5))
def test_feeding_random_splits_gives_the_same_events(seed: int) -> None:
    wire = busy_conversation()
    rng = random.Random(seed)
    sizes = [rng.choice([1, 2, 3, 7, 9, 10, 24, 100, 4096]) for _ in range(len(wire))]
    whole_events, whole_out = run_split(wire, [])
    split_events, split_out = run_split(wire, sizes)
    assert split_events == whole_events
    assert split_out == whole_out


def test_connection_error_is_found_when_fed_one_byte_at_a_time() -> None:
    engine = make_engine()
    engine.data_to_send()
    wire = client_preface() + raw_frame(PING, 0, 0, b"1234567")  # 7 bytes: a bad PING
    with pytest.raises(H2ProtocolError) as info:
        for i in range(len(wire)):
            engine.receive_data(wire[i : i + 1])
    assert info.value.error_code == ErrorCodes.FRAME_SIZE_ERROR
    assert of_type(parse_frames(engine.data_to_send()), GoAwayFrame)


# --- end to end with a real h2 client ----------------------------------------------------


def test_request_with_body_and_trailers_and_response_with_trailers() -> None:
    client, engine = h2_pair()
    client.send_headers(1, [*POST, (b"te", b"trailers")])
    client.send_data(1, b"request body")
    client.send_headers(1, [(b"x-req-trailer", b"yes")], end_stream=True)
    server_events, _ = pump(client, engine)
    assert [describe(e) for e in server_events] == [
        ("RequestReceived", 1, [*POST, (b"te", b"trailers")], False),
        ("DataReceived", 1, b"request body", 12),
        ("TrailersReceived", 1, [(b"x-req-trailer", b"yes")]),
        ("StreamEnded", 1),
    ]
    engine.acknowledge_received_data(12, 1)
    engine.send_headers(1, [(b":status", b"200"), (b"content-type", b"application/grpc")])
    engine.send_data(1, b"response body")
    engine.send_headers(1, [(b"grpc-status", b"0")], end_stream=True)
    _, client_events = pump(client, engine)
    assert [type(e) for e in client_events] == [
        h2_events.ResponseReceived,
        h2_events.DataReceived,
        h2_events.TrailersReceived,
        h2_events.StreamEnded,
    ]
    assert client_events[1].data == b"response body"
    assert list(client_events[2].headers) == [(b"grpc-status", b"0")]


def test_concurrent_streams_interleave() -> None:
    client, engine = h2_pair()
    for stream_id in (1, 3, 5):
        client.send_headers(stream_id, POST)
    for stream_id in (5, 1, 3):
        client.send_data(stream_id, f"body {stream_id}".encode(), end_stream=True)
    server_events, _ = pump(client, engine)
    bodies = {e.stream_id: bytes(e.data) for e in of_type(server_events, DataReceived)}
    assert bodies == {1: b"body 1", 3: b"body 3", 5: b"body 5"}
    assert sorted(e.stream_id for e in of_type(server_events, StreamEnded)) == [1, 3, 5]
    assert engine.highest_inbound_stream_id == 5
    for stream_id in (3, 5, 1):
        engine.send_headers(stream_id, [(b":status", b"200")])
    for stream_id in (1, 3, 5):
        engine.send_data(stream_id, f"reply {stream_id}".encode(), end_stream=True)
    _, client_events = pump(client, engine)
    replies = {e.stream_id: e.data for e in of_type(client_events, h2_events.DataReceived)}
    assert replies == {1: b"reply 1", 3: b"reply 3", 5: b"reply 5"}
    assert sorted(e.stream_id for e in of_type(client_events, h2_events.StreamEnded)) == [1, 3, 5]


def test_ping_from_a_real_client_is_acknowledged() -> None:
    client, engine = h2_pair()
    client.ping(b"h2-ping!")
    server_events, client_events = pump(client, engine)
    assert server_events == []
    assert [e.ping_data for e in of_type(client_events, h2_events.PingAckReceived)] == [b"h2-ping!"]


def test_goaway_from_a_real_client_is_connection_terminated() -> None:
    client, engine = h2_pair()
    client.send_headers(1, GET, end_stream=True)
    pump(client, engine)
    client.close_connection(error_code=ErrorCodes.NO_ERROR, last_stream_id=0)
    server_events, _ = pump(client, engine)
    assert [describe(e) for e in server_events] == [
        ("ConnectionTerminated", ErrorCodes.NO_ERROR, 0)
    ]


def test_reset_and_goaway_from_the_engine_reach_a_real_client() -> None:
    client, engine = h2_pair()
    client.send_headers(1, GET, end_stream=True)
    client.send_headers(3, GET, end_stream=True)
    pump(client, engine)
    engine.reset_stream(1, ErrorCodes.REFUSED_STREAM)
    engine.send_headers(3, [(b":status", b"204")], end_stream=True)
    engine.goaway(3, ErrorCodes.NO_ERROR)
    _, client_events = pump(client, engine)
    resets = of_type(client_events, h2_events.StreamReset)
    assert [(e.stream_id, e.error_code) for e in resets] == [(1, ErrorCodes.REFUSED_STREAM)]
    assert [e.stream_id for e in of_type(client_events, h2_events.ResponseReceived)] == [3]
    terminated = of_type(client_events, h2_events.ConnectionTerminated)
    assert [(e.error_code, e.last_stream_id) for e in terminated] == [(ErrorCodes.NO_ERROR, 3)]


def test_real_client_flow_control_round_trip() -> None:
    # A body larger than the default windows only gets through if we give window back.
    client, engine = h2_pair()
    client.send_headers(1, POST)
    body = b"z" * 200_000
    sent, received = 0, 0
    for _ in range(100):
        if received == len(body):
            break
        room = min(client.local_flow_control_window(1), len(body) - sent)
        while room > 0:
            chunk = min(room, client.max_outbound_frame_size)
            client.send_data(1, body[sent : sent + chunk], end_stream=sent + chunk == len(body))
            sent += chunk
            room -= chunk
        server_events, _ = pump(client, engine)
        data_events = of_type(server_events, DataReceived)
        assert data_events or sent == len(body), "the client is stuck without window"
        for event in data_events:
            received += len(event.data)
            engine.acknowledge_received_data(event.flow_controlled_length, 1)
        pump(client, engine)
    assert received == len(body)
