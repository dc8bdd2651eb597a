"""What a config writer records when its connection fails: ``failed`` only when nothing
reached a core, ``unknown`` when a try was sent (aiohttp sends a PUT again once when its
connection drops, and that second try may find the core gone)."""

from __future__ import annotations

import asyncio

import aiohttp

from chaos.writers import _sent_tracer, _write_once
from tests.integration.support import free_ports


class Clock:
    def now(self) -> float:
        return 0.0


async def write(address: str):
    timeout = aiohttp.ClientTimeout(total=5)
    async with aiohttp.ClientSession(timeout=timeout, trace_configs=[_sent_tracer()]) as session:
        return await _write_once(
            session, Clock(), 1, "core-eu", address, "w1-6", {"eu": "127.0.0.1:9"}
        )


async def test_a_core_that_is_not_listening_means_the_write_failed() -> None:
    (port,) = free_ports(1)
    op = await write(f"127.0.0.1:{port}")
    assert op.result == "failed", op
    assert op.detail.startswith("not connected"), op


async def test_a_core_that_dies_after_reading_the_write_leaves_it_unknown() -> None:
    received: list[bytes] = []
    server: asyncio.AbstractServer | None = None

    class DiesOnFirstRequest(asyncio.Protocol):
        def connection_made(self, transport) -> None:
            self.transport = transport

        def data_received(self, data: bytes) -> None:
            received.append(data)
            server.close()  # stops listening: aiohttp's second try is refused
            self.transport.abort()  # as kill -9: no answer

    loop = asyncio.get_running_loop()
    server = await loop.create_server(DiesOnFirstRequest, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    op = await write(f"127.0.0.1:{port}")
    assert received and received[0].startswith(b"PUT /api/v1/config"), received
    assert op.result == "unknown", op
    assert "sent, then not connected" in op.detail, op
