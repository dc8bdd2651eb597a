"""The HTTP/2 server connection, driven in memory by the h2 library acting as the client.

The gateway is real (its config, router and exchanges), and so is the upstream (an aiohttp
server on port 0 in the same loop); only the client socket is replaced by a transport that
keeps what the server writes, which the client then reads as frames.
"""

from __future__ import annotations

import asyncio
import hashlib
import time

import pytest
from aiohttp import web
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    InformationalResponseReceived,
    RemoteSettingsChanged,
    ResponseReceived,
    StreamEnded,
    StreamReset,
)
from h2.settings import SettingCodes

from dispa.config.load import build_gateway
from dispa.proxy.http2 import server as h2_server
from dispa.proxy.http2.server import MAX_CONCURRENT_STREAMS, H2ServerConnection
from dispa.proxy.http2.stream import OUTPUT_HIGH_WATER
from dispa.proxy.server import Gateway

# ---------------------------------------------------------------- an upstream in this loop


class Upstream:
    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.held = 0
        self.port = 0
        self.runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/hello", self.hello)
        app.router.add_get("/bytes/{n}", self.stream_bytes)
        app.router.add_post("/count", self.count)
        app.router.add_route("*", "/hold", self.hold)
        app.router.add_get("/cut", self.cut)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]

    async def hello(self, request):
        return web.Response(text="hello\n", headers={"Connection": "keep-alive"})

    async def stream_bytes(self, request):
        remaining = int(request.match_info["n"])
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        while remaining > 0:
            piece = b"x" * min(remaining, 65536)
            await response.write(piece)
            remaining -= len(piece)
        await response.write_eof()
        return response

    async def count(self, request):
        body = await request.read()
        return web.json_response({"size": len(body), "sha256": hashlib.sha256(body).hexdigest()})

    async def hold(self, request):
        self.held += 1
        await self.release.wait()
        return web.Response(text="released\n")

    async def cut(self, request):
        # Promises 100000 bytes, sends 10, hangs up: cut off mid-body.
        request.transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n0123456789")
        await asyncio.sleep(0.05)
        request.transport.close()
        return web.Response()


# ---------------------------------------------------------------- the client side, in memory


class MemoryTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.closed = False
        self.eof_written = False
        self.reading = True
        self.protocol = None

    def write(self, data) -> None:
        assert not self.closed, "written after close"
        assert not self.eof_written, "written after our end of the stream"
        self.written += data

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.eof_written = True

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def get_extra_info(self, name, default=None):
        return {"peername": ("127.0.0.1", 40000)}.get(name, default)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            asyncio.get_running_loop().call_soon(self.protocol.connection_lost, None)

    def abort(self) -> None:
        self.close()

    def set_protocol(self, protocol) -> None:
        self.protocol = protocol

    def get_protocol(self):
        return self.protocol


