"""Where a hashing balancer takes its key from: a header, a cookie, the client, the path."""

from __future__ import annotations

from collections.abc import Callable

from dispa.proxy.events import header_value

KeyFunction = Callable[[object], bytes | None]


def key_function(spec: str) -> KeyFunction:
    """``source_ip`` | ``path`` | ``header:NAME`` | ``cookie:NAME`` -> ctx -> key bytes."""
    if spec == "source_ip":
        return lambda ctx: ctx.client_ip.encode()
    if spec == "path":
        return lambda ctx: ctx.request.path.encode()
    kind, _, name = spec.partition(":")
    if kind == "header":
        lower = name.lower().encode()
        return lambda ctx: header_value(ctx.request_headers, lower)
    if kind == "cookie":
        wanted = name.encode()
        return lambda ctx: cookie_value(header_value(ctx.request_headers, b"cookie"), wanted)
    raise ValueError(f"unknown hash key '{spec}'")


def cookie_value(header: bytes | None, wanted: bytes) -> bytes | None:
    if not header:
        return None
    for part in header.split(b";"):
        name, sep, value = part.strip().partition(b"=")
        if sep and name == wanted:
            return value
    return None
