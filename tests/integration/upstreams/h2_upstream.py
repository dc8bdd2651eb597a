"""An HTTP/2 (prior-knowledge h2c) upstream for the integration tests, on the h2 library.

``python h2_upstream.py --port P [--name N] [--max-streams M] [--tls-cert C --tls-key K
[--alpn h2]]`` (with a certificate: h2 over TLS, offering ``--alpn`` protocols) answers by
path:

  /                 JSON: method, path, authority, the request headers, body size and
                    sha256, this connection's number and the stream id
  /bytes/N          N bytes of "x" (flow control respected); ?delay_ms= pauses between
                    16 KiB pieces
  /echo             the request body back, and its request trailers as response trailers
  /trailers         a body, then trailers grpc-status: 0 and grpc-message: all good
  /trailers-only    one HEADERS frame with END_STREAM: :status 200, grpc-status 5
  /early-hints      a 103 (Early Hints) HEADERS frame with a Link field, then as /
  /slow?ms=M        answers after M milliseconds
  /reset            RST_STREAM(INTERNAL_ERROR) instead of an answer
  /refuse           RST_STREAM(REFUSED_STREAM) instead of an answer
  /reset-mid-body   a head and 1000 bytes, then RST_STREAM(INTERNAL_ERROR)
  /die-mid-body     a head and 1000 bytes, then the connection is cut
  /goaway-once      the first time: GOAWAY refusing this stream (last_stream_id below it),
                    then the connection closes; after that: as /
  /goaway-graceful  GOAWAY(last_stream_id = this stream), then answers it as /
  /healthz          200, or 503 after /admin/health/down (200 again after /admin/health/up)
  /stats            JSON: connections accepted and open (all, and those from the gateway),
                    streams seen, most streams open at once on one connection

Every response names the server in ``x-upstream``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import ssl
import sys
from urllib.parse import parse_qs, urlsplit

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    RequestReceived,
    StreamEnded,
    StreamReset,
    TrailersReceived,
    WindowUpdated,
)
from h2.exceptions import ProtocolError, StreamClosedError
from h2.settings import SettingCodes, Settings

STATE = {
    "connections": 0,
    "open": 0,
    "gateway_connections": 0,  # connections that carried a proxied request (with Via)
    "gateway_open": 0,
    "streams": 0,
    "max_concurrent": 0,  # most streams open at once on one connection
    "healthy": True,
}
GOAWAY_DONE = {"done": False}


class StreamState:
    def __init__(self, headers) -> None:
        self.headers = headers
        self.body = bytearray()
        self.trailers = []
        self.window_open = asyncio.Event()


class H2Upstream(asyncio.Protocol):
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.h2 = H2Connection(H2Configuration(client_side=False, header_encoding=None))
        # In the SETTINGS of the preface, so the gateway knows the limit from the start.
        self.h2.local_settings = Settings(
            client=False,
            initial_values={SettingCodes.MAX_CONCURRENT_STREAMS: args.max_streams},
        )
        self.transport = None
        self.streams: dict[int, StreamState] = {}
        self.number = 0
        self.active = 0
        self.from_gateway = False

    def connection_made(self, transport) -> None:
        STATE["connections"] += 1
        STATE["open"] += 1
        self.number = STATE["connections"]
        self.transport = transport
        self.h2.initiate_connection()
        self.flush()

    def connection_lost(self, exc) -> None:
        STATE["open"] -= 1
        if self.from_gateway:
            STATE["gateway_open"] -= 1
        for state in self.streams.values():
            state.window_open.set()

    def flush(self) -> None:
        data = self.h2.data_to_send()
        if data and not self.transport.is_closing():
            self.transport.write(data)

    def data_received(self, data: bytes) -> None:
        try:
            events = self.h2.receive_data(data)
        except ProtocolError:
            self.flush()
            self.transport.close()
            return
        for event in events:
            if isinstance(event, RequestReceived):
                STATE["streams"] += 1
                self.active += 1
                STATE["max_concurrent"] = max(STATE["max_concurrent"], self.active)
                self.streams[event.stream_id] = StreamState(event.headers)
                if not self.from_gateway and any(n == b"via" for n, _ in event.headers):
                    self.from_gateway = True
                    STATE["gateway_connections"] += 1
                    STATE["gateway_open"] += 1
            elif isinstance(event, DataReceived):
                state = self.streams.get(event.stream_id)
                if state is not None:
                    state.body += event.data
                self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, TrailersReceived):
                state = self.streams.get(event.stream_id)
                if state is not None:
                    state.trailers = event.headers
            elif isinstance(event, StreamEnded):
                state = self.streams.get(event.stream_id)
                if state is not None:
                    asyncio.get_running_loop().create_task(self.answer(event.stream_id, state))
            elif isinstance(event, StreamReset):
                self._forget(event.stream_id)
            elif isinstance(event, WindowUpdated):
                for state in self.streams.values():
                    state.window_open.set()
            elif isinstance(event, ConnectionTerminated):
                self.transport.close()
        self.flush()

    def _forget(self, stream_id: int) -> None:
        state = self.streams.pop(stream_id, None)
        if state is not None:
            self.active -= 1
            state.window_open.set()

    # ------------------------------------------------------------ answers

    def send_headers(self, stream_id: int, status: int, extra=(), end_stream=False) -> None:
        headers = [(b":status", str(status).encode()), (b"x-upstream", self.args.name.encode())]
        self.h2.send_headers(stream_id, headers + list(extra), end_stream=end_stream)
        self.flush()

    async def send_body(self, stream_id: int, body: bytes, delay: float = 0.0, end=True) -> None:
        state = self.streams[stream_id]
        view = memoryview(body)
        while view:
            window = min(
                self.h2.local_flow_control_window(stream_id), self.h2.max_outbound_frame_size
            )
            if window <= 0:
                state.window_open.clear()
                await state.window_open.wait()
                if stream_id not in self.streams or self.transport.is_closing():
                    return
                continue
            piece, view = view[: min(window, 16384)], view[min(window, 16384) :]
            self.h2.send_data(stream_id, bytes(piece))
            self.flush()
            if delay:
                await asyncio.sleep(delay)
            if stream_id not in self.streams:
                return
        if end:
            self.h2.end_stream(stream_id)
            self.flush()

    async def answer(self, stream_id: int, state: StreamState) -> None:
        # The peer may reset the stream meanwhile.
        with contextlib.suppress(StreamClosedError, ProtocolError, KeyError):
            await self._answer(stream_id, state)
        self._forget(stream_id)

    async def _answer(self, stream_id: int, state: StreamState) -> None:
        request = dict(state.headers)
        url = urlsplit(request[b":path"].decode())
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        path = url.path
        json_type = [(b"content-type", b"application/json")]
        if path.startswith("/bytes/"):
            size = int(path.rsplit("/", 1)[1])
            self.send_headers(stream_id, 200, [(b"content-length", str(size).encode())])
            await self.send_body(stream_id, b"x" * size, int(query.get("delay_ms", 0)) / 1000)
        elif path == "/echo":
            self.send_headers(stream_id, 200)
            await self.send_body(stream_id, bytes(state.body), end=False)
            trailers = [(b"x-echo-" + n, v) for n, v in state.trailers] or [(b"x-echo", b"none")]
            self.h2.send_headers(stream_id, trailers, end_stream=True)
            self.flush()
        elif path == "/trailers":
            self.send_headers(stream_id, 200, [(b"content-type", b"application/grpc")])
            await self.send_body(stream_id, b"trailered body\n", end=False)
            trailers = [(b"grpc-status", b"0"), (b"grpc-message", b"all good")]
            self.h2.send_headers(stream_id, trailers, end_stream=True)
            self.flush()
        elif path == "/trailers-only":
            extra = [
                (b"content-type", b"application/grpc"),
                (b"grpc-status", b"5"),
                (b"grpc-message", b"not found"),
            ]
            self.send_headers(stream_id, 200, extra, end_stream=True)
        elif path == "/early-hints":
            hints = [(b":status", b"103"), (b"link", b"</style.css>; rel=preload; as=style")]
            self.h2.send_headers(stream_id, hints)
            self.flush()
            await asyncio.sleep(0.05)
            await self.send_json(stream_id, state, json_type)
        elif path == "/reset":
            self.h2.reset_stream(stream_id, ErrorCodes.INTERNAL_ERROR)
            self.flush()
        elif path == "/refuse":
            self.h2.reset_stream(stream_id, ErrorCodes.REFUSED_STREAM)
            self.flush()
        elif path in ("/reset-mid-body", "/die-mid-body"):
            self.send_headers(stream_id, 200, [(b"content-length", b"100000")])
            await self.send_body(stream_id, b"x" * 1000, end=False)
            await asyncio.sleep(0.1)
            if path == "/die-mid-body":
                self.transport.abort()
            else:
                self.h2.reset_stream(stream_id, ErrorCodes.INTERNAL_ERROR)
                self.flush()
        elif path == "/goaway-once" and not GOAWAY_DONE["done"]:
            GOAWAY_DONE["done"] = True
            self.h2.close_connection(last_stream_id=stream_id - 2)
            self.flush()
            await asyncio.sleep(0.2)
            self.transport.close()
        elif path == "/slow":
            await asyncio.sleep(int(query.get("ms", 500)) / 1000)
            await self.send_json(stream_id, state, json_type)
        elif path == "/goaway-graceful":
            self.h2.close_connection(last_stream_id=stream_id)
            # h2 would send nothing more after its own GOAWAY: keep the streams going.
            self.h2.state_machine.state = self.h2.state_machine.state.__class__.SERVER_OPEN
            self.flush()
            await self.send_json(stream_id, state, json_type)
        elif path == "/healthz":
            status = 200 if STATE["healthy"] else 503
            self.send_headers(stream_id, status, [(b"content-length", b"3")])
            await self.send_body(stream_id, b"ok\n")
        elif path.startswith("/admin/health/"):
            STATE["healthy"] = path.endswith("/up")
            self.send_headers(stream_id, 200, end_stream=True)
        elif path == "/stats":
            body = json.dumps(STATE).encode()
            self.send_headers(stream_id, 200, json_type)
            await self.send_body(stream_id, body)
        else:
            await self.send_json(stream_id, state, json_type)

    async def send_json(self, stream_id: int, state: StreamState, extra) -> None:
        request = state.headers
        document = {
            "upstream": self.args.name,
            "connection": self.number,
            "stream": stream_id,
            "pseudo": {n.decode(): v.decode() for n, v in request if n.startswith(b":")},
            "headers": [[n.decode(), v.decode()] for n, v in request if not n.startswith(b":")],
            "size": len(state.body),
            "sha256": hashlib.sha256(state.body).hexdigest(),
        }
        body = json.dumps(document).encode()
        self.send_headers(stream_id, 200, [*extra, (b"content-length", str(len(body)).encode())])
        await self.send_body(stream_id, body)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--name", default="h2")
    parser.add_argument("--max-streams", type=int, default=100)
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    parser.add_argument("--alpn", default="h2")
    args = parser.parse_args()
    context = None
    if args.tls_cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.tls_cert, args.tls_key)
        context.set_alpn_protocols(args.alpn.split(","))
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: H2Upstream(args), "127.0.0.1", args.port, ssl=context)
    print(f"listening on {args.port}", file=sys.stderr, flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
