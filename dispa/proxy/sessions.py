"""Sticky sessions as the data plane sees them: session id -> endpoint address.

A single gateway keeps the table in memory (``LocalSessions``); a core is handed a table
whose writes are replicated through the cluster, so a client keeps its endpoint when the
node in front of it dies (``dispa/cluster/session_client.py``). Expiry is by time passed
in, never read inside.
"""

from __future__ import annotations

import os
from typing import Protocol


def new_session_id() -> str:
    return os.urandom(12).hex()


class SessionTable(Protocol):
    def lookup(self, upstream: str, session: str, now: float) -> str | None: ...
    def remember(
        self, upstream: str, session: str, address: str, ttl: float, now: float
    ) -> None: ...


class LocalSessions:
    LIMIT = 200_000

    def __init__(self) -> None:
        self.table: dict[tuple[str, str], tuple[str, float]] = {}

    def lookup(self, upstream: str, session: str, now: float) -> str | None:
        entry = self.table.get((upstream, session))
        if entry is None or entry[1] <= now:
            return None
        return entry[0]

    def remember(self, upstream: str, session: str, address: str, ttl: float, now: float) -> None:
        if len(self.table) >= self.LIMIT:
            self.table = {k: v for k, v in self.table.items() if v[1] > now}
        self.table[(upstream, session)] = (address, now + ttl)
