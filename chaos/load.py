"""Steady HTTP load through the edges: a fixed number of requests per second to each
edge, every request recorded (when, where, status or error, latency). Bounded by count and
by time."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import aiohttp

REQUEST_TIMEOUT = 3.0


@dataclass(frozen=True)
class Request:
    at: float  # drill time it was sent
    target: str  # the node name
    status: int  # 0 when no answer came
    latency: float
    error: str = ""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 400


async def steady_load(
    span, targets: dict[str, str], path: str, rate_per_target: float, max_requests: int, records
) -> None:
    """Send ``rate_per_target`` requests per second to each target (name -> host:port)
    while ``span`` runs, and at most ``max_requests`` in all."""
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        in_flight: set[asyncio.Task] = set()
        interval = 1.0 / rate_per_target
        next_at = time.monotonic()
        sent = 0
        while span.running() and sent < max_requests:
            for name, address in targets.items():
                task = asyncio.create_task(_one(session, span.clock, name, address, path, records))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
                sent += 1
            next_at += interval
            delay = next_at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                next_at = time.monotonic()  # fell behind: never burst to catch up
        if in_flight:
            await asyncio.wait(in_flight, timeout=REQUEST_TIMEOUT + 1)


async def _one(session, clock, name, address, path, records) -> None:
    started = clock.now()
    try:
        async with session.get(f"http://{address}{path}") as reply:
            await reply.read()
            records.append(Request(started, name, reply.status, clock.now() - started))
    except (aiohttp.ClientError, TimeoutError, OSError) as error:
        records.append(Request(started, name, 0, clock.now() - started, type(error).__name__))
