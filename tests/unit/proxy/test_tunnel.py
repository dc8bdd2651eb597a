"""WebSocket upgrade pieces without sockets: parsing, heads, and the byte relay."""

from __future__ import annotations

import pytest

from dispa.proxy.events import EndOfMessage, Request, Response
from dispa.proxy.http1.parser import RequestParser, ResponseParser, UpgradeRequested
from dispa.proxy.http1.writer import request_head, response_head
from dispa.proxy.tunnel import Tunnel

HANDSHAKE = (
    b"GET /chat HTTP/1.1\r\nHost: example.test\r\nUpgrade: websocket\r\n"
    b"Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\n\r\n"
)


def test_websocket_request_is_marked_and_what_follows_is_held() -> None:
    parser = RequestParser(8192)
    events = parser.feed(HANDSHAKE + b"\x81\x85frame")
    assert [type(e) for e in events] == [Request, EndOfMessage]
    assert events[0].upgrade == b"websocket"
    assert parser.upgrade_pending
    assert parser.feed(b"more") == []  # not parsed as HTTP while the answer is awaited
    assert parser.take_tunnel_bytes() == b"\x81\x85framemore"
    assert parser.held_bytes == 0


def test_refused_upgrade_parses_held_bytes_as_http_again() -> None:
    parser = RequestParser(8192)
    parser.feed(HANDSHAKE + b"GET /next HTTP/1.1\r\n")
    assert parser.feed(b"Host: example.test\r\n\r\n") == []
    events = parser.resume_after_refused_upgrade()
    assert [type(e) for e in events] == [Request, EndOfMessage]
    assert events[0].path == "/next" and events[0].upgrade is None
    assert not parser.upgrade_pending


@pytest.mark.parametrize(
    "head",
    [
        # h2c and other protocols stay ignored (RFC 9110 7.8), as before.
        b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\n"
        b"HTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n",
        # Upgrade without Connection: upgrade is no offer at all.
        b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n",
        # Only a GET opens a WebSocket.
        b"POST / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: upgrade\r\n"
        b"Content-Length: 0\r\n\r\n",
    ],
)
def test_other_upgrade_offers_stay_ignored(head: bytes) -> None:
    parser = RequestParser(8192)
    events = parser.feed(head + b"GET /after HTTP/1.1\r\nHost: a\r\n\r\n")
    requests = [e for e in events if type(e) is Request]
    assert [r.upgrade for r in requests] == [None, None]
    assert requests[1].path == "/after"
    assert not parser.upgrade_pending


def test_connect_is_still_refused() -> None:
    with pytest.raises(UpgradeRequested):
        RequestParser(8192).feed(b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n")


def test_response_parser_keeps_bytes_after_a_101() -> None:
    parser = ResponseParser()
    events = parser.feed(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n\x81\x02hi"
    )
    assert type(events[0]) is Response and events[0].status == 101
    assert parser.tunnel_bytes == b"\x81\x02hi"


def test_heads_keep_upgrade_only_when_asked() -> None:
    headers = [
        (b"Host", b"a"),
        (b"Upgrade", b"websocket"),
        (b"Connection", b"Upgrade"),
        (b"Sec-WebSocket-Key", b"k"),
    ]
    common = dict(
        client_ip="10.0.0.1",
        scheme="http",
        host=b"a",
        request_id=b"r1",
        content_length=None,
        chunked=False,
    )
    plain = request_head("GET", b"/", headers, **common).lower()
    assert b"upgrade" not in plain and b"sec-websocket-key: k" in plain
    upgraded = request_head("GET", b"/", headers, **common, upgrade=b"websocket").lower()
    assert b"\r\nconnection: upgrade\r\nupgrade: websocket\r\n" in upgraded
    assert upgraded.count(b"connection:") == 1

    head = response_head(
        101,
        b"Switching Protocols",
        [(b"Upgrade", b"websocket"), (b"Connection", b"Upgrade"), (b"Sec-WebSocket-Accept", b"x")],
        content_length=None,
        chunked=False,
        keep_alive=False,
        upgrade=b"websocket",
    ).lower()
    assert head.startswith(b"http/1.1 101 switching protocols\r\n")
    assert b"connection: upgrade\r\nupgrade: websocket\r\n\r\n" in head
    assert b"connection: close" not in head and b"transfer-encoding" not in head
    assert b"sec-websocket-accept: x" in head


# ---------------------------------------------------------------- the relay


class _Transport:
    def __init__(self) -> None:
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)


class _Side:
    def __init__(self) -> None:
        self.transport = _Transport()
        self.ended = 0

    def end_tunnel(self) -> None:
        self.ended += 1

    def close(self) -> None:
        self.ended += 1


class _Ctx:
    bytes_in = 0
    bytes_out = 0


class _Exchange:
    def __init__(self) -> None:
        self.ctx = _Ctx()
        self.closed: list[tuple[str, bool]] = []

    def tunnel_closed(self, reason: str, client_gone: bool) -> None:
        self.closed.append((reason, client_gone))


