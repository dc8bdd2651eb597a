"""The ``body_replace`` filter: literal find and replace on whole bodies (nginx's sub_filter).

Only a side with rules has a phase and a body need: a route whose filter rewrites only
responses streams its request bodies untouched, at no cost. Big bodies are replaced on
the gateway's executor so that one large body does not stall the event loop. With
response rules, requests go upstream without Accept-Encoding (so the answer comes
uncompressed), and a response that comes compressed anyway is passed on untouched.
"""

from __future__ import annotations

from dispa.config.filters.body_replace import BodyReplaceFilter
from dispa.proxy.filters.base import BodyNeed, Filter
from dispa.proxy.filters.registry import FilterServices, filter_type

# A body larger than this is replaced on a thread; smaller ones cost less inline than
# the hand-over to a thread and back.
INLINE_LIMIT = 64 * 1024

Rules = tuple[tuple[bytes, bytes], ...]
_RESPONSE_PHASES = ("on_upstream_request", "on_response", "on_response_body")
# Marks, on the request context, a response body left alone (it came compressed).
_ENCODED = "encoded"


def replaced(rules: Rules, body: bytes) -> bytes | None:
    """The body with every rule applied in order, or None when no rule matched."""
    changed = False
    for find, replacement in rules:
        if find in body:
            body = body.replace(find, replacement)
            changed = True
    return body if changed else None


def _rules(replacements) -> Rules:
    return tuple((each.find.encode(), each.replace.encode()) for each in replacements)


@filter_type(BodyReplaceFilter, stage="transform")
class BodyReplace(Filter):
    name = "body_replace"

    @classmethod
    def from_config(cls, config: BodyReplaceFilter, services: FilterServices) -> BodyReplace:
        return cls(config, services.executor)

    def __init__(self, config: BodyReplaceFilter, executor=None) -> None:
        self.request_rules = _rules(config.request)
        self.response_rules = _rules(config.response)
        self.executor = executor
        # A side without rules declares no need: the engine then leaves that body alone.
        self.request_body = BodyNeed("whole", config.max_body) if self.request_rules else None
        self.response_body = BodyNeed("whole", config.max_body) if self.response_rules else None

    def handler(self, phase: str):
        # A side without rules is not wired in at all.
        if phase == "on_request_body" and not self.request_rules:
            return None
        if phase in _RESPONSE_PHASES and not self.response_rules:
            return None
        return super().handler(phase)

    def on_request_body(self, ctx, chunk: bytes, end: bool):
        return self._replace(self.request_rules, chunk)

    def on_upstream_request(self, ctx, headers):
        # A compressed answer cannot be matched: ask the upstream for an identity one.
        for name, _ in headers:
            if len(name) == 15 and name.lower() == b"accept-encoding":
                return [field for field in headers if field[0].lower() != b"accept-encoding"]
        return None

    def on_response(self, ctx, headers):
        # An upstream that compresses anyway: its body passes through untouched.
        for name, value in headers:
            if len(name) == 16 and name.lower() == b"content-encoding":
                if value.strip().lower() != b"identity":
                    values = ctx.values if ctx.values is not None else {}
                    values[self.name] = _ENCODED
                    ctx.values = values
                break
        return None

    def on_response_body(self, ctx, chunk: bytes, end: bool):
        values = ctx.values
        if values is not None and values.get(self.name) is _ENCODED:
            return None
        return self._replace(self.response_rules, chunk)

    def _replace(self, rules: Rules, body: bytes):
        # The engine calls a "whole" need once, with the whole body (end=True).
        if len(body) > INLINE_LIMIT and self.executor is not None:
            # A Pending answered with the new body (or None), or a 503 when it is full.
            return self.executor.submit(replaced, rules, body)
        return replaced(rules, body)
