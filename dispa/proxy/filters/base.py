"""The Filter interface: named phases, in the order they run, each defaulting to continue.

A filter is built once per config snapshot; state for one request lives on the
``RequestContext``. A phase that a filter does not override costs nothing: the snapshot
only calls filters that define it.

- ``on_request(ctx)``: before the upstream is picked; return a LocalReply to answer
  directly, or None to continue. May replace ``ctx.request_headers``.
- ``on_response(ctx, headers)``: the response head is about to be sent; returns the
  headers to send (the same list, edited, or a new one).
- ``on_log(ctx)``: the exchange is over; must never raise.
"""

from __future__ import annotations

from dispa.proxy.events import Headers
from dispa.proxy.local_reply import LocalReply

PHASES = ("on_request", "on_response", "on_log")


class Filter:
    name = "filter"

    def on_request(self, ctx) -> LocalReply | None:
        return None

    def on_response(self, ctx, headers: Headers) -> Headers:
        return headers

    def on_log(self, ctx) -> None:
        return None

    def handler(self, phase: str):
        """The bound method for a phase, or None when this filter leaves the phase alone."""
        if getattr(type(self), phase) is getattr(Filter, phase):
            return None
        return getattr(self, phase)
