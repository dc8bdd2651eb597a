"""An upstream response held while the route's on_response filters wait on a Pending.

The exchange hands its upstream connection this object in its own place (as
``conn.exchange``) and pauses the connection. Events already read from it (body bytes in
the same read as the head, the end, trailers, a loss) are recorded in order and replayed
on the exchange once the head has gone to the client. No check is added to the exchange's
per-chunk path for this: only an exchange that waits takes the detour.
"""

from __future__ import annotations

# The events an upstream connection reports; each is recorded and replayed as it came.
_RECORDED = (
    "on_response_data",
    "on_response_end",
    "on_response_trailers",
    "on_upstream_eof",
    "on_upstream_lost",
    "on_upstream_protocol_error",
    "on_upstream_refused",
    "on_interim_response",
    "on_response_head",
    "on_whole_response",
)


class HeldResponse:
    __slots__ = ("conn", "events", "exchange", "response")

    def __init__(self, exchange, response, conn, events: tuple = ()) -> None:
        self.exchange = exchange
        self.response = response
        self.conn = conn
        self.events = list(events)

    def replay(self) -> None:
        """Hand every held event to the exchange, in order; it ignores those of a
        connection it no longer uses (a local reply may have dropped it meanwhile)."""
        exchange = self.exchange
        events, self.events = self.events, []
        for name, args in events:
            if exchange.finished:
                return
            getattr(exchange, name)(*args)

    def hold_whole_body(self, conn, body: bytes) -> None:
        """A whole response's body and end, read with its head."""
        self.events += (("on_response_data", (conn, body)), ("on_response_end", (conn,)))

    # The request body's back-pressure is not held: it is about the client's side.
    def on_upstream_write_paused(self) -> None:
        self.exchange.on_upstream_write_paused()

    def on_upstream_write_resumed(self) -> None:
        self.exchange.on_upstream_write_resumed()


def _recorder(name: str):
    def record(self, *args) -> None:
        self.events.append((name, args))

    record.__name__ = name
    return record


for _name in _RECORDED:
    setattr(HeldResponse, _name, _recorder(_name))
