"""Circuit breaking for one upstream: refuse work beyond fixed limits instead of queueing.

As in Envoy, the limits bound concurrency, not error rates: when an upstream slows down,
requests pile up, and refusing the excess at once (a local 503) keeps memory bounded and
lets callers fail fast. Each refusal is counted per kind, so an operator can tell which
limit is too tight.

Counters only move by one per call, so every method is O(1) and safe to call on the hot
path of the event loop (single-threaded: no locking needed).
"""

from __future__ import annotations

from dispa.config.schema import Circuit


class CircuitBreaker:
    __slots__ = (
        "active_connections",
        "active_requests",
        "connections_overflow",
        "max_connections",
        "max_pending",
        "max_requests",
        "pending",
        "pending_overflow",
        "requests_overflow",
    )

    def __init__(self, config: Circuit) -> None:
        self.max_connections = config.max_connections
        self.max_pending = config.max_pending
        self.max_requests = config.max_requests
        self.active_connections = 0
        self.pending = 0
        self.active_requests = 0
        self.connections_overflow = 0
        self.pending_overflow = 0
        self.requests_overflow = 0

    # ------------------------------------------------------------ requests

    def try_start_request(self) -> bool:
        """Admit one request, or count an overflow and refuse it."""
        if self.active_requests >= self.max_requests:
            self.requests_overflow += 1
            return False
        self.active_requests += 1
        return True

    def finish_request(self) -> None:
        # Clamped: an unmatched finish (a bug elsewhere) must not grant lasting extra room.
        self.active_requests = max(0, self.active_requests - 1)

    # ------------------------------------------------------------ connections

    def can_open_connection(self) -> bool:
        """True when one more connection fits; a refusal is counted as an overflow.

        Call ``connection_opened`` when the dial *starts* (not when it succeeds), so dials in
        progress count against the limit, and ``connection_closed`` when it ends or fails.
        """
        if self.active_connections >= self.max_connections:
            self.connections_overflow += 1
            return False
        return True

    def connection_opened(self) -> None:
        self.active_connections += 1

    def connection_closed(self) -> None:
        self.active_connections = max(0, self.active_connections - 1)

    # ------------------------------------------------------------ pending (awaiting a connection)

    def try_add_pending(self) -> bool:
        """Queue one request waiting for a connection, or count an overflow and refuse it."""
        if self.pending >= self.max_pending:
            self.pending_overflow += 1
            return False
        self.pending += 1
        return True

    def remove_pending(self) -> None:
        self.pending = max(0, self.pending - 1)

    # ------------------------------------------------------------ reporting

    def statistics(self) -> dict[str, dict[str, int]]:
        return {
            "connections": {
                "active": self.active_connections,
                "limit": self.max_connections,
                "overflow": self.connections_overflow,
            },
            "pending": {
                "active": self.pending,
                "limit": self.max_pending,
                "overflow": self.pending_overflow,
            },
            "requests": {
                "active": self.active_requests,
                "limit": self.max_requests,
                "overflow": self.requests_overflow,
            },
        }
