"""Frames on closed streams (RFC 9113 5.1, 5.4.2, 6.1), and nothing sent on a stream once
the client's RST_STREAM for it has been read.

How a stream closed decides what a late DATA or HEADERS frame means:

- reset by the client: it sends nothing more there, so RST_STREAM(STREAM_CLOSED), once;
- reset by us: the client may have sent it before our reset reached it, so it is ignored
  (its DATA still counts against, and is given back to, the connection window);
- ended both ways: a connection error STREAM_CLOSED.
"""

from __future__ import annotations

import struct

import pytest
from h2.errors import ErrorCodes
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    GoAwayFrame,
    HeadersFrame,
    RstStreamFrame,
    WindowUpdateFrame,
)

from dispa.proxy.http2.engine import (
    H2ProtocolError,
    RequestReceived,
    StreamClosedError,
    StreamReset,
)
from tests.unit.proxy.test_h2_engine import (
    GET,
    MAX_FRAME_SIZE,
    POST,
    RST_STREAM,
    RawClient,
    describe,
    of_type,
    parse_frames,
    raw_frame,
    rst_codes,
    window_updates,
)


def rst(stream_id: int, code: int = ErrorCodes.CANCEL) -> bytes:
    return raw_frame(RST_STREAM, 0, stream_id, struct.pack(">I", code))


def on_stream(frames, stream_id: int) -> list:
    return [f for f in frames if f.stream_id == stream_id]


# ---------------------------------------------------------------- reset by the client


def test_data_on_a_stream_the_client_reset_is_answered_stream_closed_once() -> None:
    peer = RawClient()
    peer.open(1, POST)
    assert [describe(e) for e in peer.send(rst(1))] == [("StreamReset", 1, ErrorCodes.CANCEL)]
    assert peer.sent() == []
    events = peer.send(peer.data(1, b"after my own reset"))
    assert events == []  # the stream was already reported reset
    frames = peer.sent()
    assert rst_codes(frames, 1) == [ErrorCodes.STREAM_CLOSED]
    assert of_type(frames, GoAwayFrame) == []
    # Answered once (5.4.2): what it still sends there is ignored.
    assert peer.send(peer.data(1, b"more"), peer.data(1, b"", end_stream=True)) == []
    assert rst_codes(peer.sent(), 1) == []
    # The connection goes on.
    assert of_type(peer.send(peer.headers(3)), RequestReceived)


def test_headers_on_a_stream_the_client_reset_are_answered_stream_closed() -> None:
    peer = RawClient()
    peer.open(1, POST)
    peer.send(rst(1))
    peer.sent()
    # hpack's encoder indexes x-trace: the next block only refers to it, so the late block
    # must still be decoded for the tables' sake.
    trailers = [(b"x-trace", b"abc123")]
    assert peer.send(peer.headers(1, trailers, end_stream=True)) == []
    frames = peer.sent()
    assert rst_codes(frames, 1) == [ErrorCodes.STREAM_CLOSED]
    assert of_type(frames, GoAwayFrame) == []
    request = [*GET, (b"x-trace", b"abc123")]
    events = peer.send(peer.headers(3, request))
    assert [describe(e) for e in events] == [
        ("RequestReceived", 3, request, True),
        ("StreamEnded", 3),
    ]


def test_data_on_a_stream_the_client_reset_still_counts_in_the_connection_window() -> None:
    peer = RawClient()
    peer.open(1, POST)
    peer.send(rst(1))
    peer.sent()
    chunk = b"x" * 16384
    peer.send(*(peer.data(1, chunk) for _ in range(3)))
    assert sum(window_updates(peer.sent(), 0)) >= 32768


def test_a_reset_data_reset_loop_counts_against_the_rapid_reset_limit() -> None:
    # Each late frame answered costs a reset of the client's budget, as its own RST did.
    peer = RawClient(max_reset_streams=10)
    with pytest.raises(H2ProtocolError) as info:
        for stream_id in range(1, 41, 2):
            peer.send(peer.headers(stream_id, POST, end_stream=False), rst(stream_id))
            peer.send(peer.data(stream_id, b"late"))
    assert info.value.error_code == ErrorCodes.ENHANCE_YOUR_CALM
    assert stream_id <= 11  # two resets per stream: cut off within the budget


def test_empty_data_on_closed_streams_is_counted_as_a_control_frame() -> None:
    peer = RawClient(max_control_frames=50)
    peer.open(1, POST)
    peer.engine.reset_stream(1, ErrorCodes.CANCEL)
    peer.sent()
    with pytest.raises(H2ProtocolError) as info:
        peer.send(*(peer.data(1, b"") for _ in range(100)))
    assert info.value.error_code == ErrorCodes.ENHANCE_YOUR_CALM


# ---------------------------------------------------------------- reset by us, or ended


def test_frames_on_a_stream_we_reset_are_still_ignored() -> None:
    peer = RawClient()
    peer.open(1, POST)
    peer.engine.reset_stream(1, ErrorCodes.NO_ERROR)  # answered early, say
    peer.sent()
    assert peer.send(peer.data(1, b"in flight"), peer.headers(1, [(b"x", b"1")])) == []
    frames = peer.sent()
    assert rst_codes(frames, 1) == []
    assert of_type(frames, GoAwayFrame) == []


