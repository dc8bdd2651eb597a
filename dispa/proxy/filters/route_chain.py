"""A route's filters compiled once per snapshot: one runner per phase, body needs, order.

Order: stage first (stages.py), then config order within a stage (a stable sort). The
request-side phases (on_request, on_request_body, on_upstream_request) run in that order;
the response-side ones (on_response, on_response_body) run in reverse, as Envoy's encoder
filters do, so each filter sees the response as the filters after it left it (a filter that
rewrites the request undoes its rewrite before an observing filter records the response).
on_log runs in the request order. A phase no filter defines is None: the exchange skips it
with one test, at no other cost.
"""

from __future__ import annotations

from dispa.proxy.filters.base import BodyNeed, Filter
from dispa.proxy.filters.chain import BodyPhase, HeadersPhase, LogPhase, RequestPhase
from dispa.proxy.filters.stages import STAGE_INDEX, check_stage


class FilterChain:
    __slots__ = (
        "filters",
        "log",
        "request",
        "request_body",
        "request_body_need",
        "response",
        "response_body",
        "response_body_need",
        "upstream_request",
    )

    def __init__(self, filters: list[Filter]) -> None:
        for each in filters:
            check_stage(each.stage, f"filter '{each.name}'")
        ordered = sorted(filters, key=lambda each: STAGE_INDEX[each.stage])
        self.filters = tuple(ordered)
        backwards = ordered[::-1]
        self.request = _phase(RequestPhase, "on_request", ordered)
        self.request_body = _phase(BodyPhase, "on_request_body", ordered)
        self.upstream_request = _phase(HeadersPhase, "on_upstream_request", ordered)
        self.response = _phase(HeadersPhase, "on_response", backwards)
        self.response_body = _phase(BodyPhase, "on_response_body", backwards)
        self.log = _phase(LogPhase, "on_log", ordered)
        self.request_body_need = _body_need(ordered, "on_request_body", "request_body")
        self.response_body_need = _body_need(ordered, "on_response_body", "response_body")


def _phase(runner, phase: str, filters: list[Filter]):
    pairs = [(each.name, handler) for each in filters if (handler := each.handler(phase))]
    if not pairs:
        return None
    return runner(phase, tuple(handler for _, handler in pairs), tuple(n for n, _ in pairs))


def _body_need(filters: list[Filter], phase: str, attribute: str) -> BodyNeed | None:
    """What the exchange must do with a body: None (stream it, no filter looks), chunks,
    or the whole body buffered up to the smallest limit any filter declared (every
    handler is then called once, with the whole body and end=True)."""
    needs = []
    for each in filters:
        if each.handler(phase) is None:
            continue
        need = getattr(each, attribute) or BodyNeed("chunks")
        needs.append(need.check())
    if not needs:
        return None
    whole = [need.limit for need in needs if need.mode == "whole"]
    return BodyNeed("whole", min(whole)) if whole else BodyNeed("chunks")
