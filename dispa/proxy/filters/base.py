"""The Filter interface: named phases, in the order they run, each defaulting to continue.

A filter is built once per config snapshot; state for one request lives on the
``RequestContext`` (``ctx.values``, under the filter's name). A phase that a filter does
not override costs nothing: the chain (chain.py) holds only the handlers that exist.

- ``on_request(ctx)``: the request head arrived, before the upstream is picked. Returns
  None (continue), a LocalReply (answer now) or a Pending (answer later). May replace
  ``ctx.request_headers`` (never edit it in place: the parser may share it).
- ``on_request_body(ctx, chunk, end)``: a piece of the request body (``end``: the last
  one). With ``request_body = BodyNeed("whole", limit)`` it is called once, with the whole
  body. Returns None (pass the chunk on), the bytes to send instead, a LocalReply or a
  Pending.
- ``on_upstream_request(ctx, headers)``: the endpoint is chosen (``ctx.endpoint``), just
  before the head is sent; returns the headers to send, a LocalReply or a Pending.
- ``on_response(ctx, headers)``: the response head is about to be sent; returns the
  headers to send (the same list, edited, or a new one), a LocalReply or a Pending.
- ``on_response_body(ctx, chunk, end)``: as on_request_body, for the response.
- ``on_log(ctx)``: the exchange is over. An exception here is logged and swallowed.

A filter class declares its ``stage`` (stages.py fixes the order) and, for a body phase,
its ``request_body`` / ``response_body`` need.
"""

from __future__ import annotations

from typing import NamedTuple

from dispa.proxy.events import Headers
from dispa.proxy.local_reply import LocalReply

PHASES = (
    "on_request",
    "on_request_body",
    "on_upstream_request",
    "on_response",
    "on_response_body",
    "on_log",
)


class BodyNeed(NamedTuple):
    """How a filter wants a body: ``chunks`` as they come, or the ``whole`` body buffered up
    to ``limit`` bytes (a larger body is refused with 413 before the upstream sees it)."""

    mode: str  # "chunks" | "whole"
    limit: int = 0  # bytes; required for "whole"

    def check(self) -> BodyNeed:
        if self.mode not in ("chunks", "whole"):
            raise ValueError(f"a body need is 'chunks' or 'whole', not {self.mode!r}")
        if self.mode == "whole" and self.limit <= 0:
            raise ValueError("a 'whole' body need must declare its byte limit")
        return self


class Filter:
    name = "filter"
    stage = "transform"
    # None: the filter does not look at that body (a body phase it defines still gets
    # chunks: BodyNeed("chunks") is then assumed).
    request_body: BodyNeed | None = None
    response_body: BodyNeed | None = None

    def on_request(self, ctx):
        return None

    def on_request_body(self, ctx, chunk: bytes, end: bool):
        return None

    def on_upstream_request(self, ctx, headers: Headers):
        return headers

    def on_response(self, ctx, headers: Headers) -> Headers:
        return headers

    def on_response_body(self, ctx, chunk: bytes, end: bool):
        return None

    def on_log(self, ctx) -> None:
        return None

    def handler(self, phase: str):
        """The bound method for a phase, or None when this filter leaves the phase alone."""
        if getattr(type(self), phase) is getattr(Filter, phase):
            return None
        return getattr(self, phase)


__all__ = ["PHASES", "BodyNeed", "Filter", "LocalReply"]
