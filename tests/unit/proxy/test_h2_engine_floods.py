"""The engine's flood limits (RFC 9113 10.5): counted as frames arrive, and a connection
over a limit ends with GOAWAY(ENHANCE_YOUR_CALM)."""

from __future__ import annotations

import struct

import pytest
from hyperframe.frame import GoAwayFrame, PingFrame, RstStreamFrame, SettingsFrame

from dispa.proxy.http2.engine import (
    H2ProtocolError,
    HeadersTooLarge,
    RequestReceived,
    StreamReset,
)
from dispa.proxy.http2.fields import check_request
from tests.unit.proxy.test_h2_engine import (
    CONTINUATION,
    END_HEADERS,
    END_STREAM,
    GET,
    HEADERS,
    INITIAL_WINDOW_SIZE,
    PING,
    POST,
    PRIORITY,
    RST_STREAM,
    SETTINGS,
    WINDOW_UPDATE,
    RawClient,
    of_type,
    raw_frame,
    settings_payload,
)

ENHANCE_YOUR_CALM, COMPRESSION_ERROR, PROTOCOL_ERROR, REFUSED_STREAM = 0xB, 0x9, 0x1, 0x7
CANCEL = 0x8


def rst(stream_id: int, code: int = CANCEL) -> bytes:
    return raw_frame(RST_STREAM, 0, stream_id, struct.pack(">I", code))


def ping(data: bytes = b"12345678") -> bytes:
    return raw_frame(PING, 0, 0, data)


# ---------------------------------------------------------------- CONTINUATION


def test_continuation_frames_are_counted_per_block():
    client = RawClient(max_continuation_frames=4)
    block = client.block(GET)
    pieces = [block[:2], block[2:4], b"", block[4:6], block[6:]]
    frames = [raw_frame(HEADERS, END_STREAM, 1, pieces[0])]
    frames += [raw_frame(CONTINUATION, 0, 1, piece) for piece in pieces[1:-1]]
    frames.append(raw_frame(CONTINUATION, END_HEADERS, 1, pieces[-1]))
    events = client.send(*frames)  # four CONTINUATION frames: at the limit, accepted
    assert [type(e) for e in events][:1] == [RequestReceived]
    # The count starts again with each block.
    rest = client.block(GET)  # the same fields again: all table references now
    assert of_type(
        client.send(
            raw_frame(HEADERS, END_STREAM, 3, rest[:1]),
            *[raw_frame(CONTINUATION, 0, 3, b"") for _ in range(3)],
            raw_frame(CONTINUATION, END_HEADERS, 3, rest[1:]),
        ),
        RequestReceived,
    )


def test_empty_continuation_flood_is_an_enhance_your_calm():
    client = RawClient(max_continuation_frames=16)
    client.send(raw_frame(HEADERS, END_STREAM, 1, client.block(GET)))
    empty = raw_frame(CONTINUATION, 0, 1, b"")
    assert client.connection_error(empty * 60_000) == ENHANCE_YOUR_CALM


def test_continuation_bytes_past_the_block_limit_are_an_enhance_your_calm():
    # max_header_list_size 1024: blocks are decoded up to 4 KiB, and refused past that
    # (plus one frame), as the bytes arrive.
    client = RawClient(max_header_list_size=1024, max_continuation_frames=1000)
    client.send(raw_frame(HEADERS, END_STREAM, 1, client.block(GET)))
    filler = raw_frame(CONTINUATION, 0, 1, b"\x00" * 16384)
    client.send(filler)  # 16 KiB + the block: within 4 KiB + one frame
    assert client.connection_error(filler) == ENHANCE_YOUR_CALM


# ---------------------------------------------------------------- rapid reset


def test_streams_reset_by_the_client_are_counted_and_cancel_their_request():
    client = RawClient(max_reset_streams=3)
    pairs = [client.headers(n, GET) + rst(n) for n in (1, 3, 5)]
    events = client.send(*pairs)
    requests = of_type(events, RequestReceived)
    assert len(requests) == 3 and all(e.cancelled for e in requests)
    assert [e.stream_id for e in of_type(events, StreamReset)] == [1, 3, 5]
    assert client.connection_error(client.headers(7, GET), rst(7)) == ENHANCE_YOUR_CALM


def test_a_reset_in_a_later_read_leaves_the_request_as_it_was():
    client = RawClient(max_reset_streams=3)
    (request,) = of_type(client.send(client.headers(1, GET, end_stream=False)), RequestReceived)
    assert not request.cancelled
    events = client.send(rst(1))
    assert [e.stream_id for e in of_type(events, StreamReset)] == [1]


