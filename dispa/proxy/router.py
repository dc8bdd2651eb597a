"""Route matching: a pure function of the request and the compiled routes.

Precedence, most specific first (documented in docs/config-reference.md):
1. host: exact host, then ``*.suffix`` wildcards (longest suffix first), then ``*``;
2. path: ``path_exact``, then ``path_prefix`` (longest first), then ``path_regex``;
3. routes with more method/header conditions before those with fewer;
4. order in the file.
The first route in that order whose every condition holds wins; a request whose host has
specific routes that do not match falls through to less specific hosts.

Paths are matched in their normal form, the one the upstream receives (the parsers
normalise each request's path once: ``listeners[].paths``), and case-sensitively; regexes
are RE2, matched in linear time.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dispa.config.route_regex import header_regex, path_regex
from dispa.config.schema import HeaderMatch, Match

_HOST_EXACT, _HOST_WILDCARD, _HOST_ANY = 0, 1, 2
_PATH_EXACT, _PATH_PREFIX, _PATH_REGEX, _PATH_ANY = 0, 1, 2, 3


class _HeaderCondition:
    __slots__ = ("exact", "name", "present", "regex")

    def __init__(self, spec: HeaderMatch) -> None:
        self.name = spec.name.lower().encode()
        self.exact = spec.exact.encode() if spec.exact is not None else None
        # RE2 (linear time): a client's header value cannot make the match backtrack.
        self.regex = header_regex(spec.regex) if spec.regex is not None else None
        self.present = spec.present

    def holds(self, headers: list[tuple[bytes, bytes]]) -> bool:
        value = None
        for name, candidate in headers:
            if name.lower() == self.name:
                value = candidate
                break
        if self.present is not None:
            return (value is not None) == self.present
        if value is None:
            return False
        if self.exact is not None:
            return value == self.exact
        return self.regex.fullmatch(value)


class CompiledRoute:
    """One route's match conditions, plus whatever the caller attached as ``target``."""

    __slots__ = (
        "headers",
        "host_kind",
        "host_value",
        "methods",
        "path_kind",
        "path_value",
        "regex",
        "sort_key",
        "target",
    )

    def __init__(self, match: Match, index: int, target: Any) -> None:
        self.target = target
        host = match.host.lower()
        if host == "*":
            self.host_kind, self.host_value = _HOST_ANY, ""
        elif host.startswith("*."):
            self.host_kind, self.host_value = _HOST_WILDCARD, host[1:]  # ".example.com"
        else:
            self.host_kind, self.host_value = _HOST_EXACT, host
        self.regex = None
        if match.path_exact is not None:
            self.path_kind, self.path_value = _PATH_EXACT, match.path_exact
        elif match.path_prefix is not None:
            self.path_kind, self.path_value = _PATH_PREFIX, match.path_prefix
        elif match.path_regex is not None:
            self.path_kind, self.path_value = _PATH_REGEX, match.path_regex
            self.regex = path_regex(match.path_regex)  # RE2, like header regexes
        else:
            self.path_kind, self.path_value = _PATH_ANY, ""
        self.methods = frozenset(match.methods)
        self.headers = tuple(_HeaderCondition(h) for h in match.headers)
        conditions = len(self.methods and [1]) + len(self.headers)
        self.sort_key = (
            self.host_kind,
            -len(self.host_value),
            self.path_kind,
            -len(self.path_value) if self.path_kind == _PATH_PREFIX else 0,
            -conditions,
            index,
        )

    def matches_request(self, path: str, method: str, headers: list) -> bool:
        kind = self.path_kind
        if kind == _PATH_PREFIX:
            if not path.startswith(self.path_value):
                return False
        elif kind == _PATH_EXACT:
            if path != self.path_value:
                return False
        elif kind == _PATH_REGEX and not self.regex.fullmatch(path.encode("latin-1")):
            return False
        if self.methods and method not in self.methods:
            return False
        for condition in self.headers:
            if not condition.holds(headers):
                return False
        return True


class Router:
    """Holds routes sorted by precedence and indexed by host."""

    def __init__(self, routes: Sequence[CompiledRoute]) -> None:
        ordered = sorted(routes, key=lambda r: r.sort_key)
        self._exact: dict[str, list[CompiledRoute]] = {}
        self._wildcard: list[CompiledRoute] = []
        self._any: list[CompiledRoute] = []
        for route in ordered:
            if route.host_kind == _HOST_EXACT:
                self._exact.setdefault(route.host_value, []).append(route)
            elif route.host_kind == _HOST_WILDCARD:
                self._wildcard.append(route)
            else:
                self._any.append(route)

    def match(self, host: str, path: str, method: str, headers: list) -> CompiledRoute | None:
        candidates = self._exact.get(host)
        if candidates:
            for route in candidates:
                if route.matches_request(path, method, headers):
                    return route
        for route in self._wildcard:
            if host.endswith(route.host_value) and route.matches_request(path, method, headers):
                return route
        for route in self._any:
            if route.matches_request(path, method, headers):
                return route
        return None
