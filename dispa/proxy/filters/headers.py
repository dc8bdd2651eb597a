"""The ``headers`` filter: add and remove request and response headers."""

from __future__ import annotations

from dispa.config.schema import HeadersFilter
from dispa.proxy.events import Headers, RepeatedHeaders
from dispa.proxy.filters.base import Filter
from dispa.proxy.filters.registry import filter_type

# Edits remembered per filter and direction (see _edited); bounded like the parser's tables.
_MEMO_LIMIT = 512


def _edit(headers: Headers, drop: frozenset[bytes], add: tuple) -> Headers:
    kept = [pair for pair in headers if pair[0].lower() not in drop] if drop else list(headers)
    kept.extend(add)
    return kept


def _dropped(remove: frozenset[bytes], add: tuple) -> frozenset[bytes]:
    # "add" replaces an existing header of the same name, so a value is never doubled.
    # Built once per snapshot, not once per request.
    return remove | {name for name, _ in add}


@filter_type(HeadersFilter, stage="transform")
class HeadersEdit(Filter):
    name = "headers"

    def __init__(self, config: HeadersFilter) -> None:
        self.request_add = tuple(
            (k.lower().encode(), v.encode()) for k, v in config.request_add.items()
        )
        self.request_remove = frozenset(n.lower().encode() for n in config.request_remove)
        self.response_add = tuple(
            (k.lower().encode(), v.encode()) for k, v in config.response_add.items()
        )
        self.response_remove = frozenset(n.lower().encode() for n in config.response_remove)
        self._request_drop = _dropped(self.request_remove, self.request_add)
        self._response_drop = _dropped(self.response_remove, self.response_add)
        self._request_memo: dict[int, tuple] = {}
        self._response_memo: dict[int, tuple] = {}

    def handler(self, phase: str):
        # A phase with no edits to make is not wired in at all.
        if phase == "on_request" and not (self.request_add or self.request_remove):
            return None
        if phase == "on_response" and not (self.response_add or self.response_remove):
            return None
        return super().handler(phase)

    def on_request(self, ctx):
        headers = ctx.request_headers
        if type(headers) is RepeatedHeaders:
            ctx.request_headers = _edited(
                headers, self._request_drop, self.request_add, self._request_memo
            )
        else:
            ctx.request_headers = _edit(headers, self._request_drop, self.request_add)
        return None

    def on_response(self, ctx, headers: Headers) -> Headers:
        if type(headers) is RepeatedHeaders:
            return _edited(headers, self._response_drop, self.response_add, self._response_memo)
        return _edit(headers, self._response_drop, self.response_add)


def _edited(headers: RepeatedHeaders, drop, add, memo: dict) -> RepeatedHeaders:
    """The edit of a list the parser shares between messages with the same head, made
    once: the same list in gives the same list out, itself shared (so the head writer
    remembers its rendering too). Keyed by identity, the input kept alive by the entry."""
    entry = memo.get(id(headers))
    if entry is not None and entry[0] is headers:
        return entry[1]
    edited = RepeatedHeaders(_edit(headers, drop, add))
    if len(memo) >= _MEMO_LIMIT:
        memo.clear()
    memo[id(headers)] = (headers, edited)
    return edited