def test_the_reset_count_starts_again_each_interval():
    client = RawClient(max_reset_streams=2)
    stream_id = 1
    for _ in range(5):
        for _ in range(2):
            client.send(client.headers(stream_id, GET), rst(stream_id))
            stream_id += 2
        client.engine.new_interval()
    assert (
        client.connection_error(
            *[client.headers(stream_id + 2 * n, GET) + rst(stream_id + 2 * n) for n in range(3)]
        )
        == ENHANCE_YOUR_CALM
    )


def test_refused_streams_count_with_the_resets():
    client = RawClient(max_reset_streams=2)
    client.send(client.headers(1, GET), client.headers(3, GET), client.headers(5, GET))
    client.sent()
    client.engine.refuse_stream(1)
    client.engine.refuse_stream(3)
    assert [f.error_code for f in of_type(client.sent(), RstStreamFrame)] == [REFUSED_STREAM] * 2
    with pytest.raises(H2ProtocolError) as info:
        client.engine.refuse_stream(5)
    assert info.value.error_code == ENHANCE_YOUR_CALM
    goaway = of_type(client.sent(), GoAwayFrame)
    assert [g.error_code for g in goaway] == [ENHANCE_YOUR_CALM]
    assert client.send(ping()) == []  # nothing more is read


def test_stream_errors_count_with_the_resets():
    client = RawClient(max_reset_streams=2)
    # Each: a body longer than its content-length, a stream error (RFC 9113 8.1.1).
    bad = [*POST, (b"content-length", b"1")]
    for stream_id in (1, 3):
        events = client.send(
            client.headers(stream_id, bad, end_stream=False), client.data(stream_id, b"xx")
        )
        assert of_type(events, StreamReset)
    assert (
        client.connection_error(client.headers(5, bad, end_stream=False), client.data(5, b"xx"))
        == ENHANCE_YOUR_CALM
    )


# ---------------------------------------------------------------- control frames


@pytest.mark.parametrize(
    "make",
    [
        lambda n: ping(),
        lambda n: raw_frame(PING, 0x1, 0, b"12345678"),  # unasked-for PING ACKs
        lambda n: raw_frame(PRIORITY, 0, 2 * n + 1, struct.pack(">IB", 0, 16)),
        lambda n: raw_frame(SETTINGS, 0, 0, settings_payload({0x1: 4096})),
        lambda n: raw_frame(0xEE, 0, 0, b"extension"),
        lambda n: raw_frame(0x7, 0, 0, struct.pack(">II", 0, 0)),  # GOAWAY(NO_ERROR)
    ],
    ids=["ping", "ping-ack", "priority", "settings", "unknown-type", "goaway"],
)
def test_control_frames_are_counted(make):
    client = RawClient(max_control_frames=10)
    client.send(*[make(n) for n in range(9)])  # the preface's SETTINGS counted one
    assert client.connection_error(make(10)) == ENHANCE_YOUR_CALM


def test_each_ping_is_answered_until_the_limit():
    client = RawClient(max_control_frames=6)
    client.send(*[ping(b"%08d" % n) for n in range(5)])
    assert len(of_type(client.sent(), PingFrame)) == 5
    client.engine.new_interval()
    client.send(*[ping() for _ in range(6)])
    assert len(of_type(client.sent(), PingFrame)) == 6


def test_a_long_settings_frame_weighs_more():
    client = RawClient(max_control_frames=10)
    # 30 entries: one frame, three more for its length (one per 10 entries).
    entries = b"".join(struct.pack(">HI", 0x1, 4096) for _ in range(30))
    client.send(raw_frame(SETTINGS, 0, 0, entries), raw_frame(SETTINGS, 0, 0, entries))
    assert client.connection_error(raw_frame(SETTINGS, 0, 0, entries)) == ENHANCE_YOUR_CALM


def test_empty_data_frames_without_end_are_counted():
    client = RawClient(max_control_frames=5)
    client.open(1, POST)
    client.send(*[client.data(1, b"") for _ in range(4)])
    assert client.connection_error(client.data(1, b"")) == ENHANCE_YOUR_CALM
    # An empty DATA frame that ends the stream is a request's end, not counted.
    other = RawClient(max_control_frames=2)
    for stream_id in range(1, 20, 2):
        other.open(stream_id, POST)
        other.send(other.data(stream_id, b"", end_stream=True))


