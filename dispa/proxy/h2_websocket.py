"""WebSocket over HTTP/2 (RFC 8441) translated to the HTTP/1.1 handshake upstreams speak.

Pure functions and one small state machine, no I/O. An extended CONNECT carries no
Sec-WebSocket-Key and expects no Sec-WebSocket-Accept (RFC 8441 5): Dispa makes the key
for the upstream's HTTP/1.1 handshake, checks the upstream's answer to it, and turns the
101 into the 200 the HTTP/2 client waits for.
"""

from __future__ import annotations

import base64
import hashlib

from dispa.proxy.events import Headers

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 1.3
_CLOSE_OPCODE = 0x8


def websocket_key(nonce: bytes) -> bytes:
    """A Sec-WebSocket-Key for a 16-byte random ``nonce`` (RFC 6455 4.1)."""
    return base64.b64encode(nonce)


def websocket_accept(key: bytes) -> bytes:
    """The Sec-WebSocket-Accept an upstream must answer ``key`` with (RFC 6455 4.2.2)."""
    return base64.b64encode(hashlib.sha1(key + _GUID).digest())


def tunnel_response_headers(head: bytes, key: bytes) -> Headers | None:
    """The header fields of the 200 that opens the tunnel, from the 101 head Dispa built
    for an HTTP/1.1 client (the response filters have run on it); None when the upstream
    answered another key than ours, a broken handshake."""
    lines = head.split(b"\r\n")
    headers: Headers = []
    accept = None
    for line in lines[1:]:
        if not line:
            break
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        value = value.strip()
        if name == b"sec-websocket-accept":
            accept = value
            continue
        headers.append((name, value))
    if accept != websocket_accept(key):
        return None
    return headers


class CloseFrameWatcher:
    """Follows the frame boundaries of what an upstream sends, reading only frame headers,
    to learn whether it sent a Close frame: an upstream that closes its connection after
    one ended the session; one that closes without one died (its client is told by a
    stream reset, as RFC 9113 8.5 reports a broken tunnel)."""

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
