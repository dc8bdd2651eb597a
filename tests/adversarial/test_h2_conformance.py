"""HTTP/2 as a client nobody here wrote checks it (RFC 9113 3.4, 5.1, 5.4.2, 6.1).

- A connection that claims HTTP/2 (its first bytes are the preface's ``PRI * HTTP/2``)
  but does not go on with the exact 24-byte preface is answered as HTTP/2: GOAWAY
  PROTOCOL_ERROR, last stream 0, then the connection closes; never an HTTP/1.1 400.
- Frames on streams the client closed: after its RST_STREAM, DATA or HEADERS get
  RST_STREAM STREAM_CLOSED; after END_STREAM both ways, DATA is a connection error
  STREAM_CLOSED.
- After the client's RST_STREAM is read, nothing more goes out on that stream, and the
  upstream side is cancelled at once (an HTTP/1.1 upstream's connection is closed, an
  HTTP/2 upstream's stream is reset).

The clients are raw sockets (``H2Attacker`` of test_h2_floods.py, and plain sockets for
prefaces); the upstreams are threads of this process that stream a body slowly, so that
a frame for a reset stream that shows up after the reset can only have been written by
the gateway after it read that reset.
"""

from __future__ import annotations

import contextlib
import select
import socket
import ssl
import struct
import time

import pytest
from conftest import HOST, make_config, wait_until
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import RequestReceived, StreamReset
from h2.exceptions import ProtocolError
from hpack import Encoder
from test_h2_floods import (
    DATA,
    END_HEADERS,
    END_STREAM,
    GOAWAY,
    HEADERS,
    PREFACE,
    RST_STREAM,
    SETTINGS,
    H2Attacker,
    frame,
)
from thread_server import ThreadServer

from tests.tls_certs import TestCA

PROTOCOL_ERROR, CANCEL, STREAM_CLOSED = 0x1, 0x8, 0x5
# The slow upstreams send a body piece this often: a frame of a reset stream that arrives
# later than the reset plus this cannot have been in flight when the reset was read.
PIECE_INTERVAL = 1.5
PIECE = b"x" * 64


def frames_in(data: bytes) -> list[tuple[int, int, int, bytes]]:
    """(type, flags, stream id, payload) of each whole frame in ``data``."""
    frames, position = [], 0
    while len(data) - position >= 9:
        size = int.from_bytes(data[position : position + 3], "big")
        if len(data) - position - 9 < size:
            break
        kind, flags = data[position + 3], data[position + 4]
        stream_id = int.from_bytes(data[position + 5 : position + 9], "big") & 0x7FFFFFFF
        frames.append((kind, flags, stream_id, data[position + 9 : position + 9 + size]))
        position += 9 + size
    return frames


def goaways(data: bytes) -> list[tuple[int, int]]:
    """(last stream id, error code) of each GOAWAY in ``data``."""
    return [
        struct.unpack(">II", payload[:8])
        for kind, _, _, payload in frames_in(data)
        if kind == GOAWAY
    ]


class StampingClient(H2Attacker):
    """An ``H2Attacker`` that also keeps every frame it reads, with the time it read it."""

    def __init__(self, port: int, **options) -> None:
        self.frames: list[tuple[float, int, int, int]] = []  # (time, type, flags, stream)
        super().__init__(port, **options)

    def _parse(self, data: bytes) -> None:
        whole = self._buffer + data
        super()._parse(data)
        now = time.monotonic()
        complete = whole[: len(whole) - len(self._buffer)]
        self.frames.extend((now, kind, flags, sid) for kind, flags, sid, _ in frames_in(complete))

    def on_stream(self, stream_id: int, kind: int | None = None, after: float = 0.0) -> list:
        return [
            f
            for f in list(self.frames)
            if f[3] == stream_id and f[0] > after and (kind is None or f[1] == kind)
        ]

    def get(self, stream_id: int, path: str) -> None:
        self.send(frame(HEADERS, END_STREAM | END_HEADERS, stream_id, self.request_block(path)))

    def reset(self, stream_id: int) -> float:
        """RST_STREAM(CANCEL); the time just before it was written."""
        sent_at = time.monotonic()
        self.send(frame(RST_STREAM, 0, stream_id, struct.pack(">I", CANCEL)))
        return sent_at