class Client:
    """An HTTP/2 client (h2) wired to one server connection through a MemoryTransport."""

    def __init__(self, server: H2ServerConnection, window: int | None = None) -> None:
        self.server = server
        self.transport = MemoryTransport()
        self.transport.set_protocol(server)
        self.h2 = H2Connection(H2Configuration(client_side=True, header_encoding=None))
        if window is not None:
            self.h2.local_settings = type(self.h2.local_settings)(
                client=True, initial_values={SettingCodes.INITIAL_WINDOW_SIZE: window}
            )
        self.h2.initiate_connection()
        self.auto_acknowledge = True
        self.headers: dict[int, dict[bytes, bytes]] = {}
        self.informational: dict[int, list] = {}
        self.bodies: dict[int, bytearray] = {}
        self.ended: set[int] = set()
        self.resets: dict[int, int] = {}
        self.goaway: ConnectionTerminated | None = None
        self.settings: dict = {}
        server.connection_made(self.transport)
        self.send()

    def send(self) -> None:
        data = self.h2.data_to_send()
        if data and not self.transport.closed:
            self.server.data_received(data)

    def receive(self) -> None:
        data = bytes(self.transport.written)
        self.transport.written.clear()
        if not data or self.goaway is not None:
            return
        for event in self.h2.receive_data(data):
            kind = type(event)
            if kind is ResponseReceived:
                self.headers[event.stream_id] = dict(event.headers)
            elif kind is InformationalResponseReceived:
                self.informational.setdefault(event.stream_id, []).append(dict(event.headers))
            elif kind is DataReceived:
                self.bodies.setdefault(event.stream_id, bytearray()).extend(event.data)
                if self.auto_acknowledge:
                    self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif kind is StreamEnded:
                self.ended.add(event.stream_id)
            elif kind is StreamReset:
                self.resets[event.stream_id] = event.error_code
            elif kind is ConnectionTerminated:
                self.goaway = event
            elif kind is RemoteSettingsChanged:
                self.settings.update({k: v.new_value for k, v in event.changed_settings.items()})
        self.send()

    def request(self, path: str, method: str = "GET", body: bytes | None = None, extra=()):
        stream_id = self.open(path, method, extra, end_stream=body is None)
        if body is not None:
            self.h2.send_data(stream_id, body, end_stream=True)
            self.send()
        return stream_id

    def open(self, path: str, method: str = "POST", extra=(), end_stream: bool = False) -> int:
        """A new stream, its header block sent; the body (if any) is up to the caller."""
        stream_id = self.h2.get_next_available_stream_id()
        headers = [
            (b":method", method.encode()),
            (b":scheme", b"http"),
            (b":path", path.encode()),
            (b":authority", b"gw.test"),
            *extra,
        ]
        self.h2.send_headers(stream_id, headers, end_stream=end_stream)
        self.send()
        return stream_id

    async def wait(self, predicate, timeout: float = 5.0, what: str = "") -> None:
        deadline = time.monotonic() + timeout
        while True:
            self.receive()
            if predicate():
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what or predicate}")
            await asyncio.sleep(0.005)

    async def response(self, stream_id: int) -> tuple[int, bytes]:
        await self.wait(lambda: stream_id in self.ended or stream_id in self.resets)
        assert stream_id not in self.resets, f"stream reset: {self.resets[stream_id]}"
        status = int(self.headers[stream_id][b":status"])
        return status, bytes(self.bodies.get(stream_id, b""))


# ---------------------------------------------------------------- fixtures


@pytest.fixture
async def upstream():
    server = Upstream()
    await server.start()
    yield server
    server.release.set()
    await server.runner.cleanup()


@pytest.fixture
async def gateway(upstream):
    gateway = Gateway()
    config = build_gateway(
        {
            "listeners": [
                {
                    "name": "public",
                    "address": "127.0.0.1:0",
                    "limits": {"idle_timeout": "30s", "max_body_bytes": "2MiB"},
                }
            ],
            "upstreams": [
                {"name": "app", "endpoints": [{"address": f"127.0.0.1:{upstream.port}"}]}
            ],
            "routes": [
                {
                    "match": {"path_prefix": "/direct"},
                    "direct_response": {"status": 200, "body": "direct\n"},
                },
                {"match": {"path_prefix": "/"}, "upstream": "app"},
            ],
            "access_log": {"enabled": False},
        }
    )
    await gateway.apply(config)
    yield gateway
    await gateway.drain(0.5)


def connect(gateway, window: int | None = None) -> Client:
    return Client(H2ServerConnection(gateway, gateway.listeners["public"].config), window)


# ---------------------------------------------------------------- requests and responses


async def test_settings_advertise_the_stream_limit_and_a_wider_window(gateway):
    client = connect(gateway)
    await client.wait(lambda: client.settings)
    assert client.settings[SettingCodes.MAX_CONCURRENT_STREAMS] == MAX_CONCURRENT_STREAMS
    assert client.settings[SettingCodes.INITIAL_WINDOW_SIZE] == h2_server.STREAM_WINDOW
    assert client.h2.outbound_flow_control_window == h2_server.CONNECTION_WINDOW
    assert client.server in gateway.connections
    assert gateway.stats.connections_active == 1


async def test_a_local_reply_and_a_proxied_response(gateway):
    client = connect(gateway)
    direct = client.request("/direct")
    proxied = client.request("/hello")
    assert await client.response(direct) == (200, b"direct\n")
    assert await client.response(proxied) == (200, b"hello\n")
    head = client.headers[proxied]
    assert head[b"via"] == b"1.1 dispa"
    assert head[b"x-request-id"]
    # Hop-by-hop fields from the upstream are malformed in HTTP/2: never sent on.
    assert b"connection" not in head and b"keep-alive" not in head
    # Both went through exchanges and were counted like HTTP/1.1 requests.
    assert sum(gateway.stats.requests.values()) == 2