def test_tunnel_relays_counts_and_closes_both_sides_once() -> None:
    exchange, client, upstream = _Exchange(), _Side(), _Side()
    tunnel = Tunnel(exchange, client, upstream)
    tunnel.from_client(b"\x81\x85abcde")
    tunnel.from_upstream(b"\x81\x05hello")
    assert upstream.transport.written == [b"\x81\x85abcde"]
    assert client.transport.written == [b"\x81\x05hello"]
    assert (exchange.ctx.bytes_in, exchange.ctx.bytes_out) == (7, 7)
    tunnel.close("upstream_closed")
    tunnel.close("client_closed", client_gone=True)
    tunnel.from_client(b"late")
    assert (client.ended, upstream.ended) == (1, 1)
    assert exchange.closed == [("upstream_closed", False)]
    assert upstream.transport.written == [b"\x81\x85abcde"]


# ---------------------------------------------------------------- who closed it


def _frame(opcode: int, payload: bytes, masked: bool) -> bytes:
    """A WebSocket frame; a client's are masked (RFC 6455 5.3), with a zero mask here."""
    mask = b"\0\0\0\0" if masked else b""
    return bytes([0x80 | opcode, (0x80 if masked else 0) | len(payload)]) + mask + payload


CLIENT_TEXT = _frame(0x1, b"hi", masked=True)
CLIENT_CLOSE = _frame(0x8, b"\x03\xe8", masked=True)
UPSTREAM_TEXT = _frame(0x1, b"hi", masked=False)
UPSTREAM_CLOSE = _frame(0x8, b"\x03\xe8", masked=False)


def _tunnel() -> tuple[Tunnel, _Exchange]:
    exchange = _Exchange()
    return Tunnel(exchange, _Side(), _Side()), exchange


def test_the_first_close_frame_names_the_closer_whoever_hangs_up() -> None:
    tunnel, exchange = _tunnel()
    tunnel.from_client(CLIENT_TEXT + CLIENT_CLOSE)
    tunnel.from_upstream(UPSTREAM_CLOSE)
    tunnel.upstream_left()  # servers hang up first after the close handshake
    assert exchange.closed == [("client_closed", False)]

    tunnel, exchange = _tunnel()
    tunnel.from_client(CLIENT_TEXT)
    tunnel.from_upstream(UPSTREAM_TEXT + UPSTREAM_CLOSE)
    tunnel.from_client(CLIENT_CLOSE)
    tunnel.client_left()  # a client may hang up as soon as it answered the Close
    assert exchange.closed == [("upstream_closed", False)]


def test_a_close_frame_cut_across_reads_still_counts() -> None:
    tunnel, exchange = _tunnel()
    stream = CLIENT_TEXT + CLIENT_CLOSE
    for index in range(len(stream)):
        tunnel.from_client(stream[index : index + 1])
    tunnel.from_upstream(UPSTREAM_CLOSE)
    tunnel.upstream_left()
    assert exchange.closed == [("client_closed", False)]


def test_a_close_payload_inside_a_data_frame_is_not_a_close() -> None:
    tunnel, exchange = _tunnel()
    tunnel.from_upstream(_frame(0x2, UPSTREAM_CLOSE, masked=False))
    tunnel.client_left(client_gone=True)
    assert exchange.closed == [("client_disconnected", True)]


def test_without_close_frames_the_first_side_to_end_is_named() -> None:
    tunnel, exchange = _tunnel()
    tunnel.from_client(CLIENT_TEXT)
    tunnel.upstream_left()
    assert exchange.closed == [("upstream_reset", False)]

    tunnel, exchange = _tunnel()
    tunnel.from_upstream(UPSTREAM_TEXT)
    tunnel.client_left(client_gone=True)
    assert exchange.closed == [("client_disconnected", True)]


class _HalfClosable(_Transport):
    def __init__(self) -> None:
        super().__init__()
        self.eof_written = False

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.eof_written = True


def test_a_client_half_close_then_the_upstream_hanging_up_is_the_clients_doing() -> None:
    """HTTP/2's END_STREAM (RFC 8441) without a Close frame: the upstream is half-closed,
    and when it hangs up in turn the client is still the one that left."""
    tunnel, exchange = _tunnel()
    tunnel.upstream.transport = _HalfClosable()
    tunnel.end_from_client()
    assert tunnel.upstream.transport.eof_written and not tunnel.closed
    tunnel.upstream_left()
    assert exchange.closed == [("client_disconnected", False)]


def test_the_gateway_stopping_is_its_own_reason_unless_a_side_closed_first() -> None:
    tunnel, exchange = _tunnel()
    tunnel.client_left(client_gone=True, gateway_stopping=True)
    assert exchange.closed == [("shutting_down", True)]

    tunnel, exchange = _tunnel()
    tunnel.from_upstream(UPSTREAM_CLOSE)
    tunnel.client_left(client_gone=True, gateway_stopping=True)
    assert exchange.closed == [("upstream_closed", True)]


def test_frames_are_no_longer_read_once_a_close_was_seen() -> None:
    tunnel, _ = _tunnel()
    tunnel.from_client(CLIENT_CLOSE)
    tunnel.from_upstream(UPSTREAM_CLOSE)
    assert tunnel.first_close == "client"
    assert not tunnel.upstream_frames.saw_close  # not followed after the first Close
