"""How long a client may take over a request body, and how many a client may stream at
once: the rules that keep slow POSTs from holding the upstream's connections.

Pure arithmetic and a counter, no I/O: the connections (http1/server.py, http2/server.py) and
the exchange ask these.
"""

from __future__ import annotations

NO_DEADLINE = float("inf")


def paced_deadline(started: float, received: int, limits) -> float:
    """When a body that began at ``started`` and has ``received`` bytes so far is too slow:
    the grace period, plus one second per ``min_body_rate`` bytes received. A client that
    keeps up never reaches it; one that trickles reaches it however it spaces its bytes."""
    rate = limits.min_body_rate
    if not rate:
        return NO_DEADLINE
    return started + limits.body_rate_grace + received / rate


class UploadsByClient:
    """Requests per client address whose body is still being sent upstream, each holding
    an upstream connection meanwhile. Bounded by the number of open exchanges."""

    __slots__ = ("_counts",)

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}

    def try_start(self, client: str, limit: int) -> bool:
        count = self._counts.get(client, 0)
        if limit and count >= limit:
            return False
        self._counts[client] = count + 1
        return True

    def finish(self, client: str) -> None:
        count = self._counts.get(client, 0) - 1
        if count > 0:
            self._counts[client] = count
        else:
            self._counts.pop(client, None)

    def count(self, client: str) -> int:
        return self._counts.get(client, 0)
