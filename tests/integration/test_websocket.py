"""WebSocket proxying (RFC 6455): the upgrade goes through, then bytes flow untouched.

The upstream is a real aiohttp WebSocket echo server in its own process (this file, run
as a script); clients are aiohttp's WebSocket client and raw sockets for what it cannot
do (fragmented frames, a refused upgrade followed by keep-alive requests).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import signal
import struct
import sys
import time
from pathlib import Path

import aiohttp
import pytest
from aiohttp import WSMsgType, web

if __name__ != "__main__":
    from conftest import (
        HOST,
        PYTHON,
        Gateway,
        Processes,
        Upstream,
        async_wait_until,
        free_port,
        http_get,
        make_config,
        raw_connection,
        read_response,
    )

MIB = 1024 * 1024
WAIT = 10.0  # the bound on every receive in these tests
WS_TIMEOUT = aiohttp.ClientWSTimeout(ws_receive=None, ws_close=WAIT)


# ---------------------------------------------------------------- the echo upstream


def serve(port: int) -> None:
    """Echo text and binary; "close:CODE:REASON" makes the server close with that code."""
    closes: list[dict] = []

    async def websocket(request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(max_msg_size=0, protocols=("echo",))
        await ws.prepare(request)
        async for message in ws:
            if message.type == WSMsgType.TEXT:
                if message.data.startswith("close:"):
                    _, code, reason = message.data.split(":", 2)
                    await ws.close(code=int(code), message=reason.encode())
                    break
                await ws.send_str(message.data)
            elif message.type == WSMsgType.BINARY:
                await ws.send_bytes(message.data)
        closes.append({"code": ws.close_code, "path": request.path})
        return ws

    async def plain(request: web.Request) -> web.Response:
        return web.Response(text="plain answer")

    async def recorded_closes(request: web.Request) -> web.Response:
        return web.json_response(closes)

    app = web.Application()
    app.router.add_get("/ws", websocket)
    app.router.add_get("/idle/ws", websocket)
    app.router.add_get("/plain", plain)
    app.router.add_get("/closes", recorded_closes)
    web.run_app(app, host="127.0.0.1", port=port, print=None, handle_signals=True)


if __name__ == "__main__":
    serve(int(sys.argv[1]))
    sys.exit(0)


# ---------------------------------------------------------------- fixtures


def echo_upstream(processes: Processes, name: str) -> Upstream:
    port = free_port()
    process = processes.start([PYTHON, str(Path(__file__).resolve()), str(port)], name)
    upstream = Upstream(process, name, port, "/plain")
    upstream.wait_ready()
    return upstream


def websocket_config(upstream: Upstream, **extra) -> dict:
    return make_config(
        upstreams=[
            {"name": "ws", "endpoints": [{"address": upstream.address}]},
            {
                "name": "ws-short",
                "endpoints": [{"address": upstream.address}],
                "timeouts": {"tunnel_idle": "1s"},
            },
        ],
        routes=[
            {"match": {"path_prefix": "/idle/"}, "upstream": "ws-short"},
            {"match": {"path_prefix": "/"}, "upstream": "ws"},
        ],
        **extra,
    )


@pytest.fixture(scope="module")
def echo(module_processes: Processes) -> Upstream:
    return echo_upstream(module_processes, "ws-echo")


@pytest.fixture(scope="module")
def gateway(
    module_processes: Processes, tmp_path_factory: pytest.TempPathFactory, echo: Upstream
) -> Gateway:
    workdir = tmp_path_factory.mktemp("websocket")
    log = {"enabled": True, "path": str(workdir / "access.log"), "flush_interval": "100ms"}
    return module_processes.gateway(websocket_config(echo, access_log=log), workdir)


def ws_url(gateway: Gateway, path: str = "/ws") -> str:
    return f"ws://{HOST}:{gateway.port}{path}"


async def receive(ws: aiohttp.ClientWebSocketResponse) -> aiohttp.WSMessage:
    return await asyncio.wait_for(ws.receive(), WAIT)


# ---------------------------------------------------------------- echo through the tunnel


async def test_text_and_binary_echo_and_handshake_headers(gateway: Gateway) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(ws_url(gateway), protocols=("echo",), timeout=WS_TIMEOUT) as ws,
    ):
        # The handshake went through the gateway both ways, subprotocol included.
        assert ws.protocol == "echo"
        assert "dispa" in ws._response.headers.get("Via", "")
        for i in range(20):
            await ws.send_str(f"hello {i}")
            message = await receive(ws)
            assert (message.type, message.data) == (WSMsgType.TEXT, f"hello {i}")
        blob = os.urandom(70_000)
        await ws.send_bytes(blob)
        message = await receive(ws)
        assert (message.type, message.data) == (WSMsgType.BINARY, blob)


async def test_ten_megabyte_message(gateway: Gateway) -> None:
    blob = os.urandom(10 * MIB)
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(ws_url(gateway), max_msg_size=0, timeout=WS_TIMEOUT) as ws,
    ):
        await ws.send_bytes(blob)
        message = await asyncio.wait_for(ws.receive(), 30)
        assert message.type == WSMsgType.BINARY
        assert hashlib.sha256(message.data).digest() == hashlib.sha256(blob).digest()


async def test_ping_pong_passes_through(gateway: Gateway) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(ws_url(gateway), autoping=False, timeout=WS_TIMEOUT) as ws,
    ):
        await ws.ping(b"are you there")
        message = await receive(ws)
        assert (message.type, message.data) == (WSMsgType.PONG, b"are you there")


async def test_close_code_from_server_reaches_client(gateway: Gateway) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(ws_url(gateway), timeout=WS_TIMEOUT) as ws,
    ):
        await ws.send_str("close:4001:going away now")
        message = await receive(ws)
        assert message.type == WSMsgType.CLOSE
        assert message.data == 4001
        assert message.extra == "going away now"
        assert ws.close_code == 4001


async def test_close_code_from_client_reaches_server(gateway: Gateway, echo: Upstream) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(ws_url(gateway), timeout=WS_TIMEOUT) as ws,
    ):
        await ws.send_str("before close")
        assert (await receive(ws)).data == "before close"
        await asyncio.wait_for(ws.close(code=4002, message=b"client leaves"), WAIT)
        # aiohttp's server answers a close with its own 1000; what matters is what it got.

    def server_saw_it() -> bool:
        status, body = _get(echo.url("/closes"))
        return status == 200 and {"code": 4002, "path": "/ws"} in json.loads(body)

    await async_wait_until(server_saw_it, timeout=WAIT, what="the upstream to see code 4002")


async def test_fragmented_message_passes_through_raw(gateway: Gateway) -> None:
    """Frames are not parsed: a message in three fragments reaches the upstream intact."""
    with raw_connection(gateway.port, timeout=WAIT) as (sock, stream):
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall(
            (
                "GET /ws HTTP/1.1\r\nHost: example.test\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
            # The first fragment rides with the handshake: held until the 101, then relayed.
            + client_frame(0x1, b"frag", fin=False)
        )
        response = read_response(stream)
        assert response.status == 101
        assert response.header("upgrade").lower() == "websocket"
        assert response.header("connection").lower() == "upgrade"
        expected = base64.b64encode(
            hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()
        ).decode()
        assert response.header("sec-websocket-accept") == expected
        sock.sendall(client_frame(0x0, b"mented ", fin=False))
        sock.sendall(client_frame(0x9, b"mid-ping"))  # control frames may interleave
        sock.sendall(client_frame(0x0, b"message", fin=True))
        frames = [read_frame(stream), read_frame(stream)]
        assert sorted(frames) == [(0x1, b"fragmented message"), (0xA, b"mid-ping")]


# ---------------------------------------------------------------- refusals and plain HTTP


async def test_non_101_answer_is_a_normal_response_and_keep_alive_goes_on(
    gateway: Gateway,
) -> None:
    with raw_connection(gateway.port, timeout=WAIT) as (sock, stream):
        sock.sendall(
            b"GET /plain HTTP/1.1\r\nHost: example.test\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            b"Sec-WebSocket-Version: 13\r\n\r\n"
            # Pipelined after the handshake: held, then parsed as HTTP once it is refused.
            b"GET /plain HTTP/1.1\r\nHost: example.test\r\n\r\n"
        )
        first = read_response(stream)
        assert (first.status, first.body) == (200, b"plain answer")
        assert first.header("upgrade") is None
        second = read_response(stream)
        assert (second.status, second.body) == (200, b"plain answer")
        sock.sendall(b"GET /plain HTTP/1.1\r\nHost: example.test\r\n\r\n")
        third = read_response(stream)
        assert (third.status, third.body) == (200, b"plain answer")

    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await session.ws_connect(ws_url(gateway, "/plain"), timeout=WS_TIMEOUT)
        assert refused.value.status == 200


async def test_other_upgrades_are_ignored_and_connect_refused(gateway: Gateway) -> None:
    with raw_connection(gateway.port, timeout=WAIT) as (sock, stream):
        sock.sendall(
            b"GET /plain HTTP/1.1\r\nHost: example.test\r\nUpgrade: h2c\r\n"
            b"Connection: Upgrade, HTTP2-Settings\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n"
        )
        answer = read_response(stream)
        assert (answer.status, answer.body) == (200, b"plain answer")
    with raw_connection(gateway.port, timeout=WAIT) as (sock, stream):
        sock.sendall(b"CONNECT example.test:443 HTTP/1.1\r\nHost: example.test:443\r\n\r\n")
        assert read_response(stream).status == 501


async def test_plain_http_works_beside_open_tunnels(gateway: Gateway) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(ws_url(gateway), timeout=WS_TIMEOUT) as ws,
    ):
        async with session.get(gateway.url("/plain")) as response:
            assert response.status == 200
            assert await response.text() == "plain answer"
        await ws.send_str("still here")
        assert (await receive(ws)).data == "still here"


async def test_tunnel_counted_as_101(gateway: Gateway) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(ws_url(gateway), timeout=WS_TIMEOUT) as ws,
    ):
        await ws.send_str("count me")
        assert (await receive(ws)).data == "count me"
    log_path = gateway.workdir / "access.log"

    def tunnel_records() -> list[dict]:
        lines = log_path.read_text().splitlines() if log_path.exists() else []
        records = [json.loads(line) for line in lines]
        return [r for r in records if r["status"] == 101 and r["upstream"] == "ws"]

    records = await async_wait_until(tunnel_records, timeout=WAIT, what="a 101 in the log")
    assert records[-1]["bytes_in"] > 0 and records[-1]["bytes_out"] > 0
    await async_wait_until(
        lambda: gateway.metric("dispa_requests_total", status_class="1xx") >= 1,
        timeout=WAIT,
        what="tunnels counted in dispa_requests_total",
    )


# ---------------------------------------------------------------- endings


async def test_idle_tunnel_is_closed(gateway: Gateway) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(ws_url(gateway, "/idle/ws"), autoping=False, timeout=WS_TIMEOUT) as ws,
    ):
        await ws.send_str("then silence")
        assert (await receive(ws)).data == "then silence"
        started = time.monotonic()
        message = await receive(ws)  # tunnel_idle is 1s: the gateway closes both sides
        assert message.type in (WSMsgType.CLOSED, WSMsgType.CLOSE, WSMsgType.ERROR)
        assert 0.5 < time.monotonic() - started < 5.0


async def test_upstream_killed_mid_session(processes: Processes, tmp_path: Path) -> None:
    echo = echo_upstream(processes, "ws-doomed")
    workdir = tmp_path / "gw"
    gateway = processes.gateway(websocket_config(echo, access_log=access_log(workdir)), workdir)
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(
            ws_url(gateway), headers={"X-Request-Id": "killed"}, timeout=WS_TIMEOUT
        ) as ws,
    ):
        await ws.send_str("alive")
        assert (await receive(ws)).data == "alive"
        os.kill(echo.process.pid, signal.SIGKILL)
        message = await receive(ws)
        assert message.type in (WSMsgType.CLOSED, WSMsgType.CLOSE, WSMsgType.ERROR)
    # The gateway itself is fine and answers plain requests with a 502 now.
    status, _ = _get(gateway.url("/plain"))
    assert status == 502
    # It hung up without a Close frame: not a WebSocket close but a connection that died.
    assert (await tunnel_record(gateway, "killed"))["reason"] == "upstream_reset"


async def test_drain_closes_tunnels_after_its_timeout(processes: Processes, tmp_path: Path) -> None:
    echo = echo_upstream(processes, "ws-drain")
    workdir = tmp_path / "gw"
    config = websocket_config(echo, access_log=access_log(workdir))
    config["drain_timeout"] = "1s"
    gateway = processes.gateway(config, workdir)
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(
            ws_url(gateway), headers={"X-Request-Id": "drained"}, timeout=WS_TIMEOUT
        ) as ws,
    ):
        await ws.send_str("draining soon")
        assert (await receive(ws)).data == "draining soon"
        started = time.monotonic()
        gateway.process.signal(signal.SIGTERM)
        message = await receive(ws)
        assert message.type in (WSMsgType.CLOSED, WSMsgType.CLOSE, WSMsgType.ERROR)
        await asyncio.to_thread(gateway.process.wait, WAIT)
        assert time.monotonic() - started < 8.0
    # Neither side closed it: the gateway did, as it stopped.
    assert (await tunnel_record(gateway, "drained"))["reason"] == "shutting_down"


# ---------------------------------------------------------------- who closed it: the access log


def access_log(workdir: Path) -> dict:
    return {"enabled": True, "path": str(workdir / "access.log"), "flush_interval": "100ms"}


async def tunnel_record(gateway: Gateway, request_id: str) -> dict:
    """The access log record of the tunnel opened with ``X-Request-Id: request_id``."""
    log_path = gateway.workdir / "access.log"

    def record() -> dict | None:
        lines = log_path.read_text().splitlines() if log_path.exists() else []
        for line in lines:
            found = json.loads(line)
            if found["request_id"] == request_id:
                return found
        return None

    found = await async_wait_until(record, timeout=WAIT, what=f"{request_id} in the access log")
    assert found["status"] == 101, found
    return found


async def test_a_tunnel_the_client_closes_is_logged_client_closed(gateway: Gateway) -> None:
    """The client sends the Close frame; the upstream answers it and hangs up first, as
    RFC 6455 7.1.1 has servers do: still the client's close."""
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(
            ws_url(gateway), headers={"X-Request-Id": "client-closes"}, timeout=WS_TIMEOUT
        ) as ws,
    ):
        await ws.send_str("then I leave")
        assert (await receive(ws)).data == "then I leave"
        await asyncio.wait_for(ws.close(code=1000), WAIT)
    assert (await tunnel_record(gateway, "client-closes"))["reason"] == "client_closed"


