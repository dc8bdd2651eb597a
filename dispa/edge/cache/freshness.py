"""How long a stored response stays fresh, and how old it is (RFC 9111 section 4.2).

Written for a shared cache: s-maxage counts, and the clock readings (when the request
was sent, when the response arrived, now) are arguments, so every answer is a pure
function of its inputs.
"""

from __future__ import annotations

from dispa.edge.cache.cache_control import CacheControl, cache_control_of, delta_seconds
from dispa.edge.cache.fields import AnyHeaders, field_lines, first_field, has_field, list_members
from dispa.edge.cache.http_date import parse_http_date

# RFC 9110 section 15.1: statuses a cache may store and serve without explicit freshness.
HEURISTICALLY_CACHEABLE = frozenset({200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501})
# RFC 9111 section 4.2.2 suggests a fraction of the time since the last modification;
# 10% is the usual figure (nginx, Varnish, Squid), capped so a file untouched for years
# is not served unchecked for months.
HEURISTIC_FRACTION = 0.1
HEURISTIC_LIMIT = 86_400.0


def date_value(headers: AnyHeaders, response_time: float) -> float:
    """When the response was generated: its Date, or when it arrived if it has none (or a
    bad one), as a cache must assume (RFC 9110 section 6.6.1)."""
    date = date_field(headers, b"date", response_time)
    return response_time if date is None else date


def date_field(headers: AnyHeaders, lower_name: bytes, now: float) -> float | None:
    """A field whose value is one HTTP-date (Date, Expires, Last-Modified), as Unix
    seconds; None when absent or invalid. Several lines of it make a list, which is not
    an HTTP-date: invalid too. ``now`` reads an RFC 850 date's two-digit year."""
    lines = field_lines(headers, lower_name)
    return parse_http_date(lines[0], now) if len(lines) == 1 else None


def age_value(headers: AnyHeaders) -> int:
    """The Age field in seconds; its first member only, 0 if absent or invalid (5.1)."""
    members = list_members([first_field(headers, b"age") or b""])
    if not members:
        return 0
    seconds = delta_seconds(members[0].decode("latin-1"))
    return 0 if seconds is None else seconds


def has_explicit_expiry(headers: AnyHeaders, directives: CacheControl | None = None) -> bool:
    directives = cache_control_of(headers) if directives is None else directives
    return (
        directives.s_maxage is not None
        or directives.max_age is not None
        # A targeted field's directives replace Expires too (RFC 9213 section 2.1).
        or (not directives.targeted and has_field(headers, b"expires"))
    )


def may_use_heuristics(
    status: int, headers: AnyHeaders, directives: CacheControl | None = None
) -> bool:
    """Heuristic freshness is allowed only without an explicit expiry, and only for a
    status cacheable by default or a response explicitly marked public (4.2.2)."""
    directives = cache_control_of(headers) if directives is None else directives
    if has_explicit_expiry(headers, directives):
        return False
    return status in HEURISTICALLY_CACHEABLE or directives.public


def freshness_lifetime(
    status: int,
    headers: AnyHeaders,
    response_time: float,
    directives: CacheControl | None = None,
) -> float:
    """Seconds the response is fresh for, counted from its generation (4.2.1)."""
    directives = cache_control_of(headers) if directives is None else directives
    if directives.s_maxage is not None:
        return float(directives.s_maxage)
    if directives.max_age is not None:
        return float(directives.max_age)
    if not directives.targeted and has_field(headers, b"expires"):
        expires = date_field(headers, b"expires", response_time)
        if expires is None:  # "0" and other invalid dates mean already expired (5.3)
            return 0.0
        return max(0.0, expires - date_value(headers, response_time))
    if may_use_heuristics(status, headers, directives):
        return heuristic_lifetime(headers, response_time)
    return 0.0


def heuristic_lifetime(headers: AnyHeaders, response_time: float) -> float:
    """10% of the time between the last modification and the response, at most a day."""
    last_modified = date_field(headers, b"last-modified", response_time)
    if last_modified is None:
        return 0.0
    unchanged_for = date_value(headers, response_time) - last_modified
    return min(HEURISTIC_LIMIT, max(0.0, unchanged_for * HEURISTIC_FRACTION))


def current_age(
    headers: AnyHeaders, request_time: float, response_time: float, now: float
) -> float:
    """The age of a stored response now (4.2.3): the larger of what the clocks say and
    what upstream caches declared, plus the time spent in this cache."""
    apparent_age = max(0.0, response_time - date_value(headers, response_time))
    response_delay = max(0.0, response_time - request_time)
    corrected_age_value = age_value(headers) + response_delay
    corrected_initial_age = max(apparent_age, corrected_age_value)
    resident_time = max(0.0, now - response_time)
    return corrected_initial_age + resident_time
