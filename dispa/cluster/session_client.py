"""Sticky sessions replicated through the cluster.

Reads come from the local copy of the replicated table (possibly a moment stale) and
from what this node remembered itself but has not seen committed yet, so a client's next
request on the same node never misses. Writes are replicated in the background; a write
that fails is logged and the session simply gets a new endpoint later, which costs
stickiness, never a request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from dispa.cluster.bridge import CommandFailed

log = logging.getLogger("dispa.sessions")

# How long a locally remembered session is trusted before the replicated table must have it.
LOCAL_GRACE = 30.0
EXPIRE_EVERY = 10.0


class ReplicatedSessions:
    def __init__(self, store) -> None:
        self.store = store
        self.recent: dict[tuple[str, str], tuple[str, float]] = {}
        self._tasks: set[asyncio.Task] = set()
        self.failed_writes = 0

    def lookup(self, upstream: str, session: str, now: float) -> str | None:
        address = self.store.state.session_endpoint(upstream, session, now)
        if address is not None:
            return address
        entry = self.recent.get((upstream, session))
        if entry is not None and entry[1] > now:
            return entry[0]
        return None

    def remember(self, upstream: str, session: str, address: str, ttl: float, now: float) -> None:
        if len(self.recent) > 10_000:
            self.recent = {k: v for k, v in self.recent.items() if v[1] > now}
        self.recent[(upstream, session)] = (address, now + min(ttl, LOCAL_GRACE))
        task = asyncio.get_running_loop().create_task(
            self._replicate(upstream, session, address, ttl, now)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _replicate(self, upstream, session, address, ttl, now) -> None:
        try:
            await self.store.put_session(upstream, session, address, ttl, now)
        except CommandFailed as failure:
            self.failed_writes += 1
            log.warning("session for %s not replicated: %s", upstream, failure.reason)

    async def expire_forever(self, clock, is_leader) -> None:
        """On the leader only: drop expired sessions from the replicated table now and then."""
        while True:
            await asyncio.sleep(EXPIRE_EVERY)
            if is_leader():
                # A missed round is harmless: the next one expires the same sessions.
                with contextlib.suppress(CommandFailed):
                    await self.store.expire_sessions(clock())
