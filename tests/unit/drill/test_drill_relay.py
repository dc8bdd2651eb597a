"""The fault-injecting relay between a real client and a real echo server on loopback."""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from chaos.relay import Relay, Toxics


@pytest.fixture
async def echo_server():
    async def echo(reader, writer):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    yield f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
    server.close()
    await server.wait_closed()


@pytest.fixture
async def relay(echo_server):
    relay = await Relay("test", "127.0.0.1", echo_server).start()
    yield relay
    await relay.close()


async def round_trip(address: str, payload: bytes, timeout: float = 5.0) -> tuple[bytes, float]:
    host, _, port = address.rpartition(":")
    started = time.monotonic()
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(payload)
    await writer.drain()
    received = b""
    try:
        while len(received) < len(payload):
            try:
                chunk = await asyncio.wait_for(reader.read(65536), timeout)
            except ConnectionResetError:
                break
            if not chunk:
                break
            received += chunk
    finally:
        writer.close()
    return received, time.monotonic() - started


async def test_without_toxics_bytes_pass_unchanged(relay):
    received, _ = await round_trip(relay.address, b"hello relay")
    assert received == b"hello relay"
    assert relay.statistics()["connections"] == 1
    assert relay.statistics()["bytes_forwarded"] == 2 * len(b"hello relay")


async def test_latency_is_added_each_way(relay):
    relay.set(latency_ms=150)
    received, elapsed = await round_trip(relay.address, b"ping")
    assert received == b"ping"
    assert elapsed >= 0.3  # 150 ms there and 150 ms back


async def test_bandwidth_limit_slows_a_large_transfer(relay):
    relay.set(bandwidth_bytes_per_s=200_000)
    payload = bytes(100_000)
    received, elapsed = await round_trip(relay.address, payload)
    assert received == payload
    assert elapsed >= 0.5  # 100 kB at 200 kB/s, at least once


async def test_reset_probability_one_resets_every_new_connection(relay):
    relay.set(reset_probability=1.0)
    received, _ = await round_trip(relay.address, b"x")
    assert received == b""
    assert relay.statistics()["resets"] == 1
    assert relay.statistics()["connections"] == 0  # the target was never dialled


async def test_down_closes_new_connections_and_clear_restores(relay):
    relay.set(down=True)
    received, _ = await round_trip(relay.address, b"x")
    assert received == b""
    assert relay.statistics()["refused"] == 1
    relay.clear()
    assert relay.toxics == Toxics()
    assert (await round_trip(relay.address, b"back"))[0] == b"back"


async def test_blackhole_holds_bytes_until_lifted(relay):
    relay.set(blackhole=True)
    host, _, port = relay.address.rpartition(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"held")
    await writer.drain()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(reader.read(10), 0.3)
    relay.set(blackhole=False)
    assert await asyncio.wait_for(reader.read(10), 2.0) == b"held"
    writer.close()


def test_toxic_arithmetic():
    toxics = Toxics(latency_ms=100, jitter_ms=50, bandwidth_bytes_per_s=1000)
    delays = [toxics.delay(random.Random(seed)) for seed in range(20)]
    assert all(0.1 <= d <= 0.15 for d in delays)
    assert toxics.transfer_time(500) == 0.5
    assert Toxics().transfer_time(10**9) == 0.0


async def test_close_ends_open_connections(echo_server):
    relay = await Relay("closing", "127.0.0.1", echo_server).start()
    host, _, port = relay.address.rpartition(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"open")
    assert await asyncio.wait_for(reader.read(10), 2.0) == b"open"
    await asyncio.wait_for(relay.close(), 3.0)
    assert await asyncio.wait_for(reader.read(10), 2.0) == b""  # the relay hung up
    writer.close()
