"""What to do with a stored response for this request (RFC 9111 section 4.2.4 and
5.2.1, RFC 5861): serve it, serve it and refresh it behind the client's back, or ask the
origin first.

A stale response is served only where someone explicitly allows it: the client (its
max-stale) or the origin (stale-while-revalidate, stale-if-error); never past
must-revalidate, proxy-revalidate or no-cache.

s-maxage implies proxy-revalidate for a shared cache (5.2.2.10), and we apply that to
the client's max-stale. But when the same response also carries stale-while-revalidate
or stale-if-error, we take those as the origin's more specific word and honour them:
``s-maxage=60, stale-while-revalidate=30`` is a common header that means exactly that,
and it is how other shared caches read it.
"""

from __future__ import annotations

import enum

from dispa.edge.cache.cache_control import DELTA_SECONDS_LIMIT, CacheControl, cache_control_of
from dispa.edge.cache.entry import CachedResponse
from dispa.edge.cache.fields import AnyHeaders, field_lines, has_field, list_members
from dispa.edge.cache.freshness import current_age, freshness_lifetime
from dispa.edge.cache.targeted import response_cache_control
from dispa.proxy.events import Headers


class Decision(enum.Enum):
    # Serve the stored response as it is: fresh, or stale within the client's max-stale.
    FRESH = "fresh"
    # Serve it now, and revalidate it in the background (stale-while-revalidate).
    STALE_WHILE_REVALIDATE = "stale_while_revalidate"
    # Send a conditional request (validators.py) and serve what it yields.
    REVALIDATE = "revalidate"


def decide(
    entry: CachedResponse,
    request_headers: AnyHeaders,
    now: float,
    targeted_fields: tuple[bytes, ...] = (),
) -> Decision:
    """``targeted_fields``: this cache's target list (targeted.py), whose first field
    present rules over the response's Cache-Control and Expires."""
    response = response_cache_control(entry.headers, targeted_fields)
    request = cache_control_of(request_headers)
    if response.no_cache or client_wants_validation(request, request_headers):
        return Decision.REVALIDATE
    lifetime = freshness_lifetime(entry.status, entry.headers, entry.response_time, response)
    age = age_of(entry, now)
    if request.max_age is not None and age > request.max_age:
        return Decision.REVALIDATE
    if lifetime - age > (request.min_fresh or 0):
        return Decision.FRESH
    # Both ask for a response with time to spare, so a stale one will not do (5.2.1.1,
    # 5.2.1.3), unless max-stale, sent along with max-age, says otherwise.
    if request.min_fresh is not None or (request.max_age is not None and request.max_stale is None):
        return Decision.REVALIDATE
    staleness = age - lifetime
    if (
        response.stale_while_revalidate is not None
        and staleness <= response.stale_while_revalidate
        and _origin_allows_stale(response, explicitly=True)
    ):
        return Decision.STALE_WHILE_REVALIDATE
    if (
        request.max_stale is not None
        and staleness <= request.max_stale
        and _origin_allows_stale(response, explicitly=False)
    ):
        return Decision.FRESH
    return Decision.REVALIDATE


def serve_stale_on_error(
    entry: CachedResponse,
    request_headers: AnyHeaders,
    now: float,
    targeted_fields: tuple[bytes, ...] = (),
) -> bool:
    """May this entry answer the request when the origin failed (5xx, or unreachable)?

    True while it is fresh, or stale within a stale-if-error window (RFC 5861 section 4)
    that the response grants or the request asks for; never past a directive that
    demands revalidation.
    """
    response = response_cache_control(entry.headers, targeted_fields)
    if response.no_cache or response.must_revalidate or response.proxy_revalidate:
        return False
    lifetime = freshness_lifetime(entry.status, entry.headers, entry.response_time, response)
    staleness = age_of(entry, now) - lifetime
    if staleness < 0:
        return True
    if response.stale_if_error is not None and staleness <= response.stale_if_error:
        return True
    # The client's own stale-if-error cannot override the revalidation s-maxage implies.
    request = cache_control_of(request_headers)
    return (
        request.stale_if_error is not None
        and staleness <= request.stale_if_error
        and _origin_allows_stale(response, explicitly=False)
    )


def only_if_cached_fails(request_headers: AnyHeaders, decision: Decision | None) -> bool:
    """True when the client sent only-if-cached and the cache cannot answer from storage:
    no entry (``decision`` None), or one that would need the origin. Answer it 504 (5.2.1.7).
    """
    if not cache_control_of(request_headers).only_if_cached:
        return False
    return decision is None or decision is Decision.REVALIDATE


def client_wants_validation(request: CacheControl, request_headers: AnyHeaders) -> bool:
    """Request no-cache; or, from HTTP/1.0 clients, Pragma: no-cache, which counts only
    when the request has no Cache-Control field at all (5.4)."""
    if request.no_cache:
        return True
    if has_field(request_headers, b"cache-control"):
        return False
    pragma = list_members(field_lines(request_headers, b"pragma"))
    return any(member.lower() == b"no-cache" for member in pragma)


def age_of(entry: CachedResponse, now: float) -> float:
    return current_age(entry.headers, entry.request_time, entry.response_time, now)


def headers_for_client(entry: CachedResponse, now: float) -> Headers:
    """The stored headers with Age set to the entry's current age, which a cache must send
    with a stored response (5.1)."""
    headers = [(name, value) for name, value in entry.headers if name.lower() != b"age"]
    age = min(int(age_of(entry, now)), DELTA_SECONDS_LIMIT)  # the cap 5.1 sets
    headers.append((b"Age", str(age).encode()))
    return headers


def _origin_allows_stale(response: CacheControl, *, explicitly: bool) -> bool:
    if response.must_revalidate or response.proxy_revalidate:
        return False
    return explicitly or response.s_maxage is None