async def test_head_answers_with_headers_only(gateway):
    client = connect(gateway)
    stream_id = client.request("/hello", method="HEAD")
    status, body = await client.response(stream_id)
    assert (status, body) == (200, b"")
    assert client.headers[stream_id][b"content-length"] == b"6"


async def test_request_body_reaches_the_upstream_intact(gateway):
    client = connect(gateway)
    payload = bytes(range(256)) * 4096  # 1 MiB: more than one stream window
    stream_id = client.open("/count")
    sent = 0
    while sent < len(payload):
        window = client.h2.local_flow_control_window(stream_id)
        size = min(window, client.h2.max_outbound_frame_size, len(payload) - sent)
        if size:
            client.h2.send_data(stream_id, payload[sent : sent + size])
            sent += size
            client.send()
        else:
            await client.wait(lambda: client.h2.local_flow_control_window(stream_id) > 0)
    client.h2.end_stream(stream_id)
    client.send()
    status, body = await client.response(stream_id)
    assert status == 200
    assert body.decode() == (
        f'{{"size": {len(payload)}, "sha256": "{hashlib.sha256(payload).hexdigest()}"}}'
    )


async def test_expect_continue_gets_an_interim_answer(gateway):
    client = connect(gateway)
    stream_id = client.open("/count", extra=[(b"expect", b"100-continue")])
    await client.wait(lambda: stream_id in client.informational)
    assert client.informational[stream_id][0][b":status"] == b"100"
    client.h2.send_data(stream_id, b"abc", end_stream=True)
    client.send()
    status, body = await client.response(stream_id)
    assert status == 200 and b'"size": 3' in body


async def test_an_early_answer_resets_the_unread_body_with_no_error(gateway):
    client = connect(gateway)
    stream_id = client.open("/direct")
    client.h2.send_data(stream_id, b"part of a body that never ends")
    client.send()
    await client.wait(lambda: stream_id in client.resets)
    assert client.bodies[stream_id] == b"direct\n"
    assert client.resets[stream_id] == ErrorCodes.NO_ERROR
    assert not client.server.streams


async def test_a_body_over_the_limit_is_refused_with_413(gateway):
    client = connect(gateway)
    stream_id = client.open("/count", extra=[(b"content-length", b"3000000")])
    await client.wait(lambda: stream_id in client.resets)
    assert client.headers[stream_id][b":status"] == b"413"
    assert client.resets[stream_id] == ErrorCodes.NO_ERROR  # the body is not wanted
    assert gateway.stats.snapshot()["local_replies"].get("body_too_large") == 1


async def test_a_header_list_over_the_limit_is_answered_431(gateway):
    # 70,000 bytes against the 64 KiB limit: answered on its stream, as HTTP/1.1's 431;
    # the connection goes on.
    client = connect(gateway)
    huge = client.request("/direct", extra=[(b"x-big", b"v" * 70_000)])
    status, _body = await client.response(huge)
    assert status == 431
    assert gateway.stats.snapshot()["local_replies"].get("header_too_large") == 1
    assert await client.response(client.request("/direct")) == (200, b"direct\n")


# ---------------------------------------------------------------- flow control


async def test_response_bytes_never_exceed_the_client_window_and_the_upstream_pauses(gateway):
    # A client that gives each stream 16 KiB and never acknowledges: a slow reader.
    client = connect(gateway, window=16384)
    client.auto_acknowledge = False
    client.h2.increment_flow_control_window(2**30)  # the connection's window is not the limit
    client.send()
    size = 4 * 1024 * 1024
    slow = client.request(f"/bytes/{size}")
    await client.wait(lambda: len(client.bodies.get(slow, b"")) == 16384, what="a window of data")
    stream = client.server.streams[slow]
    await client.wait(lambda: stream.upstream_paused, what="the upstream to pause")
    assert stream.output_bytes > OUTPUT_HIGH_WATER
    assert stream.exchange.conn.reading_paused
    await asyncio.sleep(0.1)
    client.receive()
    assert len(client.bodies[slow]) == 16384  # not one byte past the window
    # Another stream on the same connection is not held up by the slow one.
    quick = client.request("/hello")
    assert await client.response(quick) == (200, b"hello\n")
    # The reader catches up: the rest flows, the upstream is read again.
    client.auto_acknowledge = True
    client.h2.acknowledge_received_data(16384, slow)
    client.send()
    await client.wait(lambda: slow in client.ended, timeout=20, what="the whole body")
    assert len(client.bodies[slow]) == size
    assert not client.server.streams


