"""A request target turned into its one origin-form (RFC 9112 3.2): pure, no I/O.

Called once per request head read (a remembered head keeps its answer: http1.parser), by the
HTTP/1.1 parser and the HTTP/2 header block reader alike, so routing, access rules, the
cache key and what the upstream receives all see the same ``(path, query)``:

- origin-form ``/path?query``: the path is normalised (dispa.config.paths), the query kept
  as sent (a fragment, ``#``, is refused: it is never part of a request target);
- absolute-form ``http://authority/path?query`` (HTTP/1.1 only; RFC 9113 8.3.1 has no
  such ``:path``): becomes origin-form, and its authority is the request's host (3.2.2);
  userinfo (``user@host``) is refused, as RFC 9110 4.2.4 advises;
- asterisk-form ``*``: for OPTIONS only;
- anything else (``admin``, ``ftp://...``) is refused.
Authority-form (CONNECT) never gets here: the parsers refuse tunnels first.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from dispa.config.paths import NORMAL_PATH, PathRefused, normalise_path

__all__ = [
    "DEFAULT_RULES",
    "PathRefused",
    "PathRules",
    "origin_form",
    "path_rules_of",
    "valid_authority",
]


class PathRules(NamedTuple):
    """A listener's ``paths`` settings (schema.Paths), as the parsers hold them."""

    merge_slashes: bool = True
    escaped_slashes: str = "reject"  # %2F and %5C: reject | keep | unescape
    escaped_nul: str = "reject"  # %00: reject | keep


DEFAULT_RULES = PathRules()
_RULES: dict[PathRules, PathRules] = {DEFAULT_RULES: DEFAULT_RULES}


def path_rules_of(paths) -> PathRules:
    """The rules of a listener's ``paths`` settings (None: the defaults); one shared
    instance per distinct setting, so tables keyed by them stay few."""
    if paths is None:
        return DEFAULT_RULES
    rules = PathRules(paths.merge_slashes, paths.escaped_slashes, paths.escaped_nul)
    return _RULES.setdefault(rules, rules)


_already_normal = NORMAL_PATH.fullmatch
# A query is kept as sent; only what no request target may hold is refused (HTTP/2 can
# carry any byte but NUL, CR and LF; llhttp refuses the rest in an HTTP/1.1 request line).
_REFUSED_IN_QUERY = re.compile(rb"[^\x21-\x7e]|#")
# host (a name, IPv4, or a bracketed IPv6 literal) and an optional port; no userinfo.
_AUTHORITY = re.compile(rb"(?:[A-Za-z0-9._~-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{0,5})?")


def valid_authority(value: bytes) -> bool:
    """Whether a Host field or ``:authority`` is ``uri-host [":" port]`` (RFC 9110 7.2),
    a name, IPv4 or bracketed IPv6 address. Userinfo, a path, a list, spaces or escapes
    would read one way to the router and perhaps another to the upstream."""
    return _AUTHORITY.fullmatch(value) is not None


def origin_form(
    target: bytes, method: str, rules: PathRules = DEFAULT_RULES, absolute_allowed: bool = True
) -> tuple[bytes, bytes, bytes, bytes | None]:
    """``(target, path, query, authority)``: the origin-form target the upstream receives
    (``target`` itself when it was already normal), its path and query (with its ``?``),
    and the authority of an absolute-form target (else None). PathRefused says why not."""
    if target[:1] == b"/":
        authority = None
        rest = target
    elif target == b"*":
        if method != "OPTIONS":
            raise PathRefused("'*' is a target for OPTIONS only")
        return target, target, b"", None
    elif absolute_allowed:
        authority, rest = _absolute_form(target)
    else:
        raise PathRefused("a path must start with '/'")
    query_at = rest.find(b"?")
    if query_at >= 0:
        raw_path, query = rest[:query_at], rest[query_at:]
        if _REFUSED_IN_QUERY.search(query, 1) is not None:
            raise PathRefused("a character that a query cannot hold")
    else:
        raw_path, query = rest, b""
    if _already_normal(raw_path) is not None:
        if authority is None:
            return target, raw_path, query, None  # the common case, in one regex pass
        path = raw_path
    else:
        path = normalise_path(
            raw_path,
            merge_slashes=rules.merge_slashes,
            escaped_slashes=rules.escaped_slashes,
            escaped_nul=rules.escaped_nul,
        )
    return path + query, path, query, authority


def _absolute_form(target: bytes) -> tuple[bytes, bytes]:
    """``(authority, path and query)`` of ``http(s)://authority[/path][?query]``."""
    scheme_end = target.find(b"://")
    if scheme_end < 0 or target[:scheme_end].lower() not in (b"http", b"https"):
        raise PathRefused("not an origin-form, absolute http(s) or '*' target")
    start = scheme_end + 3
    end = len(target)
    for stop in (b"/", b"?"):
        at = target.find(stop, start)
        if 0 <= at < end:
            end = at
    authority = target[start:end]
    if _AUTHORITY.fullmatch(authority) is None:
        raise PathRefused("userinfo, or a malformed authority")
    rest = target[end:]
    return authority, rest if rest[:1] == b"/" else b"/" + rest