async def test_a_tunnel_the_upstream_closes_is_logged_upstream_closed(gateway: Gateway) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(
            ws_url(gateway), headers={"X-Request-Id": "upstream-closes"}, timeout=WS_TIMEOUT
        ) as ws,
    ):
        await ws.send_str("close:4001:going away now")
        assert (await receive(ws)).type == WSMsgType.CLOSE
    assert (await tunnel_record(gateway, "upstream-closes"))["reason"] == "upstream_closed"


async def test_a_client_that_hangs_up_without_a_close_frame_is_logged_disconnected(
    gateway: Gateway,
) -> None:
    with raw_connection(gateway.port, timeout=WAIT) as (sock, stream):
        sock.sendall(
            b"GET /ws HTTP/1.1\r\nHost: example.test\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            b"Sec-WebSocket-Version: 13\r\nX-Request-Id: client-vanishes\r\n\r\n"
        )
        assert read_response(stream).status == 101
        sock.sendall(client_frame(0x1, b"hello"))
        assert read_frame(stream) == (0x1, b"hello")
    # The socket closed with no Close frame: the client went away mid-session.
    assert (await tunnel_record(gateway, "client-vanishes"))["reason"] == "client_disconnected"


async def test_an_idle_tunnel_is_logged_with_its_timeout(gateway: Gateway) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(
            ws_url(gateway, "/idle/ws"),
            headers={"X-Request-Id": "idles"},
            autoping=False,
            timeout=WS_TIMEOUT,
        ) as ws,
    ):
        await ws.send_str("then silence")
        assert (await receive(ws)).data == "then silence"
        assert (await receive(ws)).type in (WSMsgType.CLOSED, WSMsgType.CLOSE, WSMsgType.ERROR)
    assert (await tunnel_record(gateway, "idles"))["reason"] == "tunnel_idle_timeout"


# ---------------------------------------------------------------- raw frames


def client_frame(opcode: int, payload: bytes, *, fin: bool = True) -> bytes:
    """A masked client frame (RFC 6455 5.2), payloads under 126 bytes."""
    assert len(payload) < 126
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([(0x80 if fin else 0) | opcode, 0x80 | len(payload)]) + mask + masked


def read_frame(stream) -> tuple[int, bytes]:
    """One unmasked server frame: (opcode, payload)."""
    first, second = stream.read(2)
    length = second & 0x7F
    if length == 126:
        (length,) = struct.unpack("!H", stream.read(2))
    elif length == 127:
        (length,) = struct.unpack("!Q", stream.read(8))
    assert first & 0x80, "the server echoes whole messages"
    return first & 0x0F, stream.read(length)


def _get(url: str) -> tuple[int, bytes]:
    return http_get(url, timeout=5.0)
