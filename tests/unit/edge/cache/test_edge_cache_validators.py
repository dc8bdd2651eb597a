"""Conditional requests both ways, and merging a 304 into a stored entry."""

from email.utils import formatdate

from dispa.edge.cache.decision import Decision, decide
from dispa.edge.cache.entry import CachedResponse
from dispa.edge.cache.validators import (
    EntityTag,
    client_conditional_matches,
    conditional_headers,
    merge_not_modified,
    not_modified_headers,
    parse_entity_tag,
    revalidation_headers,
)

NOW = 1_700_000_000.0
LAST_MODIFIED = NOW - 86_400


def http_date(seconds: float) -> bytes:
    return formatdate(seconds, usegmt=True).encode()


def stored(*headers, etag: bytes | None = b'"v1"', last_modified: float | None = LAST_MODIFIED):
    fields = [
        (b"Date", http_date(NOW)),
        (b"Cache-Control", b"max-age=60"),
        (b"Content-Type", b"text/html"),
        (b"Content-Length", b"4"),
        (b"Content-Encoding", b"gzip"),
    ]
    if etag is not None:
        fields.append((b"ETag", etag))
    if last_modified is not None:
        fields.append((b"Last-Modified", http_date(last_modified)))
    fields.extend(headers)
    return CachedResponse(200, b"OK", fields, b"body", NOW - 1, NOW, "http://a/", ("t1",))


def values(headers, lower_name):
    return [value for name, value in headers if name.lower() == lower_name]


# ---------------------------------------------------------------- asking the origin


def test_conditional_headers_come_from_the_validators():
    assert conditional_headers(stored()) == [
        (b"If-None-Match", b'"v1"'),
        (b"If-Modified-Since", http_date(LAST_MODIFIED)),
    ]
    assert conditional_headers(stored(etag=None, last_modified=None)) == []


def test_revalidation_replaces_the_clients_own_conditionals():
    client = [
        (b"Host", b"a"),
        (b"if-none-match", b'"client"'),
        (b"If-Modified-Since", b"Mon, 01 Jan 2024 00:00:00 GMT"),
        (b"Accept", b"*/*"),
    ]
    assert revalidation_headers(client, stored(last_modified=None)) == [
        (b"Host", b"a"),
        (b"Accept", b"*/*"),
        (b"If-None-Match", b'"v1"'),
    ]


# ---------------------------------------------------------------- merging a 304


def test_304_updates_fields_and_keeps_the_body_and_its_description():
    entry = stored((b"X-Version", b"old"))
    merged = merge_not_modified(
        entry,
        [
            (b"Date", http_date(NOW + 500)),
            (b"ETag", b'"v1"'),
            (b"Cache-Control", b"max-age=120"),
            (b"X-Version", b"new"),
            (b"Content-Length", b"0"),
            (b"Content-Encoding", b"br"),
            (b"Connection", b"close"),
            (b"Cache-Tag", b"t2"),
        ],
        request_time=NOW + 499,
        response_time=NOW + 500,
    )
    assert merged is not None
    assert values(merged.headers, b"cache-control") == [b"max-age=120"]
    assert values(merged.headers, b"x-version") == [b"new"]
    assert values(merged.headers, b"date") == [http_date(NOW + 500)]
    assert values(merged.headers, b"content-length") == [b"4"]
    assert values(merged.headers, b"content-encoding") == [b"gzip"]
    assert values(merged.headers, b"connection") == []
    assert values(merged.headers, b"content-type") == [b"text/html"]
    assert (merged.request_time, merged.response_time) == (NOW + 499, NOW + 500)
    assert merged.body == entry.body
    assert merged.tags == ("t2",)


def test_merged_entry_is_fresh_again():
    entry = stored()
    assert decide(entry, [], NOW + 100) is Decision.REVALIDATE
    merged = merge_not_modified(
        entry, [(b"Date", http_date(NOW + 100)), (b"ETag", b'"v1"')], NOW + 100, NOW + 100
    )
    assert merged is not None
    assert decide(merged, [], NOW + 130) is Decision.FRESH


def test_stale_date_and_age_are_dropped_when_the_304_has_none():
    entry = stored((b"Age", b"50"))
    merged = merge_not_modified(entry, [(b"ETag", b'"v1"')], NOW + 1000, NOW + 1000)
    assert merged is not None
    assert values(merged.headers, b"age") == []
    assert values(merged.headers, b"date") == []
    assert decide(merged, [], NOW + 1010) is Decision.FRESH