async def test_request_data_is_acknowledged_only_as_the_exchange_takes_it(gateway, upstream):
    client = connect(gateway)
    stream_id = client.open("/hold")
    await client.wait(lambda: stream_id in client.server.streams)
    stream = client.server.streams[stream_id]
    stream.pause_reading("upstream")  # as the exchange does when its upstream is full
    window = client.h2.local_flow_control_window(stream_id)
    frame = client.h2.max_outbound_frame_size
    for start in range(0, window, frame):
        client.h2.send_data(stream_id, b"y" * min(frame, window - start))
    client.send()
    client.receive()
    assert client.h2.local_flow_control_window(stream_id) == 0  # nothing given back
    assert stream.unacknowledged == window
    stream.resume_reading("upstream")
    # The WINDOW_UPDATE leaves with the connection's next write, at the end of this turn.
    await client.wait(lambda: client.h2.local_flow_control_window(stream_id) == window)
    client.h2.end_stream(stream_id)
    client.send()
    upstream.release.set()
    assert await client.response(stream_id) == (200, b"released\n")


# ---------------------------------------------------------------- stream limits and errors


async def test_streams_over_the_limit_are_refused_one_by_one(gateway, upstream):
    client = connect(gateway)
    # Sent before the client has read our SETTINGS, so its h2 does not stop it.
    ids = [client.request("/hold") for _ in range(MAX_CONCURRENT_STREAMS + 1)]
    await client.wait(lambda: ids[-1] in client.resets)
    assert client.resets[ids[-1]] == ErrorCodes.REFUSED_STREAM
    assert len(client.resets) == 1 and client.goaway is None
    await client.wait(lambda: upstream.held >= MAX_CONCURRENT_STREAMS, timeout=10)
    upstream.release.set()
    for stream_id in ids[:-1]:
        assert (await client.response(stream_id))[0] == 200


async def test_a_client_reset_ends_that_exchange_only(gateway):
    client = connect(gateway, window=16384)
    client.auto_acknowledge = False
    client.h2.increment_flow_control_window(2**30)
    client.send()
    stream_id = client.request("/bytes/4000000")
    await client.wait(lambda: stream_id in client.bodies)
    exchange = client.server.streams[stream_id].exchange
    client.h2.reset_stream(stream_id, ErrorCodes.CANCEL)
    client.send()
    assert exchange.finished and exchange.ctx.status == 200
    assert exchange.ctx.reason == "client_disconnected"
    assert stream_id not in client.server.streams
    client.auto_acknowledge = True
    assert await client.response(client.request("/hello")) == (200, b"hello\n")


async def test_a_stream_cut_off_upstream_is_reset_with_internal_error(gateway):
    client = connect(gateway)
    stream_id = client.request("/cut")
    await client.wait(lambda: stream_id in client.resets)
    assert client.resets[stream_id] == ErrorCodes.INTERNAL_ERROR
    assert client.headers[stream_id][b":status"] == b"200"
    assert await client.response(client.request("/direct")) == (200, b"direct\n")


async def test_a_protocol_error_ends_the_connection_with_goaway(gateway):
    client = connect(gateway)
    client.receive()
    # DATA on stream 0 is a connection error (RFC 9113 6.1).
    client.server.data_received(b"\x00\x00\x01\x00\x00\x00\x00\x00\x00x")
    data = bytes(client.transport.written)
    client.transport.written.clear()
    events = client.h2.receive_data(data)
    (goaway,) = [e for e in events if isinstance(e, ConnectionTerminated)]
    assert goaway.error_code == ErrorCodes.PROTOCOL_ERROR
    # Our side is shut; what the client still sends is read and dropped (a lingering
    # close), so closing cannot reset the connection under the GOAWAY.
    assert client.transport.eof_written and client.transport.reading
    client.server.data_received(b"\x00\x00\x08\x06\x00\x00\x00\x00\x0012345678")  # PING
    assert not client.transport.written


# ---------------------------------------------------------------- drain and timeouts


