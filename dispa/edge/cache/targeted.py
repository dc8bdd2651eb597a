"""Targeted cache-control fields (RFC 9213): CDN-Cache-Control and its kin.

A cache keeps a target list, field names in order of precedence (``cache.targeted_fields``,
``[cdn-cache-control]`` by default). The first of them that a response carries with a
valid, non-empty value rules this cache's storing and freshness decisions for that
response, and Cache-Control and Expires are then ignored by it (section 2.1). The fields
themselves, targeted or not, go on to the client as the origin sent them: downstream
caches read their own.

A targeted field is a Structured Field Dictionary (section 2.2): one syntax error and the
whole field is ignored, as if absent. Each member is a response directive with the
meaning it has in Cache-Control; a value of the wrong type (``max-age=1.5``,
``max-age="60"``, ``no-store=?0``) is not consumed, so that directive is ignored, and
parameters are ignored. Unknown directives are ignored too, but they make the field
non-empty: ``CDN-Cache-Control: none`` gives a response no explicit freshness at all here,
whatever its Cache-Control says (the RFC's own example).
"""

from __future__ import annotations

import functools

from dispa.edge.cache.cache_control import DELTA_SECONDS_LIMIT, CacheControl, cache_control_of
from dispa.edge.cache.fields import AnyHeaders, field_lines
from dispa.edge.cache.structured_fields import parse_dictionary

DEFAULT_TARGETED_FIELDS = (b"cdn-cache-control",)

# Directives that are true when present (no-cache and private may carry a String of field
# names: taken as their unqualified forms, stricter and always safe, as cache_control.py does).
_FLAGS = {
    "no-store": ("no_store", False),
    "no-cache": ("no_cache", True),
    "private": ("private", True),
    "public": ("public", False),
    "must-revalidate": ("must_revalidate", False),
    "proxy-revalidate": ("proxy_revalidate", False),
    "no-transform": ("no_transform", False),
}
_SECONDS = {
    "max-age": "max_age",
    "s-maxage": "s_maxage",
    "stale-while-revalidate": "stale_while_revalidate",
    "stale-if-error": "stale_if_error",
}


def response_cache_control(
    headers: AnyHeaders, targeted_fields: tuple[bytes, ...] = ()
) -> CacheControl:
    """The directives this cache follows for a response: those of the first targeted
    field (lower-case names, in order of precedence) that is present, valid and
    non-empty; else those of Cache-Control."""
    for name in targeted_fields:
        lines = field_lines(headers, name)
        if lines:
            directives = targeted_directives(tuple(lines))
            if directives is not None:
                return directives
    return cache_control_of(headers)


@functools.lru_cache(maxsize=1024)
def targeted_directives(lines: tuple[bytes, ...]) -> CacheControl | None:
    """The directives of a targeted field's lines, or None when the field is empty or not
    a valid Dictionary (it is then ignored). Cached: a hit reads them on every request."""
    members = parse_dictionary(b", ".join(lines))
    if not members:
        return None
    found: dict[str, object] = {"targeted": True}
    for name, (value, _parameters) in members.items():
        if name in _FLAGS:
            attribute, may_be_string = _FLAGS[name]
            # A field-name list makes it stricter, never looser: anything but ?0 counts.
            if value is True or (may_be_string and value is not False):
                found[attribute] = True
        # Seconds are an Integer, not negative; not a Decimal, a String or a Token.
        elif name in _SECONDS and type(value) is int and value >= 0:
            found[_SECONDS[name]] = min(value, DELTA_SECONDS_LIMIT)
    return CacheControl(**found)
