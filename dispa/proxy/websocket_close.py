"""Who closed a WebSocket tunnel: the side that sent the first Close frame (RFC 6455
5.5.1), else the side whose connection ended first.

The server ends the TCP connection after the close handshake (RFC 6455 7.1.1), whoever
began it, so which connection closed first says little; the first Close frame says who
ended the session. A connection that ends with no Close frame either way was not a
WebSocket close at all: the client went away, or the upstream died (an HTTP/2 client is
then told by a stream reset, as RFC 9113 8.5 reports a broken tunnel).
"""

from __future__ import annotations

from dispa.proxy import local_reply as reasons

_CLOSE_OPCODE = 0x8

CLIENT = "client"
UPSTREAM = "upstream"

# Access log reasons of a tunnel's end (others: tunnel_idle_timeout, shutting_down,
# upstream_protocol_error).
CLIENT_CLOSED = "client_closed"  # the client sent the first Close frame
UPSTREAM_CLOSED = "upstream_closed"  # the upstream sent the first Close frame
CLIENT_DISCONNECTED = "client_disconnected"  # the client's side ended without one
UPSTREAM_RESET = reasons.UPSTREAM_RESET  # the upstream's connection ended without one


def end_reason(first_close: str | None, first_end: str) -> str:
    """The reason for a tunnel whose first Close frame came from ``first_close`` (None if
    no side sent one) and whose first connection (or stream) to end was ``first_end``."""
    if first_close == CLIENT:
        return CLIENT_CLOSED
    if first_close == UPSTREAM:
        return UPSTREAM_CLOSED
    return CLIENT_DISCONNECTED if first_end == CLIENT else UPSTREAM_RESET


class CloseFrameWatcher:
    """Follows the frame boundaries of what one side sends (masked or not), reading only
    frame headers, to learn whether it sent a Close frame."""

    __slots__ = ("partial", "saw_close", "skip")

    def __init__(self) -> None:
        self.partial = b""  # the start of a frame header cut off at the end of a read
        self.skip = 0  # payload bytes of the current frame still to come
        self.saw_close = False

    def feed(self, data: bytes) -> None:
        if self.saw_close:
            return
        size = len(data)
        position = self.skip
        if position >= size:
            self.skip = position - size  # the common case of a large frame: no parsing
            return
        if self.partial:
            data = self.partial + data[position:]
            self.partial = b""
            size = len(data)
            position = 0
        while position < size:
            if size - position < 2:
                self.partial = data[position:]
                self.skip = 0
                return
            first = data[position]
            second = data[position + 1]
            length = second & 0x7F
            header = 2 + (4 if second & 0x80 else 0)
            if length == 126:
                header += 2
            elif length == 127:
                header += 8
            if size - position < header:
                self.partial = data[position:]
                self.skip = 0
                return
            if first & 0x0F == _CLOSE_OPCODE:
                self.saw_close = True
                return
            if length == 126:
                length = int.from_bytes(data[position + 2 : position + 4], "big")
            elif length == 127:
                length = int.from_bytes(data[position + 2 : position + 10], "big")
            position += header + length
        self.skip = position - size