async def test_drain_sends_goaway_and_finishes_the_stream_in_flight(gateway, upstream):
    client = connect(gateway)
    in_flight = client.request("/hold")
    await client.wait(lambda: upstream.held == 1)
    client.server.close_if_idle()
    await client.wait(lambda: client.goaway is not None)
    assert client.goaway.error_code == ErrorCodes.NO_ERROR
    assert client.goaway.last_stream_id == in_flight
    assert not client.transport.closed
    # The h2 client refuses to open streams after GOAWAY: send one as raw frames would.
    client.goaway = None
    client.h2.state_machine.state = type(client.h2.state_machine.state).CLIENT_OPEN
    late = client.request("/direct")
    await client.wait(lambda: late in client.resets)
    assert client.resets[late] == ErrorCodes.REFUSED_STREAM
    upstream.release.set()
    assert await client.response(in_flight) == (200, b"released\n")
    await client.wait(lambda: client.transport.closed, what="the close after the last stream")
    assert client.server not in gateway.connections


async def test_a_client_goaway_lets_the_stream_in_flight_finish(gateway, upstream):
    # GOAWAY(NO_ERROR) from a client ends the connection gracefully (RFC 9113 6.8): the
    # stream it already opened is answered, then the connection closes.
    client = connect(gateway)
    in_flight = client.request("/hold")
    await client.wait(lambda: upstream.held == 1)
    goaway = b"\x00\x00\x08\x07\x00\x00\x00\x00\x00" + bytes(8)  # last stream 0, NO_ERROR
    client.server.data_received(goaway)
    await client.wait(lambda: client.goaway is not None, what="our GOAWAY in answer")
    assert client.goaway.last_stream_id == in_flight
    assert not client.transport.closed
    # The test client, and h2 under it, stop reading at a GOAWAY: read on.
    client.goaway = None
    client.h2.state_machine.state = type(client.h2.state_machine.state).CLIENT_OPEN
    upstream.release.set()
    assert await client.response(in_flight) == (200, b"released\n")
    await client.wait(lambda: client.transport.closed, what="the close after the last stream")


async def test_an_idle_connection_times_out_with_goaway(gateway):
    client = connect(gateway)
    assert await client.response(client.request("/direct")) == (200, b"direct\n")
    server = client.server
    assert server.timer_reason == "idle"
    server.check_deadlines(server.deadline + 0.1)
    client.receive()
    assert client.goaway is not None and client.goaway.error_code == ErrorCodes.NO_ERROR
    assert client.transport.closed


async def test_a_request_timing_out_upstream_is_checked_by_the_ticker(gateway, upstream):
    client = connect(gateway)
    stream_id = client.request("/hold")
    await client.wait(lambda: upstream.held == 1)
    server = client.server
    assert server.exchange is not None  # the gateway's ticker visits this connection
    exchange = server.streams[stream_id].exchange
    server.check_deadlines(exchange.deadline + 0.1)
    status, body = await client.response(stream_id)
    assert status == 504 and body == b"upstream timeout\n"


async def test_connection_lost_ends_every_exchange(gateway, upstream):
    client = connect(gateway)
    ids = [client.request("/hold") for _ in range(3)]
    await client.wait(lambda: upstream.held == 3)
    exchanges = [client.server.streams[i].exchange for i in ids]
    client.server.connection_lost(None)
    assert all(e.finished and e.ctx.status == 499 for e in exchanges)
    assert client.server not in gateway.connections
    assert gateway.stats.connections_active == 0


# ---------------------------------------------------------------- floods and buffering