def test_reset_of_a_closed_stream_is_a_control_frame():
    client = RawClient(max_control_frames=4, max_reset_streams=100)
    client.send(client.headers(1, GET), rst(1))
    client.send(rst(1), rst(1), rst(1))
    assert client.connection_error(rst(1)) == ENHANCE_YOUR_CALM


def test_headers_on_a_stream_we_reset_are_counted():
    client = RawClient(max_control_frames=3, max_reset_streams=100)
    client.open(1, POST)
    client.engine.reset_stream(1, CANCEL)
    late = client.headers(1, [(b"x-trailer", b"1")], end_stream=True)
    client.send(late, late)
    assert client.connection_error(late) == ENHANCE_YOUR_CALM


def test_window_updates_are_allowed_in_proportion_to_data_sent():
    client = RawClient(initial_window=65535)
    update = raw_frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 1))
    client.send(*[update] * 1000)  # the allowance at the start
    client.open(1, GET, end_stream=True)
    for _ in range(10):
        client.engine.send_data(1, b"x")  # each DATA frame sent allows four more
    client.sent()
    client.send(*[update] * 40)
    assert client.connection_error(update) == ENHANCE_YOUR_CALM


# ---------------------------------------------------------------- SETTINGS and HPACK


def test_initial_window_entries_are_applied_once_per_frame():
    client = RawClient()
    client.open(1, GET, end_stream=True)
    entries = b"".join(
        struct.pack(">HI", INITIAL_WINDOW_SIZE, value) for value in (10, 2**31 - 1, 300)
    )
    client.send(raw_frame(SETTINGS, 0, 0, entries))
    assert client.engine.local_flow_control_window(1) == 300
    assert of_type(client.sent(), SettingsFrame)  # acknowledged


def _client_with_a_big_field() -> RawClient:
    """A client whose first request put a 4,000-byte field in the dynamic table (62)."""
    client = RawClient(max_header_list_size=16384)
    big = b"v" * 4000
    size = len(big) - 127  # an HPACK integer with a 7-bit prefix, continued
    insert = b"\x40\x03big\x7f" + bytes((size % 128 | 0x80, size // 128)) + big
    block = client.block(GET) + insert
    events = client.send(raw_frame(HEADERS, END_STREAM | END_HEADERS, 1, block))
    assert of_type(events, RequestReceived)
    return client


def test_hpack_bomb_of_a_short_block_is_answered_431_cheaply():
    client = _client_with_a_big_field()
    # 1,000 one-byte references to it: 4 MB of header list from 1 KB, looked up, not
    # decoded; the check stops at the limit.
    bomb = b"\x82\x86\x84" + b"\xbe" * 1000
    events = client.send(raw_frame(HEADERS, END_STREAM | END_HEADERS, 3, bomb))
    assert of_type(events, HeadersTooLarge)


def test_hpack_bomb_of_a_long_block_ends_the_connection_unremembered():
    client = _client_with_a_big_field()
    bomb = b"\x82\x86\x84" + b"\xbe" * 4000  # decoding stops at 4 x the list limit
    error = client.connection_error(raw_frame(HEADERS, END_STREAM | END_HEADERS, 3, bomb))
    assert error == ENHANCE_YOUR_CALM
    assert not client.engine._block_cache  # a long block is never remembered


def test_check_request_stops_at_the_limit():
    # Past the limit nothing more is read: a bad value after it does not matter, and the
    # cost does not grow with the list.
    headers = [(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/")]
    headers += [(b"big", b"v" * 4000)] * 100_000 + [(b"bad", b"\x00")]
    assert check_request(headers, 65536) == (-1, True)
    assert check_request([*headers[:3], (b"bad", b"\x00")], 65536) is None


def test_huge_settings_values_cost_nothing_more():
    """The largest values each setting may take: accepted, and nothing is sized by them
    (the encoder keeps no table; frames are as large as the data at hand)."""
    client = RawClient(
        settings={
            0x1: 2**32 - 1,  # HEADER_TABLE_SIZE
            0x3: 2**32 - 1,  # MAX_CONCURRENT_STREAMS
            INITIAL_WINDOW_SIZE: 2**31 - 1,
            0x5: 2**24 - 1,  # MAX_FRAME_SIZE
            0x6: 2**32 - 1,  # MAX_HEADER_LIST_SIZE
        }
    )
    client.open(1, GET, end_stream=True)
    client.engine.send_headers(1, [(b":status", b"200")])
    client.engine.send_data(1, b"x" * 100, end_stream=True)
    sent = client.engine.data_to_send()
    assert len(sent) < 200