@pytest.mark.parametrize("kind", ["data", "headers"])
def test_frames_on_a_stream_closed_both_ways_are_a_connection_error(kind: str) -> None:
    peer = RawClient()
    peer.open(1, end_stream=True)
    peer.engine.send_headers(1, [(b":status", b"204")], end_stream=True)
    peer.sent()
    late = peer.data(1, b"x") if kind == "data" else peer.headers(1)
    assert peer.connection_error(late) == ErrorCodes.STREAM_CLOSED


def test_data_on_a_half_closed_remote_stream_is_still_a_stream_error() -> None:
    peer = RawClient()
    peer.open(1, end_stream=True)
    events = peer.send(peer.data(1, b"x"))
    assert [describe(e) for e in of_type(events, StreamReset)] == [
        ("StreamReset", 1, ErrorCodes.STREAM_CLOSED)
    ]
    assert of_type(peer.sent(), GoAwayFrame) == []


# ---------------------------------------------------------------- nothing after the reset


def test_frames_queued_before_the_reset_was_read_do_not_go_out() -> None:
    # The upstream's piece was framed in the same turn of the loop as the client's
    # RST_STREAM was read: written after it, it would be a frame on a closed stream.
    peer = RawClient()
    peer.open(1)
    peer.open(3)
    engine = peer.engine
    window = engine.local_flow_control_window(1)
    engine.send_headers(1, [(b":status", b"200")])
    engine.send_data(1, b"a" * 1000)
    engine.send_headers(3, [(b":status", b"200")])
    engine.send_data(3, b"b" * 500)
    engine.send_data(1, b"c" * 2000)
    peer.send(rst(1))
    frames = peer.sent()
    assert on_stream(frames, 1) == []
    assert [type(f) for f in on_stream(frames, 3)] == [HeadersFrame, DataFrame]
    assert bytes(on_stream(frames, 3)[1].data) == b"b" * 500
    # The dropped bytes are back in the connection's send window.
    assert engine.local_flow_control_window(3) == window - 500
    with pytest.raises(StreamClosedError):
        engine.send_data(1, b"later")


def test_a_dropped_header_block_with_continuations_keeps_the_next_block_decodable() -> None:
    peer = RawClient(settings={MAX_FRAME_SIZE: 16384})
    peer.open(1)
    peer.open(3)
    engine = peer.engine
    big = [(b":status", b"200"), (b"x-big", b"v" * 40000)]
    engine.send_headers(1, big)
    peer.send(rst(1))
    frames = peer.sent()
    assert on_stream(frames, 1) == []
    engine.send_headers(3, [(b":status", b"200"), (b"x-small", b"1")], end_stream=True)
    (block,) = of_type(peer.sent(), HeadersFrame)
    assert block.stream_id == 3
    # The encoder announces its (empty) table again: a decoder that missed the dropped
    # block's announcement still hears it.
    assert bytes(block.data)[:1] == b"\x20"
    assert of_type(frames, ContinuationFrame) == []


def test_only_what_is_still_queued_is_dropped() -> None:
    peer = RawClient()
    peer.open(1)
    peer.open(3)
    engine = peer.engine
    engine.send_headers(1, [(b":status", b"200")])
    engine.send_data(1, b"a" * 100)
    assert [type(f) for f in peer.sent()] == [HeadersFrame, DataFrame]  # on the wire
    engine.send_data(1, b"b" * 100)
    engine.send_headers(3, [(b":status", b"200")], end_stream=True)
    peer.send(rst(1))
    frames = peer.sent()
    assert on_stream(frames, 1) == []  # what was queued since, dropped; nothing answered
    assert [(type(f), f.stream_id) for f in frames] == [(HeadersFrame, 3)]


def test_a_window_update_queued_for_a_stream_the_client_reset_is_dropped() -> None:
    peer = RawClient()
    peer.open(1, POST)
    engine = peer.engine
    body = b"x" * 40000
    peer.send(peer.data(1, body[:16384]), peer.data(1, body[16384:32768]))
    engine.acknowledge_received_data(32768, 1)  # queues WINDOW_UPDATEs: stream and connection
    peer.send(rst(1))
    frames = peer.sent()
    assert window_updates(frames, 1) == []
    assert sum(window_updates(frames, 0)) > 0
    assert of_type(frames, RstStreamFrame) == []
    assert all(isinstance(f, WindowUpdateFrame) for f in frames)


def test_frames_are_dropped_when_a_reset_comes_in_the_read_after_they_were_queued() -> None:
    peer = RawClient()
    peer.open(1)
    engine = peer.engine
    engine.send_headers(1, [(b":status", b"200")])
    engine.send_data(1, b"a" * 10)
    # A read with something else first (a PING), then the reset in a read of its own.
    peer.send(b"\x00\x00\x08\x06\x00\x00\x00\x00\x00" + b"12345678")
    peer.send(rst(1))
    frames = parse_frames(engine.data_to_send())
    assert on_stream(frames, 1) == []
    assert len(frames) == 1 and frames[0].stream_id == 0  # the PING's answer
