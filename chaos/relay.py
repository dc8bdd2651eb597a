"""A fault-injecting TCP relay, in the spirit of Toxiproxy: placed on a link (a client
connects to the relay, the relay to the real target), it adds latency, limits bandwidth,
resets new connections with some probability, holds every byte (a black hole), or refuses
connections outright. Kernel netem is not available on the drill machines; this is.

Toxics change at run time with ``set()`` and apply to connections already open. Bytes are
never dropped from the middle of a stream (TCP would never show that): loss at the packet
level comes from nftables instead (``chaos.firewall``).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from dataclasses import dataclass, replace

CHUNK = 64 * 1024


@dataclass(frozen=True)
class Toxics:
    latency_ms: float = 0.0  # added to every chunk, each way
    jitter_ms: float = 0.0  # up to this much more, at random
    bandwidth_bytes_per_s: float | None = None  # each way; None: unlimited
    reset_probability: float = 0.0  # a new connection is reset at once with this chance
    blackhole: bool = False  # bytes are held (not forwarded) while set
    down: bool = False  # new connections are closed at once

    def delay(self, rng: random.Random) -> float:
        """Seconds to hold one chunk back."""
        extra = rng.uniform(0, self.jitter_ms) if self.jitter_ms else 0.0
        return (self.latency_ms + extra) / 1000.0

    def transfer_time(self, size: int) -> float:
        """Seconds that ``size`` bytes take at the bandwidth limit."""
        if not self.bandwidth_bytes_per_s:
            return 0.0
        return size / self.bandwidth_bytes_per_s


class Relay:
    def __init__(self, name: str, listen_host: str, target: str, *, seed: int = 0) -> None:
        self.name = name
        self.listen_host = listen_host
        self.target_host, _, port = target.rpartition(":")
        self.target_port = int(port)
        self.toxics = Toxics()
        self.rng = random.Random(seed)
        self.server: asyncio.base_events.Server | None = None
        self.connections = 0
        self.resets = 0
        self.refused = 0
        self.bytes_forwarded = 0
        self._tasks: set[asyncio.Task] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._unblocked = asyncio.Event()
        self._unblocked.set()

    @property
    def address(self) -> str:
        port = self.server.sockets[0].getsockname()[1]
        return f"{self.listen_host}:{port}"

    async def start(self, port: int = 0) -> Relay:
        self.server = await asyncio.start_server(self._accept, self.listen_host, port)
        return self

    def set(self, **changes) -> Toxics:
        """Change some toxics (the others stay); returns what is now in force."""
        self.toxics = replace(self.toxics, **changes)
        if self.toxics.blackhole:
            self._unblocked.clear()
        else:
            self._unblocked.set()
        return self.toxics

    def clear(self) -> None:
        self.set(**vars(Toxics()))

    def statistics(self) -> dict:
        return {
            "name": self.name,
            "target": f"{self.target_host}:{self.target_port}",
            "connections": self.connections,
            "resets": self.resets,
            "refused": self.refused,
            "bytes_forwarded": self.bytes_forwarded,
            "toxics": vars(self.toxics),
        }

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
        # Aborting the connections ends their pumps (a read sees the end of the stream).
        # Cancelling the server's connection tasks instead makes Python 3.11's asyncio
        # print a traceback for each.
        for writer in list(self._writers):
            writer.transport.abort()
        self._unblocked.set()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=2.0)
        if self.server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 2.0)

    # ---------------------------------------------------------------- connections

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._tasks.add(task)
        self._writers.add(writer)
        try:
            await self._serve(reader, writer)
        finally:
            self._tasks.discard(task)
            self._writers.discard(writer)
            writer.close()

    async def _serve(self, reader, writer) -> None:
        toxics = self.toxics
        if toxics.down:
            self.refused += 1
            return
        if toxics.reset_probability and self.rng.random() < toxics.reset_probability:
            self.resets += 1
            with contextlib.suppress(Exception):
                writer.transport.abort()  # an RST, as a lossy path would end it
            return
        try:
            target_reader, target_writer = await asyncio.open_connection(
                self.target_host, self.target_port
            )
        except OSError:
            self.refused += 1
            return
        self.connections += 1
        self._writers.add(target_writer)
        try:
            await asyncio.gather(
                self._pump(reader, target_writer), self._pump(target_reader, writer)
            )
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self._writers.discard(target_writer)
            target_writer.close()

    async def _pump(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        """Forward one direction in order: each chunk waits its delay (measured from when it
        was read, so latency does not add up along a stream) plus its time on the wire."""
        queue: asyncio.Queue = asyncio.Queue()

        async def deliver() -> None:
            while True:
                due, data = await queue.get()
                if data is None:
                    return
                await self._unblocked.wait()
                # Store and forward: a chunk leaves once its delay is over and the link
                # has had time to carry it at the bandwidth limit.
                wait = due - time.monotonic() + self.toxics.transfer_time(len(data))
                if wait > 0:
                    await asyncio.sleep(wait)
                sink.write(data)
                self.bytes_forwarded += len(data)
                await sink.drain()

        delivering = asyncio.create_task(deliver())
        try:
            while True:
                data = await source.read(CHUNK)
                if not data:
                    break
                queue.put_nowait((time.monotonic() + self.toxics.delay(self.rng), data))
            queue.put_nowait((0.0, None))
            await delivering
            with contextlib.suppress(OSError, RuntimeError):
                if sink.can_write_eof():
                    sink.write_eof()
        finally:
            delivering.cancel()