def test_304_for_another_representation_does_not_merge():
    assert merge_not_modified(stored(), [(b"ETag", b'"v2"')], NOW, NOW) is None
    assert merge_not_modified(stored(etag=None), [(b"ETag", b'"v1"')], NOW, NOW) is None


def test_strong_304_validator_needs_a_strong_stored_one():
    assert merge_not_modified(stored(etag=b'W/"v1"'), [(b"ETag", b'"v1"')], NOW, NOW) is None
    assert merge_not_modified(stored(etag=b'"v1"'), [(b"ETag", b'W/"v1"')], NOW, NOW)
    assert merge_not_modified(stored(etag=b'W/"v1"'), [(b"ETag", b'W/"v1"')], NOW, NOW)


def test_304_with_last_modified_only():
    entry = stored(etag=None)
    same = [(b"Last-Modified", http_date(LAST_MODIFIED))]
    later = [(b"Last-Modified", http_date(LAST_MODIFIED + 10))]
    assert merge_not_modified(entry, same, NOW, NOW) is not None
    assert merge_not_modified(entry, later, NOW, NOW) is None
    assert merge_not_modified(stored(last_modified=None), same, NOW, NOW) is None


def test_304_without_validators_applies_to_the_entry_that_was_asked_about():
    merged = merge_not_modified(stored(), [(b"Cache-Control", b"max-age=5")], NOW, NOW + 2)
    assert merged is not None
    assert values(merged.headers, b"cache-control") == [b"max-age=5"]


# ---------------------------------------------------------------- the client asks the cache


def test_if_none_match_uses_weak_comparison():
    entry = stored()
    assert client_conditional_matches(entry, [(b"If-None-Match", b'"v1"')])
    assert client_conditional_matches(entry, [(b"If-None-Match", b'W/"v1"')])
    assert client_conditional_matches(entry, [(b"If-None-Match", b'"v0", W/"v1"')])
    assert client_conditional_matches(
        entry, [(b"If-None-Match", b'"v0"'), (b"If-None-Match", b'"v1"')]
    )
    assert not client_conditional_matches(entry, [(b"If-None-Match", b'"v2"')])
    assert client_conditional_matches(stored(etag=b'W/"v1"'), [(b"if-none-match", b'"v1"')])


def test_if_none_match_star_matches_any_stored_response():
    assert client_conditional_matches(stored(etag=None), [(b"If-None-Match", b" * ")])


def test_if_none_match_without_a_stored_etag_does_not_match():
    assert not client_conditional_matches(stored(etag=None), [(b"If-None-Match", b'"v1"')])


def test_if_none_match_takes_precedence_over_if_modified_since():
    request = [(b"If-None-Match", b'"v2"'), (b"If-Modified-Since", http_date(NOW))]
    assert not client_conditional_matches(stored(), request)


def test_if_modified_since():
    entry = stored()
    assert client_conditional_matches(entry, [(b"If-Modified-Since", http_date(LAST_MODIFIED))])
    assert client_conditional_matches(entry, [(b"If-Modified-Since", http_date(NOW))])
    later = http_date(LAST_MODIFIED - 1)
    assert not client_conditional_matches(entry, [(b"If-Modified-Since", later)])


def test_if_modified_since_is_ignored_when_it_cannot_be_evaluated():
    assert not client_conditional_matches(stored(), [(b"If-Modified-Since", b"yesterday")])
    assert not client_conditional_matches(
        stored(last_modified=None), [(b"If-Modified-Since", http_date(NOW))]
    )
    twice = [(b"If-Modified-Since", http_date(NOW)), (b"If-Modified-Since", http_date(NOW))]
    assert not client_conditional_matches(stored(), twice)
    assert not client_conditional_matches(stored(), [])


def test_not_modified_headers():
    entry = stored((b"Vary", b"Accept-Encoding"), (b"Expires", http_date(NOW + 60)))
    headers = not_modified_headers(entry, NOW + 5)
    names = {name.lower() for name, _ in headers}
    assert names == {b"date", b"cache-control", b"etag", b"vary", b"expires", b"age"}
    assert values(headers, b"age") == [b"6"]  # 5 s in the cache + 1 s on the way
    without_etag = not_modified_headers(stored(etag=None), NOW)
    assert values(without_etag, b"last-modified") == [http_date(LAST_MODIFIED)]


def test_entity_tag_parsing():
    assert parse_entity_tag(b'W/"abc"') == EntityTag(True, b"abc")
    assert parse_entity_tag(b' "abc" ') == EntityTag(False, b"abc")
    assert parse_entity_tag(b"abc") == EntityTag(False, b"abc")  # unquoted, as some servers send
    assert parse_entity_tag(b"") == EntityTag(False, b"")
