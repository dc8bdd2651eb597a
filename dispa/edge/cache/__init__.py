"""The edge's shared HTTP cache, as a pure library (RFC 9111, with RFC 5861's
stale-while-revalidate and stale-if-error).

Everything here is a function of its arguments, the clock included (``now``, Unix
seconds); only the store's optional disk tier does I/O. How the data plane uses it:

    key = primary_key(method, scheme, host, target)
    entry = store.lookup(key, request_headers)
    if entry is None:      fetch, and store if is_storable(...); but answer 504 when
                           only_if_cached_fails(request_headers, None) (or, later,
                           when it holds for the decision)
    else by decide(entry, request_headers, now):
        FRESH                   serve headers_for_client(entry, now), or a 304 when
                                client_conditional_matches(entry, request_headers)
        STALE_WHILE_REVALIDATE  serve as FRESH, and revalidate in the background
        REVALIDATE              send revalidation_headers(request_headers, entry); on 304,
                                merge_not_modified(...); on an error,
                                serve_stale_on_error(...) says whether the entry may answer

    a request whose method invalidates(...) (not GET, HEAD, OPTIONS, TRACE): once its
    response head is in, drop what is stored under each of urls_to_invalidate(...)

Response directives come from response_cache_control(headers, targeted_fields): the
first targeted field (RFC 9213, CDN-Cache-Control) of the cache's list that the response
carries, else Cache-Control; decide, serve_stale_on_error and is_storable take the list.
"""

from __future__ import annotations

from dispa.edge.cache.cache_control import CacheControl, cache_control_of, parse_cache_control
from dispa.edge.cache.decision import (
    Decision,
    decide,
    headers_for_client,
    only_if_cached_fails,
    serve_stale_on_error,
)
from dispa.edge.cache.entry import CachedResponse, CorruptEntry, decode_entry, encode_entry
from dispa.edge.cache.freshness import current_age, freshness_lifetime
from dispa.edge.cache.http_date import parse_http_date
from dispa.edge.cache.invalidation import invalidates, urls_to_invalidate
from dispa.edge.cache.key import normalize_url, primary_key, purge_key, url_of, vary_key_for
from dispa.edge.cache.storable import headers_to_store, is_storable, why_not_storable
from dispa.edge.cache.store import CacheStore
from dispa.edge.cache.tags import tags_of
from dispa.edge.cache.targeted import response_cache_control
from dispa.edge.cache.validators import (
    client_conditional_matches,
    conditional_headers,
    merge_not_modified,
    not_modified_headers,
    revalidation_headers,
)

__all__ = [
    "CacheControl",
    "CacheStore",
    "CachedResponse",
    "CorruptEntry",
    "Decision",
    "cache_control_of",
    "client_conditional_matches",
    "conditional_headers",
    "current_age",
    "decide",
    "decode_entry",
    "encode_entry",
    "freshness_lifetime",
    "headers_for_client",
    "headers_to_store",
    "invalidates",
    "is_storable",
    "merge_not_modified",
    "normalize_url",
    "not_modified_headers",
    "only_if_cached_fails",
    "parse_cache_control",
    "parse_http_date",
    "primary_key",
    "purge_key",
    "response_cache_control",
    "revalidation_headers",
    "serve_stale_on_error",
    "tags_of",
    "url_of",
    "urls_to_invalidate",
    "vary_key_for",
    "why_not_storable",
]
