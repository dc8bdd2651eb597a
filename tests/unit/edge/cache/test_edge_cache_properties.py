"""Properties over many inputs: parsers never raise, the store keeps its bounds."""

import tempfile

from hypothesis import given, settings
from hypothesis import strategies as st

from dispa.edge.cache.cache_control import DELTA_SECONDS_LIMIT, parse_cache_control
from dispa.edge.cache.decision import Decision, decide
from dispa.edge.cache.entry import CachedResponse, CorruptEntry, decode_entry, encode_entry
from dispa.edge.cache.freshness import parse_http_date
from dispa.edge.cache.store import CacheStore

NOW = 1_700_000_000.0
DIRECTIVE_WORDS = [
    "max-age", "s-maxage", "no-store", "no-cache", "private", "public", "must-revalidate",
    "max-stale", "min-fresh", "stale-if-error", "stale-while-revalidate", "=", ",", '"',
    "\\", " ", "1", "-", "99999999999",
]  # fmt: skip


@given(st.lists(st.binary(max_size=80), max_size=4))
def test_parsing_any_bytes_never_raises(values):
    parse_cache_control(values)


@given(st.lists(st.sampled_from(DIRECTIVE_WORDS), max_size=30).map("".join))
def test_parsed_seconds_are_always_in_range(text):
    parsed = parse_cache_control(text.encode())
    for seconds in (parsed.max_age, parsed.s_maxage, parsed.min_fresh, parsed.stale_if_error):
        assert seconds is None or 0 <= seconds <= DELTA_SECONDS_LIMIT


@given(st.one_of(st.binary(max_size=60), st.text(max_size=60)))
def test_parsing_any_date_never_raises(value):
    result = parse_http_date(value)
    assert result is None or isinstance(result, float)


@given(st.binary(max_size=300))
def test_decoding_any_bytes_fails_only_as_corrupt(data):
    try:
        decoded = decode_entry(data)
    except CorruptEntry:
        return
    assert isinstance(decoded, CachedResponse)


entries = st.builds(
    CachedResponse,
    status=st.integers(100, 599),
    reason=st.binary(max_size=20),
    headers=st.lists(st.tuples(st.binary(min_size=1, max_size=10), st.binary(max_size=20))),
    body=st.one_of(st.binary(max_size=2000), st.binary(max_size=50).map(lambda b: b * 100)),
    request_time=st.floats(0, 2e9),
    response_time=st.floats(0, 2e9),
    url=st.text(max_size=40),
    tags=st.lists(st.text(max_size=10), max_size=3).map(tuple),
    vary_key=st.binary(max_size=20),
)


@given(entries)
def test_encoding_round_trips(entry):
    assert decode_entry(encode_entry(entry)) == entry


@given(max_age=st.integers(0, 10_000), elapsed=st.floats(0, 20_000))
def test_a_plain_max_age_response_is_fresh_exactly_while_younger_than_max_age(max_age, elapsed):
    entry = CachedResponse(
        200, b"OK", [(b"Cache-Control", b"max-age=%d" % max_age)], b"", NOW, NOW, "http://a/"
    )
    expected = Decision.FRESH if elapsed < max_age else Decision.REVALIDATE
    assert decide(entry, [], NOW + elapsed) is expected


operations = st.lists(
    st.tuples(
        st.sampled_from(["store", "lookup", "remove", "purge_tag"]),
        st.integers(0, 12),  # which URL
        st.integers(0, 3000),  # body size
        st.sampled_from([b"gzip", b"br"]),
    ),
    max_size=40,
)


def run(store: CacheStore, steps) -> None:
    for operation, target, size, encoding in steps:
        request = [(b"Accept-Encoding", encoding)]
        primary = f"GET http://a/{target}"
        if operation == "store":
            entry = CachedResponse(
                200,
                b"OK",
                [(b"Vary", b"Accept-Encoding"), (b"Cache-Tag", b"t%d" % (target % 3))],
                bytes([target]) * (size // 2) + bytes(range(256)) * (size // 512),
                NOW,
                NOW,
                f"http://a/{target}",
                (f"t{target % 3}",),
            )
            if store.store(primary, request, entry):
                found = store.lookup(primary, request)
                assert found is not None and found.body == entry.body
        elif operation == "lookup":
            store.lookup(primary, request)
        elif operation == "remove":
            store.remove(primary)
        else:
            store.purge_tag(f"t{target % 3}")
        stats = store.statistics()
        assert stats["memory_bytes"] <= stats["memory_limit"]
        assert stats["disk_bytes"] <= stats["disk_limit"]
        assert stats["memory_bytes"] == sum(len(blob) for blob in store._memory.values())
        assert stats["entries"] == stats["memory_entries"] + stats["disk_entries"]


@given(memory=st.integers(0, 4000), steps=operations)
def test_memory_tier_never_exceeds_its_byte_bound(memory, steps):
    run(CacheStore(memory_bytes=memory), steps)


@settings(max_examples=40, deadline=None)
@given(memory=st.integers(0, 3000), disk=st.integers(0, 6000), steps=operations)
def test_both_tiers_stay_within_bounds_and_agree_with_the_files(memory, disk, steps):
    with tempfile.TemporaryDirectory() as directory:
        store = CacheStore(memory_bytes=memory, disk_dir=directory, disk_bytes=disk)
        run(store, steps)
        if store.disk_dir is not None:
            restarted = CacheStore(memory_bytes=memory, disk_dir=directory, disk_bytes=disk)
            assert restarted.statistics()["entries"] == store.statistics()["disk_entries"]
            assert restarted.disk_bytes == store.disk_bytes
