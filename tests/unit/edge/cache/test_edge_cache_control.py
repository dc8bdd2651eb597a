"""Cache-Control parsing: directives, arguments, quoting, and what is ignored."""

import math

import pytest

from dispa.edge.cache.cache_control import (
    DELTA_SECONDS_LIMIT,
    NO_DIRECTIVES,
    CacheControl,
    cache_control_of,
    parse_cache_control,
)


def test_no_field_means_no_directives():
    assert cache_control_of([(b"Content-Type", b"text/plain")]) is NO_DIRECTIVES
    assert parse_cache_control(b"") == CacheControl()


@pytest.mark.parametrize(
    ("text", "field", "expected"),
    [
        (b"max-age=60", "max_age", 60),
        (b"s-maxage=30", "s_maxage", 30),
        (b"stale-while-revalidate=15", "stale_while_revalidate", 15),
        (b"stale-if-error=86400", "stale_if_error", 86400),
        (b"min-fresh=5", "min_fresh", 5),
        (b"max-stale=20", "max_stale", 20.0),
        (b"no-store", "no_store", True),
        (b"no-cache", "no_cache", True),
        (b"private", "private", True),
        (b"public", "public", True),
        (b"must-revalidate", "must_revalidate", True),
        (b"proxy-revalidate", "proxy_revalidate", True),
        (b"no-transform", "no_transform", True),
        (b"only-if-cached", "only_if_cached", True),
    ],
)
def test_each_directive(text, field, expected):
    parsed = parse_cache_control(text)
    assert getattr(parsed, field) == expected
    # ... and nothing else is set.
    others = {name: getattr(parsed, name) for name in CacheControl.__slots__ if name != field}
    assert others == {name: getattr(NO_DIRECTIVES, name) for name in others}


def test_bare_max_stale_accepts_any_staleness():
    assert parse_cache_control(b"max-stale").max_stale == math.inf


def test_directive_names_ignore_case_and_surrounding_whitespace():
    parsed = parse_cache_control(b"  Max-Age=10 ,PUBLIC,  No-Store ")
    assert (parsed.max_age, parsed.public, parsed.no_store) == (10, True, True)


def test_several_field_lines_form_one_list():
    headers = [
        (b"cache-control", b"public"),
        (b"X-Other", b"max-age=1"),
        (b"Cache-Control", b"max-age=300, must-revalidate"),
    ]
    parsed = cache_control_of(headers)
    assert (parsed.public, parsed.max_age, parsed.must_revalidate) == (True, 300, True)


def test_quoted_arguments_are_accepted_for_seconds():
    assert parse_cache_control(b'max-age="120"').max_age == 120


def test_commas_inside_quoted_strings_do_not_split_directives():
    parsed = parse_cache_control(b'no-cache="Set-Cookie, X-Token", max-age=5')
    assert parsed.no_cache is True
    assert parsed.max_age == 5


def test_escaped_quote_does_not_end_a_quoted_string():
    parsed = parse_cache_control(b'private="a\\", max-age=1", max-age=7')
    assert parsed.private is True
    assert parsed.max_age == 7


def test_unterminated_quoted_string_swallows_the_rest():
    parsed = parse_cache_control(b'no-cache="abc, max-age=5')
    assert parsed.no_cache is True
    assert parsed.max_age is None


def test_field_list_forms_count_as_the_plain_directive():
    parsed = parse_cache_control(b'private="Set-Cookie", no-cache="Authorization"')
    assert (parsed.private, parsed.no_cache) == (True, True)


@pytest.mark.parametrize(
    "argument", [b"bad", b"-1", b"1.5", b"+5", b"", b"5_000", b"\xb2", b"1e3", b"0x10"]
)
def test_malformed_seconds_are_ignored_but_the_rest_is_kept(argument):
    parsed = parse_cache_control(b"max-age=" + argument + b", public")
    assert parsed.max_age is None
    assert parsed.public is True


def test_malformed_max_stale_is_ignored():
    assert parse_cache_control(b"max-stale=soon").max_stale is None


def test_seconds_directive_without_argument_is_ignored():
    assert parse_cache_control(b"max-age, s-maxage").max_age is None


def test_first_occurrence_wins():
    parsed = parse_cache_control([b"max-age=10", b"max-age=99, max-stale=1, max-stale"])
    assert parsed.max_age == 10
    assert parsed.max_stale == 1.0


def test_huge_seconds_are_capped_at_two_to_the_31():
    assert parse_cache_control(b"max-age=99999999999").max_age == DELTA_SECONDS_LIMIT
    assert parse_cache_control(b"max-age=" + b"9" * 5000).max_age == DELTA_SECONDS_LIMIT
    assert parse_cache_control(b"max-age=" + b"0" * 50 + b"42").max_age == 42


def test_unknown_directives_and_empty_members_are_ignored():
    parsed = parse_cache_control(b',,immutable, community="UCI", ,max-age=3')
    assert parsed == CacheControl(max_age=3)


def test_parsed_value_is_frozen():
    parsed = parse_cache_control(b"max-age=1")
    with pytest.raises(AttributeError):
        parsed.max_age = 2  # type: ignore[misc]
