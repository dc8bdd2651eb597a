"""What a rate limit counts by: the client address, the route, or a request header."""

from __future__ import annotations

from collections.abc import Callable

from dispa.proxy.events import header_value


def request_key(spec: str) -> Callable[[object], object]:
    """``source_ip`` | ``route`` | ``header:NAME`` -> ctx -> the key (None: header absent)."""
    if spec == "source_ip":
        return lambda ctx: ctx.client_ip
    if spec == "route":
        return lambda ctx: ctx.route_name
    lower = spec.partition(":")[2].lower().encode()
    return lambda ctx: header_value(ctx.request_headers, lower)
