"""Which purge URLs a core commits: those naming a target its data plane could store.

Edges store a response under its request's target in normal form, and normalise a purge
URL with the same function (``origin_form``) before they look it up (``purge_key`` in
dispa.edge.cache.key). A URL whose target the data plane refuses, ``%2F`` under the
default path rules or a fragment, can never match an entry: committed, it would be a
purge that silently does nothing. So it is answered 400 here, saying why.

The rules are the core's own listeners' (cores and edges of one cluster serve the same
routes, and normally the same ``paths`` settings): a URL passes if one of them accepts
it. Each edge then applies it in the normal form of its own listeners' rules.
"""

from __future__ import annotations

from collections.abc import Iterable

from dispa.proxy.request_target import PathRefused, PathRules, origin_form

_SETTING_OF = {
    "an encoded '/' or '\\'": "listeners[].paths.escaped_slashes",
    "an encoded NUL": "listeners[].paths.escaped_nul",
}


def purge_url_problem(url: object, rules: Iterable[PathRules]) -> str | None:
    """Why no response can be stored under ``url`` (None: it can)."""
    if not isinstance(url, str):
        return "not an absolute http(s) URL"
    scheme, separator, _ = url.partition("://")
    if not separator or scheme.lower() not in ("http", "https"):
        return "not an absolute http(s) URL"
    if "#" in url:
        return "has a fragment ('#...'), which is never part of a request: leave it out"
    try:
        raw = url.encode("ascii")
    except UnicodeEncodeError:
        return "has a character outside ASCII: percent-encode it as UTF-8, as a client would"
    reason = "no listener"
    for one in rules:
        try:
            origin_form(raw, "GET", one)
        except PathRefused as refused:
            reason = str(refused)
        else:
            return None
    setting = _SETTING_OF.get(reason)
    hint = f" ({setting} on this core's listeners)" if setting else ""
    return f"the data plane refuses this target, so nothing is cached under it: {reason}{hint}"
