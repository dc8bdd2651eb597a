"""Validation both ways: the cache asking the origin whether its copy still holds
(RFC 9111 section 4.3), and the cache answering a client's own conditional request
(RFC 9110 section 13) from a copy it trusts.
"""

from __future__ import annotations

import dataclasses
import re
from typing import NamedTuple

from dispa.edge.cache.decision import headers_for_client
from dispa.edge.cache.entry import CachedResponse
from dispa.edge.cache.fields import AnyHeaders, field_lines, first_field, without_fields
from dispa.edge.cache.freshness import date_field
from dispa.edge.cache.http_date import parse_http_date
from dispa.edge.cache.storable import HOP_BY_HOP, headers_to_store
from dispa.edge.cache.tags import tags_of
from dispa.proxy.events import Headers

CLIENT_CONDITIONALS = (b"if-none-match", b"if-modified-since")
# Never taken from a 304 (RFC 9111 section 3.2): they describe the stored body's bytes,
# which a 304 does not replace, or the connection it came on.
NOT_UPDATED_BY_304 = HOP_BY_HOP | {
    b"content-length",
    b"content-encoding",
    b"content-range",
}
# The fields a 304 carries (RFC 9110 section 15.4.5), plus Age as any cached answer has.
NOT_MODIFIED_FIELDS = frozenset(
    {b"cache-control", b"content-location", b"date", b"etag", b"expires", b"vary", b"age"}
)
_ENTITY_TAG = re.compile(rb'(W/)?"([^"]*)"')


class EntityTag(NamedTuple):
    weak: bool
    opaque: bytes  # between the quotes


# ---------------------------------------------------------------- the cache asks the origin


def conditional_headers(entry: CachedResponse) -> Headers:
    """If-None-Match from the entry's ETag and If-Modified-Since from its Last-Modified."""
    headers: Headers = []
    etag = first_field(entry.headers, b"etag")
    if etag is not None:
        headers.append((b"If-None-Match", etag))
    last_modified = first_field(entry.headers, b"last-modified")
    if last_modified is not None:
        headers.append((b"If-Modified-Since", last_modified))
    return headers


def revalidation_headers(request_headers: AnyHeaders, entry: CachedResponse) -> Headers:
    """The client's request headers for the origin, its own If-None-Match and
    If-Modified-Since replaced by the entry's: the cache answers those itself."""
    return without_fields(request_headers, CLIENT_CONDITIONALS) + conditional_headers(entry)


def merge_not_modified(
    entry: CachedResponse,
    headers_304: AnyHeaders,
    request_time: float,
    response_time: float,
) -> CachedResponse | None:
    """The entry freshened by a 304 (4.3.4), or None if the 304 is about another
    representation (its validator differs): fetch again without conditions then.

    Fields in the 304 replace the stored ones of the same name, except those that
    describe the stored body. Date and Age are always the 304's (dropped if it has none):
    the old ones would make the just-validated copy look as old as the first fetch.

    The 304 may change the rules (no-store, private ...): check ``is_storable`` on the
    result before storing it again.
    """
    if not _validators_agree(entry.headers, headers_304, response_time):
        return None
    fresh = headers_to_store(headers_304)
    replaced = {name.lower() for name, _ in fresh} - NOT_UPDATED_BY_304
    replaced.update((b"date", b"age"))
    headers = without_fields(entry.headers, replaced)
    headers.extend((name, value) for name, value in fresh if name.lower() in replaced)
    return dataclasses.replace(
        entry,
        headers=tuple(headers),
        request_time=request_time,
        response_time=response_time,
        tags=tags_of(headers),
    )


def _validators_agree(stored: AnyHeaders, headers_304: AnyHeaders, now: float) -> bool:
    new_etag = first_field(headers_304, b"etag")
    if new_etag is not None:
        old_etag = first_field(stored, b"etag")
        if old_etag is None:
            return False
        new, old = parse_entity_tag(new_etag), parse_entity_tag(old_etag)
        # A strong validator selects only a stored response with the same strong one.
        return new.opaque == old.opaque and (new.weak or not old.weak)
    if first_field(headers_304, b"last-modified") is not None:
        date = date_field(headers_304, b"last-modified", now)
        return date is not None and date == date_field(stored, b"last-modified", now)
    # No validator in the 304. The conditional request was built from this entry alone,
    # so the answer can only be about it (4.3.4 names the case of a lone stored response).
    return True


# ---------------------------------------------------------------- the client asks the cache


def client_conditional_matches(
    entry: CachedResponse, request_headers: AnyHeaders, now: float | None = None
) -> bool:
    """True if the client's If-None-Match or If-Modified-Since is satisfied by the entry,
    so the cache may answer 304 itself. Call it only for an entry the decision lets you
    serve, on a GET or HEAD request.

    If-None-Match, when sent, decides alone (RFC 9110 section 13.2.2), by weak comparison
    (13.1.2); ``*`` matches any stored response.
    """
    if_none_match = field_lines(request_headers, b"if-none-match")
    if if_none_match:
        value = b",".join(if_none_match).strip()
        if value == b"*":
            return True
        etag = first_field(entry.headers, b"etag")
        if etag is None:
            return False
        stored = parse_entity_tag(etag).opaque
        return any(tag.opaque == stored for tag in parse_entity_tags(value))
    if_modified_since = field_lines(request_headers, b"if-modified-since")
    if len(if_modified_since) != 1:
        return False
    since = parse_http_date(if_modified_since[0], now)
    last_modified = date_field(entry.headers, b"last-modified", entry.response_time)
    # Without a valid date on either side the condition is ignored (13.1.3): no 304.
    return since is not None and last_modified is not None and last_modified <= since


def not_modified_headers(
    entry: CachedResponse, now: float, targeted_fields: tuple[bytes, ...] = ()
) -> Headers:
    """The header fields of a 304 the cache sends for the entry (RFC 9110 15.4.5).

    Last-Modified is added only when there is no ETag, where it helps the client's cache.
    The cache's targeted fields (RFC 9213) go with Cache-Control: they exist to guide the
    caches that a 304 updates.
    """
    wanted = set(NOT_MODIFIED_FIELDS)
    wanted.update(targeted_fields)
    if first_field(entry.headers, b"etag") is None:
        wanted.add(b"last-modified")
    return [
        (name, value) for name, value in headers_for_client(entry, now) if name.lower() in wanted
    ]


def parse_entity_tag(value: bytes) -> EntityTag:
    """One entity-tag. A bare, unquoted value (a common server mistake) counts as strong."""
    tags = parse_entity_tags(value)
    return tags[0] if tags else EntityTag(False, value.strip())


def parse_entity_tags(value: bytes) -> list[EntityTag]:
    """The entity-tags of an If-None-Match list, or of an unquoted single value."""
    tags = [EntityTag(bool(weak), opaque) for weak, opaque in _ENTITY_TAG.findall(value)]
    if not tags and value.strip():
        tags = [EntityTag(False, value.strip())]
    return tags