def raw_frame(kind: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    return (
        len(payload).to_bytes(3, "big")
        + bytes((kind, flags))
        + stream_id.to_bytes(4, "big")
        + payload
    )


async def test_a_client_that_does_not_read_is_not_read_either(gateway):
    client = connect(gateway)
    server = client.server
    server.pause_writing()  # the socket's buffer is past its high-water mark
    assert not client.transport.reading
    server.resume_writing()
    assert client.transport.reading
    assert await client.response(client.request("/direct")) == (200, b"direct\n")


async def test_a_request_reset_in_the_same_read_starts_no_exchange(gateway, upstream):
    client = connect(gateway)
    client.receive()
    stream_id = client.h2.get_next_available_stream_id()
    client.h2.send_headers(
        stream_id,
        [(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/hold"), (b":authority", b"a")],
        end_stream=True,
    )
    client.h2.reset_stream(stream_id, ErrorCodes.CANCEL)
    client.send()  # both frames in one read
    assert stream_id not in client.server.streams
    await asyncio.sleep(0.1)
    assert upstream.held == 0
    assert not gateway.stats.requests  # not even a 499: no exchange ever began
    assert gateway.stats.connections_active == 1  # the connection goes on
    assert await client.response(client.request("/direct")) == (200, b"direct\n")


async def test_a_full_connection_queue_pauses_its_streams_and_defers_new_ones(gateway):
    # Streams get no window: what their upstreams send queues up, until the connection's
    # queue passes its mark (1 MiB) and every stream's upstream is paused.
    client = connect(gateway, window=0)
    client.auto_acknowledge = False
    server = client.server
    downloads = [client.request("/bytes/2000000") for _ in range(6)]
    await client.wait(lambda: server.buffered > server.connection_high_water, what="a full queue")
    await asyncio.sleep(0.1)
    streams = [server.streams[s] for s in downloads]
    assert all(s.upstream_paused for s in streams)
    held = server.buffered
    assert held < server.connection_high_water + 6 * 300_000  # at most one read more each
    # A request that comes now waits, its body held back (not acknowledged).
    body = bytes(range(256)) * 200
    upload = client.open("/count")
    for start in range(0, 32768, 16384):
        client.h2.send_data(upload, body[start : start + 16384])
    client.send()
    waiting = server.streams[upload]
    assert waiting.exchange is None and waiting.deferred is not None
    assert waiting.unacknowledged == 32768  # its window, not the gateway, holds it back
    for start in range(32768, len(body), 16384):
        client.h2.send_data(upload, body[start : start + 16384])
    client.h2.end_stream(upload)
    client.send()
    await asyncio.sleep(0.1)
    assert server.buffered == held  # nobody read more meanwhile
    # The client reads again: the queue drains, and the waiting request is served.
    client.auto_acknowledge = True
    client.h2.update_settings({SettingCodes.INITIAL_WINDOW_SIZE: 1 << 20})
    client.send()
    await client.wait(
        lambda: all(s in client.ended for s in [*downloads, upload]), timeout=20, what="all"
    )
    assert all(len(client.bodies[s]) == 2_000_000 for s in downloads)
    status, answer = await client.response(upload)
    assert status == 200 and b'"size": 51200' in answer
    assert hashlib.sha256(body).hexdigest().encode() in answer
    assert server.buffered == 0


async def test_an_unfinished_header_block_times_out(gateway):
    client = connect(gateway)
    client.receive()
    block = b"\x82\x86\x84"  # GET http / (static table), no END_HEADERS
    client.server.data_received(raw_frame(0x1, 0x1, 1, block))
    server = client.server
    assert server.timer_reason == "header"
    server.check_deadlines(server.deadline + 0.1)
    client.receive()
    assert client.goaway is not None and client.goaway.last_stream_id == 0
    assert client.transport.eof_written


async def test_a_lingering_connection_is_aborted_in_the_end(gateway):
    client = connect(gateway)
    client.receive()
    client.server.data_received(raw_frame(0x0, 0, 0, b"x"))  # DATA on stream 0: an error
    server = client.server
    assert server.closing and server.timer_reason == "linger"
    assert not client.transport.closed
    server.check_deadlines(server.deadline + 0.1)
    assert client.transport.closed


async def test_a_request_reset_while_it_waits_lets_go_of_its_body(gateway):
    client = connect(gateway, window=0)
    client.auto_acknowledge = False
    server = client.server
    for _ in range(6):
        client.request("/bytes/2000000")
    await client.wait(lambda: server.buffered > server.connection_high_water, what="a full queue")
    upload = client.open("/count")
    for _ in range(4):
        client.h2.send_data(upload, b"z" * 16384)
    client.send()
    waiting = server.streams[upload]
    assert server.deferred == [waiting] and len(b"".join(waiting.deferred)) == 65536
    client.h2.reset_stream(upload, ErrorCodes.CANCEL)
    client.send()
    # Forgotten at once, with what it held, and its bytes are given back to the window.
    assert upload not in server.streams and not server.deferred
    assert waiting.deferred is None and waiting.unacknowledged == 0