# ---------------------------------------------------------------- slow upstreams


class _ThreadServer(ThreadServer):
    """A listening socket on 127.0.0.1 whose connections each get a thread; a peer that
    breaks the protocol ends its connection like a closed socket."""

    def __init__(self) -> None:
        super().__init__()
        self.start()

    def _serve_then_close(self, sock: socket.socket, number: int) -> None:
        with contextlib.suppress(ProtocolError):
            super()._serve_then_close(sock, number)

    def wait_readable(self, sock: socket.socket, timeout: float) -> bool:
        if self._stopping.is_set():
            raise OSError("stopping")
        return bool(select.select([sock], [], [], timeout)[0])


class SlowH1Upstream(_ThreadServer):
    """HTTP/1.1: ``/stream`` gets a chunked body, a piece at once and then one every
    PIECE_INTERVAL; any other path a short whole answer. ``closed_at`` records when the
    gateway closed a connection that was streaming."""

    def __init__(self) -> None:
        self.closed_at: dict[int, float] = {}
        self.streaming: set[int] = set()
        super().__init__()

    def serve(self, sock: socket.socket, number: int) -> None:
        buffer = b""
        piece = b"%x\r\n%s\r\n" % (len(PIECE), PIECE)
        while True:
            while b"\r\n\r\n" not in buffer:
                data = sock.recv(65536)
                if not data:
                    return
                buffer += data
            head, _, buffer = buffer.partition(b"\r\n\r\n")
            if b" /stream" not in head.split(b"\r\n", 1)[0]:
                sock.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                continue
            with self.lock:
                self.streaming.add(number)
            sock.sendall(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n" + piece)
            for _ in range(20):
                if self.wait_readable(sock, PIECE_INTERVAL) and not sock.recv(65536):
                    with self.lock:
                        self.closed_at[number] = time.monotonic()
                    return
                sock.sendall(piece)
            sock.sendall(b"0\r\n\r\n")


class SlowH2Upstream(_ThreadServer):
    """h2c (the h2 library frames): each request gets a head and a piece at once, then a
    piece every PIECE_INTERVAL. ``resets`` records the RST_STREAM frames the gateway sent,
    as (time, stream id, error code)."""

    def __init__(self) -> None:
        self.resets: list[tuple[float, int, int]] = []
        super().__init__()

    def serve(self, sock: socket.socket, number: int) -> None:
        h2 = H2Connection(H2Configuration(client_side=False, header_encoding=None))
        h2.initiate_connection()
        sock.sendall(h2.data_to_send())
        due: dict[int, float] = {}  # stream id -> when its next piece goes
        while True:
            now = time.monotonic()
            wait = min([*due.values(), now + 0.2]) - now
            if self.wait_readable(sock, max(0.0, wait)):
                data = sock.recv(65536)
                if not data:
                    return
                for event in h2.receive_data(data):
                    if isinstance(event, RequestReceived):
                        h2.send_headers(event.stream_id, [(b":status", b"200")])
                        h2.send_data(event.stream_id, PIECE)
                        due[event.stream_id] = time.monotonic() + PIECE_INTERVAL
                    elif isinstance(event, StreamReset):
                        due.pop(event.stream_id, None)
                        with self.lock:
                            self.resets.append(
                                (time.monotonic(), event.stream_id, event.error_code)
                            )
            now = time.monotonic()
            for stream_id, when in list(due.items()):
                if when <= now:
                    h2.send_data(stream_id, PIECE)
                    due[stream_id] = now + PIECE_INTERVAL
            out = h2.data_to_send()
            if out:
                sock.sendall(out)


# ---------------------------------------------------------------- the gateway


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    directory = tmp_path_factory.mktemp("h2-conformance-pki")
    ca = TestCA()
    issued = ca.issue("h2.test", dns_names=("h2.test",))
    return issued.write(directory, "h2")


@pytest.fixture(scope="module")
def upstreams():
    h1, h2 = SlowH1Upstream(), SlowH2Upstream()
    try:
        yield h1, h2
    finally:
        h1.close()
        h2.close()


@pytest.fixture(scope="module")
def target(module_processes, tmp_path_factory, upstreams, pki):
    h1, h2 = upstreams
    cert, key = pki
    config = make_config(
        [
            {"name": "slow-h1", "endpoints": [{"address": h1.address}]},
            {"name": "slow-h2", "protocol": "h2", "endpoints": [{"address": h2.address}]},
        ],
        [
            {"name": "h2", "match": {"path_prefix": "/h2/"}, "upstream": "slow-h2"},
            {"name": "all", "match": {"path_prefix": "/"}, "upstream": "slow-h1"},
        ],
        listeners=[
            {"name": "public"},
            {
                "name": "secure",
                "tls": {
                    "certificates": [{"cert": str(cert), "key": str(key)}],
                    "alpn": ["h2", "http/1.1"],
                },
            },
        ],
    )
    return module_processes.gateway(config, tmp_path_factory.mktemp("h2-conformance"))


def _talk(sock: socket.socket, pieces: list[bytes], *, timeout: float = 8.0) -> tuple[bytes, bool]:
    """Send ``pieces`` as separate writes (a pause between, so the gateway reads them
    apart), then read until the gateway closes; (what it sent, whether it closed)."""
    for index, piece in enumerate(pieces):
        if index:
            time.sleep(0.05)
        sock.sendall(piece)
    received = bytearray()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            data = sock.recv(65536)
        except TimeoutError:
            break
        except OSError:  # reset, or TLS cut without close_notify: closed all the same
            return bytes(received), True
        if not data:
            return bytes(received), True
        received += data
    return bytes(received), False


def _tls_socket(port: int, alpn: list[str]) -> ssl.SSLSocket:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # what is tested here is HTTP/2, not the certificate
    context.set_alpn_protocols(alpn)
    sock = socket.create_connection((HOST, port), timeout=8)
    return context.wrap_socket(sock, server_hostname="h2.test")


# ---------------------------------------------------------------- a mangled preface

MANGLED_PREFACES = {
    # The whole request line of the preface, then the wrong bytes.
    "wrong-tail": [b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n"],
    "last-byte-wrong": [b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\r"],
    # Split across reads: the sniffer holds a prefix of the preface, then it diverges.
    "split-then-wrong": [b"PRI * HT", b"TP/2.0\r\n\r\nSM", b"\r\nXX"],
    "byte-by-byte": [bytes((b,)) for b in b"PRI * HTTP/2.0\r\n\r\nSM\r\n\n\r"],
    # "HTTP/2.0" in an HTTP/1.1 request line is never HTTP/1.1 (answered 505 there).
    "http1-request-after-pri": [b"PRI * HTTP/2.0\r\nHost: a.test\r\n\r\n"],
    "other-minor-version": [b"PRI * HTTP/2.1\r\n\r\nSM\r\n\r\n"],
}


def _assert_goaway_protocol_error(received: bytes, closed: bool) -> None:
    assert not received.startswith(b"HTTP/"), received[:80]
    assert b"HTTP/1.1" not in received, received[:200]
    assert goaways(received) == [(0, PROTOCOL_ERROR)], frames_in(received)
    assert closed, "the gateway kept the connection open after its GOAWAY"


@pytest.mark.parametrize("pieces", MANGLED_PREFACES.values(), ids=MANGLED_PREFACES.keys())
def test_mangled_preface_gets_goaway_protocol_error(target, pieces):
    with socket.create_connection((HOST, target.port), timeout=8) as sock:
        received, closed = _talk(sock, pieces)
    _assert_goaway_protocol_error(received, closed)


def test_mangled_preface_over_tls_with_alpn_h2(target):
    with _tls_socket(target.ports["secure"], ["h2"]) as sock:
        assert sock.selected_alpn_protocol() == "h2"
        received, closed = _talk(sock, [b"PRI * HTTP/2.0\r\n", b"\r\nSM\r\n\r\rX"])
    _assert_goaway_protocol_error(received, closed)


def _request_over(sock: socket.socket, pieces_of_preface: list[bytes]) -> bytes:
    """The real preface (in ``pieces``), SETTINGS and a GET; what came back within 5 s."""
    block = Encoder().encode(
        [(":method", "GET"), (":scheme", "http"), (":path", "/plain"), (":authority", "a.test")]
    )
    rest = frame(SETTINGS, 0, 0) + frame(HEADERS, END_STREAM | END_HEADERS, 1, block)
    for piece in pieces_of_preface:
        sock.sendall(piece)
        time.sleep(0.05)
    sock.sendall(rest)
    received = bytearray()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if any(k == DATA and f & END_STREAM and s == 1 for k, f, s, _ in frames_in(received)):
            break
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            data = sock.recv(65536)
        except TimeoutError:
            break
        if not data:
            break
        received += data
    return bytes(received)


@pytest.mark.parametrize(
    "pieces",
    [[PREFACE], [PREFACE[:3], PREFACE[3:12], PREFACE[12:]], [bytes((b,)) for b in PREFACE]],
    ids=["whole", "split", "byte-by-byte"],
)
def test_the_real_preface_still_opens_http2(target, pieces):
    with socket.create_connection((HOST, target.port), timeout=8) as sock:
        received = _request_over(sock, pieces)
    frames = frames_in(received)
    assert any(k == HEADERS and s == 1 for k, _, s, _ in frames), frames
    assert any(k == DATA and f & END_STREAM and s == 1 for k, f, s, _ in frames), frames
    assert goaways(received) == []


def test_the_real_preface_over_tls_still_opens_http2(target):
    with _tls_socket(target.ports["secure"], ["h2"]) as sock:
        received = _request_over(sock, [PREFACE[:10], PREFACE[10:]])
    assert any(k == HEADERS and s == 1 for k, _, s, _ in frames_in(received))
    assert goaways(received) == []


@pytest.mark.parametrize(
    "pieces",
    [
        [b"POST /plain HTTP/1.1\r\nHost: a.test\r\nContent-Length: 0\r\n\r\n"],
        [b"P", b"OST /plain HTTP/1.1\r\nHost: a.test\r\nContent-Length: 0\r\n\r\n"],
        [b"PUT /plain HTTP/1.1\r\nHost: a.test\r\nContent-Length: 0\r\n\r\n"],
        [b"GET /plain HTTP/1.1\r\nHost: a.test\r\n\r\n"],
    ],
    ids=["post", "post-split-after-p", "put", "get"],
)
def test_http1_requests_still_go_to_http1(target, pieces):
    with socket.create_connection((HOST, target.port), timeout=8) as sock:
        for piece in pieces:
            sock.sendall(piece)
            time.sleep(0.05)
        sock.settimeout(5)
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 200"), answer[:100]


# ---------------------------------------------------------------- closed streams


def _first_piece(client: StampingClient, stream_id: int) -> None:
    wait_until(
        lambda: client.on_stream(stream_id, DATA),
        timeout=10,
        what=f"the first body piece on stream {stream_id}",
    )


def _assert_nothing_after(client: StampingClient, stream_id: int, reset_at: float) -> None:
    """Read on past the next piece the upstream would have sent: no frame of the stream
    came after the reset (the last piece before it had already arrived, and the next one
    leaves the upstream PIECE_INTERVAL later)."""
    time.sleep(PIECE_INTERVAL * 2)
    late = client.on_stream(stream_id, after=reset_at)
    assert late == [], f"frames on stream {stream_id} after its RST_STREAM: {late}"


def test_nothing_goes_out_after_the_client_reset_and_the_h1_upstream_is_closed(target, upstreams):
    h1, _ = upstreams
    with StampingClient(target.port) as client:
        with h1.lock:
            before = set(h1.streaming)
        client.get(1, "/stream")
        _first_piece(client, 1)
        reset_at = client.reset(1)
        with h1.lock:
            (connection,) = h1.streaming - before
        # The upstream's connection is closed at once: its answer was not complete, so it
        # cannot be reused.
        closed_at = wait_until(
            lambda: h1.closed_at.get(connection), timeout=5, what="the upstream to be closed"
        )
        assert closed_at - reset_at < PIECE_INTERVAL
        _assert_nothing_after(client, 1, reset_at)
        assert client.goaway_code is None


def test_nothing_goes_out_after_the_client_reset_and_the_h2_upstream_stream_is_reset(
    target, upstreams
):
    _, h2 = upstreams
    with StampingClient(target.port) as client:
        with h2.lock:
            seen = len(h2.resets)
        client.get(1, "/h2/stream")
        _first_piece(client, 1)
        reset_at = client.reset(1)
        wait_until(lambda: len(h2.resets) > seen, timeout=5, what="the upstream stream's reset")
        with h2.lock:
            when, _, code = h2.resets[seen]
        assert code == CANCEL
        assert when - reset_at < PIECE_INTERVAL
        _assert_nothing_after(client, 1, reset_at)
        assert client.goaway_code is None


def test_data_and_headers_on_streams_the_client_reset_get_stream_closed(target):
    with StampingClient(target.port) as client:
        client.get(1, "/stream")
        client.get(3, "/stream")
        _first_piece(client, 1)
        _first_piece(client, 3)
        client.reset(1)
        client.reset(3)
        time.sleep(0.2)
        assert client.resets == {}  # a reset is never answered with a reset
        client.send(frame(DATA, END_STREAM, 1, b"after my own reset"))
        wait_until(lambda: 1 in client.resets, timeout=5, what="RST_STREAM on stream 1")
        assert client.resets[1] == STREAM_CLOSED
        trailers = client.encoder.encode([("x-late", "1")])
        client.send(frame(HEADERS, END_STREAM | END_HEADERS, 3, trailers))
        wait_until(lambda: 3 in client.resets, timeout=5, what="RST_STREAM on stream 3")
        assert client.resets[3] == STREAM_CLOSED
        # Stream errors only: the connection still serves.
        client.get(5, "/plain")
        wait_until(
            lambda: [f for f in client.on_stream(5, DATA) if f[2] & END_STREAM],
            timeout=5,
            what="the answer on stream 5",
        )
        assert client.goaway_code is None


def test_data_on_a_stream_closed_both_ways_is_a_connection_error(target):
    with StampingClient(target.port) as client:
        client.get(1, "/plain")
        wait_until(
            lambda: [f for f in client.on_stream(1) if f[2] & END_STREAM],
            timeout=5,
            what="the end of the answer on stream 1",
        )
        client.send(frame(DATA, 0, 1, b"after both ends"))
        assert client.wait_closed(5), "the connection stayed open"
        assert client.goaway_code == STREAM_CLOSED


def test_data_on_a_half_closed_stream_is_a_stream_error_and_cancels_it(target, upstreams):
    h1, _ = upstreams
    with StampingClient(target.port) as client:
        with h1.lock:
            before = set(h1.streaming)
        client.get(1, "/stream")
        _first_piece(client, 1)
        client.send(frame(DATA, 0, 1, b"after END_STREAM"))
        wait_until(lambda: 1 in client.resets, timeout=5, what="RST_STREAM on stream 1")
        assert client.resets[1] == STREAM_CLOSED
        with h1.lock:
            (connection,) = h1.streaming - before
        wait_until(
            lambda: h1.closed_at.get(connection), timeout=5, what="the upstream to be closed"
        )
        assert client.goaway_code is None
