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
