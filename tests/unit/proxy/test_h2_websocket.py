"""RFC 8441 pieces without sockets: the handshake translation and the Close frame watcher."""

from __future__ import annotations

import struct

from hypothesis import given
from hypothesis import strategies as st

from dispa.proxy.http1.writer import response_head
from dispa.proxy.http2.headers import MalformedRequest, request_from_headers
from dispa.proxy.http2.websocket import (
    tunnel_response_headers,
    websocket_accept,
    websocket_key,
)
from dispa.proxy.websocket_close import CloseFrameWatcher

EXTENDED_CONNECT = (  # a header block as the engine hands it over
    (b":method", b"CONNECT"),
    (b":protocol", b"websocket"),
    (b":scheme", b"https"),
    (b":path", b"/chat?room=1"),
    (b":authority", b"chat.test"),
    (b"sec-websocket-version", b"13"),
    (b"sec-websocket-key", b"c2VudCBhbnl3YXkgYnkgbWlzdGFrZQ=="),
    (b"sec-websocket-protocol", b"chat"),
)


def test_rfc6455_sample_key_and_accept() -> None:
    key = websocket_key(b"the sample nonce")
    assert key == b"dGhlIHNhbXBsZSBub25jZQ=="
    assert websocket_accept(key) == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_extended_connect_is_a_websocket_get() -> None:
    request = request_from_headers(1, EXTENDED_CONNECT, end_stream=False)
    assert (request.method, request.path, request.query) == ("GET", "/chat", b"?room=1")
    assert request.upgrade == b"websocket"
    assert not request.has_body and request.content_length is None
    names = [name for name, _ in request.headers]
    assert b"sec-websocket-key" not in names  # the gateway makes the upstream's own
    assert (b"host", b"chat.test") in request.headers
    assert (b"sec-websocket-protocol", b"chat") in request.headers


def test_other_connects_are_refused() -> None:
    other = tuple((n, b"h2c-tunnel" if n == b":protocol" else v) for n, v in EXTENDED_CONNECT)
    for block in (other, ((b":method", b"CONNECT"), (b":authority", b"h:443"))):
        try:
            request_from_headers(1, block, end_stream=False)
        except MalformedRequest as refused:
            assert refused.status == 501
        else:
            raise AssertionError("a CONNECT that is no WebSocket was accepted")


def test_101_head_becomes_the_200_header_fields() -> None:
    key = websocket_key(b"0123456789abcdef")
    head = response_head(
        101,
        b"Switching Protocols",
        [
            (b"Upgrade", b"websocket"),
            (b"Connection", b"Upgrade"),
            (b"Sec-WebSocket-Accept", websocket_accept(key)),
            (b"Sec-WebSocket-Protocol", b"chat"),
        ],
        content_length=None,
        chunked=False,
        keep_alive=False,
        request_id=b"r1",
        upgrade=b"websocket",
    )
    headers = tunnel_response_headers(head, key)
    assert (b"sec-websocket-protocol", b"chat") in headers
    assert (b"x-request-id", b"r1") in headers
    assert all(name != b"sec-websocket-accept" for name, _ in headers)
    wrong = head.replace(websocket_accept(key), websocket_accept(b"another key"))
    assert tunnel_response_headers(wrong, key) is None
    missing = head.replace(b"Sec-WebSocket-Accept", b"X-Not-Accept")
    assert tunnel_response_headers(missing, key) is None


# ---------------------------------------------------------------- the Close frame watcher


def frame(opcode: int, size: int, masked: bool) -> bytes:
    if size < 126:
        head = bytes([0x80 | opcode, (0x80 if masked else 0) | size])
    elif size < 1 << 16:
        head = bytes([0x80 | opcode, (0x80 if masked else 0) | 126]) + struct.pack("!H", size)
    else:
        head = bytes([0x80 | opcode, (0x80 if masked else 0) | 127]) + struct.pack("!Q", size)
    # Payload bytes that look like Close frame headers: only boundaries must count.
    return head + (b"\x88\x02" * 2 if masked else b"") + (b"\x88" * size)


frames = st.lists(
    st.tuples(
        st.sampled_from([0x0, 0x1, 0x2, 0x9, 0xA]),
        st.sampled_from([0, 1, 2, 125, 126, 127, 65535, 65536, 70000]),
        st.booleans(),
    ),
    max_size=8,
)


@given(frames, st.booleans(), st.lists(st.integers(min_value=1, max_value=70000), max_size=12))
def test_close_seen_exactly_when_sent_whatever_the_reads(before, with_close, cuts) -> None:
    stream = b"".join(frame(op, size, masked) for op, size, masked in before)
    if with_close:
        stream += frame(0x8, 2, False) + frame(0x1, 5, False)
    watcher = CloseFrameWatcher()
    position = 0
    for cut in cuts:
        watcher.feed(stream[position : position + cut])
        position += cut
    watcher.feed(stream[position:])
    assert watcher.saw_close is with_close


def test_one_byte_reads() -> None:
    before = frame(0x2, 300, True) + frame(0x1, 70000, False)
    stream = before + frame(0x8, 2, False)
    watcher = CloseFrameWatcher()
    for index in range(len(before) + 1):  # up to the Close frame's first byte
        watcher.feed(stream[index : index + 1])
        assert not watcher.saw_close
    watcher.feed(stream[len(before) + 1 :])
    assert watcher.saw_close
