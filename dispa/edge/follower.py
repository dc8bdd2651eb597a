"""Following the cores' watch stream: resume from what the edge holds, fail over, back off.

The edge asks one core at a time for ``/api/v1/watch?from=REV&purges=SEQ``. A core that
refuses, drops the stream, or stays silent past ``silence_timeout`` (heartbeats come every
second) is left for the next one. A full round of failed cores doubles the wait before
the next round, up to ``backoff_max``, with jitter so that many edges do not come back in
step. A core that says it has lost its quorum is left for one that has it, when another
answers.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable

import aiohttp

from dispa.cluster.watch_protocol import BrokenStream, FrameReader
from dispa.config.edge import FollowSettings

log = logging.getLogger("dispa.edge")

# Consecutive heartbeats without quorum after which another core is tried.
NO_QUORUM_HEARTBEATS = 3


class _LeaveCore(Exception):
    """This core is alive but not worth following (it lost its quorum)."""


class ConfigFollower:
    def __init__(
        self,
        cores: list[str],
        settings: FollowSettings,
        on_message: Callable[[dict], Awaitable[None]],
        rng: random.Random | None = None,
    ) -> None:
        self.cores = list(cores)
        self.settings = settings
        self.on_message = on_message
        self.rng = rng or random.Random()
        self.revision = 0  # the latest revision received (and handed to on_message)
        self.purge_seq = -1  # -1: no purge seen yet; the core starts us at its latest
        self.connected_to: str | None = None
        self.last_heard = 0.0  # time.monotonic() of the last frame
        self.connects = 0
        self._index = self.rng.randrange(len(self.cores))
        self._failed_in_a_row = 0
        self._backoff = settings.backoff_min

    async def run(self) -> None:
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=1.0, sock_read=self.settings.silence_timeout
        )
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                core = self.cores[self._index % len(self.cores)]
                heard_before = self.last_heard
                try:
                    await self._follow(session, core)
                    why = "the core ended the stream"
                except _LeaveCore as leave:
                    why = str(leave)
                except (aiohttp.ClientError, TimeoutError, BrokenStream, OSError) as error:
                    why = _describe(error)
                except Exception as error:  # a bug must not end following for good
                    log.exception("following core %s failed", core)
                    why = f"internal error: {type(error).__name__}"
                if self.connected_to is not None:
                    log.warning("lost the watch stream of core %s: %s", core, why)
                else:
                    log.debug("core %s cannot be followed: %s", core, why)
                self.connected_to = None
                self._index += 1
                wait = self._next_wait(heard_from_it=self.last_heard > heard_before)
                if self._failed_in_a_row == len(self.cores):
                    # Said once per outage, not once per attempt.
                    log.warning(
                        "no core can be followed (last: %s: %s); serving revision %d and "
                        "retrying with backoff",
                        core,
                        why,
                        self.revision,
                    )
                await asyncio.sleep(wait)

    def _next_wait(self, heard_from_it: bool) -> float:
        if heard_from_it:
            self._failed_in_a_row = 0
            self._backoff = self.settings.backoff_min
        else:
            self._failed_in_a_row += 1
        if self._failed_in_a_row and self._failed_in_a_row % len(self.cores) == 0:
            # Every core failed in this round: wait longer before the next one.
            wait = self._backoff
            self._backoff = min(self._backoff * 2, self.settings.backoff_max)
        else:
            wait = self.settings.backoff_min
        return wait * self.rng.uniform(0.5, 1.0)

    async def _follow(self, session: aiohttp.ClientSession, core: str) -> None:
        url = f"http://{core}/api/v1/watch"
        params = {"from": str(self.revision), "purges": str(self.purge_seq)}
        async with session.get(url, params=params) as response:
            if response.status != 200:
                raise BrokenStream(f"answered {response.status}")
            self.connected_to = core
            self.connects += 1
            log.info("following core %s from revision %d", core, self.revision)
            reader = FrameReader()
            without_quorum = 0
            caught_up = False
            async for data in response.content.iter_any():
                for message in reader.feed(data):
                    self.last_heard = time.monotonic()
                    kind = message["type"]
                    if kind == "heartbeat":
                        without_quorum = 0 if message.get("has_quorum") else without_quorum + 1
                        if without_quorum >= NO_QUORUM_HEARTBEATS and len(self.cores) > 1:
                            raise _LeaveCore("it has lost its quorum")
                        continue
                    if kind in ("snapshot", "delta"):
                        # The first config of a connection is catching up, not propagation.
                        message["catch_up"] = not caught_up
                        caught_up = True
                    await self.on_message(message)
                    if kind in ("snapshot", "delta"):
                        self.revision = int(message["revision"])
                    elif kind in ("purge", "purge_all"):
                        self.purge_seq = int(message["seq"])


def _describe(error: BaseException) -> str:
    if isinstance(error, TimeoutError | asyncio.TimeoutError):
        return "no heartbeat in time"
    return str(error) or type(error).__name__
