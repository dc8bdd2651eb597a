"""Freshness lifetime and current age for a shared cache (RFC 9111 section 4.2)."""

from email.utils import formatdate

import pytest

from dispa.edge.cache.freshness import (
    HEURISTIC_LIMIT,
    HEURISTICALLY_CACHEABLE,
    age_value,
    current_age,
    freshness_lifetime,
    has_explicit_expiry,
    heuristic_lifetime,
    may_use_heuristics,
    parse_http_date,
)

NOW = 1_700_000_000.0
DAY = 86_400.0


def http_date(seconds: float) -> bytes:
    return formatdate(seconds, usegmt=True).encode()


# ---------------------------------------------------------------- HTTP dates


def test_the_three_http_date_forms_mean_the_same_instant():
    expected = 784111777.0
    assert parse_http_date(b"Sun, 06 Nov 1994 08:49:37 GMT") == expected
    assert parse_http_date(b"Sunday, 06-Nov-94 08:49:37 GMT") == expected
    # asctime has no zone: it is GMT, never the host's local time.
    assert parse_http_date("Sun Nov  6 08:49:37 1994") == expected


def test_formatted_dates_round_trip():
    assert parse_http_date(http_date(NOW)) == NOW


@pytest.mark.parametrize(
    "value",
    [
        None,
        b"",
        b"0",
        b"-1",
        b"garbage",
        b"Mon, 99 Nov 1994 08:49:37 GMT",
        b"Sun, 06 Nov 1994 08:49:99 GMT",
        b"Sun, 06 Nov 1994 25:49:37 GMT",
        b"Sun, 06 Nov 99999 08:49:37 GMT",
    ],
)
def test_invalid_dates_are_none(value):
    assert parse_http_date(value) is None


# ---------------------------------------------------------------- explicit lifetime


def test_s_maxage_beats_max_age_for_a_shared_cache():
    headers = [(b"Cache-Control", b"max-age=600, s-maxage=60")]
    assert freshness_lifetime(200, headers, NOW) == 60.0


def test_max_age_beats_expires():
    headers = [
        (b"Date", http_date(NOW)),
        (b"Expires", http_date(NOW + 3600)),
        (b"Cache-Control", b"max-age=10"),
    ]
    assert freshness_lifetime(200, headers, NOW) == 10.0


def test_expires_minus_date():
    headers = [(b"Date", http_date(NOW - 100)), (b"Expires", http_date(NOW + 500))]
    assert freshness_lifetime(200, headers, NOW) == 600.0


def test_expires_without_date_counts_from_the_response_time():
    headers = [(b"Expires", http_date(NOW + 500))]
    assert freshness_lifetime(200, headers, NOW) == 500.0


@pytest.mark.parametrize("expires", [b"0", b"-1", b"tomorrow", b""])
def test_invalid_expires_means_already_expired(expires):
    headers = [
        (b"Date", http_date(NOW)),
        (b"Expires", expires),
        (b"Last-Modified", http_date(NOW - 30 * DAY)),  # would allow a heuristic
    ]
    assert freshness_lifetime(200, headers, NOW) == 0.0


def test_expires_before_date_is_zero_not_negative():
    headers = [(b"Date", http_date(NOW)), (b"Expires", http_date(NOW - 60))]
    assert freshness_lifetime(200, headers, NOW) == 0.0


def test_explicit_expiry_detection():
    assert has_explicit_expiry([(b"Expires", b"0")])
    assert has_explicit_expiry([(b"Cache-Control", b"s-maxage=1")])
    assert not has_explicit_expiry([(b"Cache-Control", b"public, must-revalidate")])


# ---------------------------------------------------------------- heuristic lifetime


def last_modified_ago(seconds: float) -> list[tuple[bytes, bytes]]:
    return [(b"Date", http_date(NOW)), (b"Last-Modified", http_date(NOW - seconds))]


def test_heuristic_is_a_tenth_of_the_time_since_last_modified():
    assert freshness_lifetime(200, last_modified_ago(5000), NOW) == 500.0


def test_heuristic_is_capped_at_one_day():
    assert freshness_lifetime(200, last_modified_ago(365 * DAY), NOW) == HEURISTIC_LIMIT


@pytest.mark.parametrize("status", sorted(HEURISTICALLY_CACHEABLE))
def test_heuristic_applies_to_statuses_cacheable_by_default(status):
    assert freshness_lifetime(status, last_modified_ago(1000), NOW) == 100.0


@pytest.mark.parametrize("status", [201, 202, 302, 303, 307, 400, 403, 500, 502, 503])
def test_no_heuristic_for_other_statuses(status):
    assert not may_use_heuristics(status, last_modified_ago(1000))
    assert freshness_lifetime(status, last_modified_ago(1000), NOW) == 0.0


def test_public_allows_a_heuristic_for_any_status():
    headers = [*last_modified_ago(1000), (b"Cache-Control", b"public")]
    assert freshness_lifetime(302, headers, NOW) == 100.0


def test_no_heuristic_when_an_explicit_expiry_exists():
    headers = [*last_modified_ago(1000), (b"Cache-Control", b"max-age=0")]
    assert not may_use_heuristics(200, headers)
    assert freshness_lifetime(200, headers, NOW) == 0.0
    headers = [*last_modified_ago(1000), (b"Expires", http_date(NOW + 5))]
    assert freshness_lifetime(200, headers, NOW) == 5.0


def test_no_heuristic_without_a_usable_last_modified():
    assert freshness_lifetime(200, [(b"Date", http_date(NOW))], NOW) == 0.0
    assert heuristic_lifetime([(b"Last-Modified", b"yesterday")], NOW) == 0.0
    # Modified "in the future" (clock skew) gives no freshness, not negative freshness.
    assert heuristic_lifetime(last_modified_ago(-500), NOW) == 0.0


def test_heuristic_without_date_counts_to_the_response_time():
    headers = [(b"Last-Modified", http_date(NOW - 2000))]
    assert heuristic_lifetime(headers, NOW) == 200.0


# ---------------------------------------------------------------- age


def test_age_of_a_first_hand_response_is_its_resident_time():
    headers = [(b"Date", http_date(NOW))]
    assert current_age(headers, NOW, NOW, NOW + 42) == 42.0


def test_age_header_and_response_delay_are_added():
    headers = [(b"Date", http_date(NOW)), (b"Age", b"100")]
    # Sent at NOW-2, arrived at NOW: the response may have aged 2 s more on the way.
    assert current_age(headers, NOW - 2, NOW, NOW + 10) == 112.0


def test_apparent_age_counts_when_the_date_is_older_than_the_age_says():
    headers = [(b"Date", http_date(NOW - 300)), (b"Age", b"5")]
    assert current_age(headers, NOW, NOW, NOW) == 300.0


def test_date_in_the_future_gives_no_negative_age():
    headers = [(b"Date", http_date(NOW + 300))]
    assert current_age(headers, NOW, NOW, NOW) == 0.0


def test_without_date_the_apparent_age_is_zero():
    assert current_age([(b"Age", b"7")], NOW, NOW, NOW + 3) == 10.0


@pytest.mark.parametrize(
    ("value", "seconds"), [(b"30", 30), (b"30, 60", 30), (b"-5", 0), (b"soon", 0), (b"", 0)]
)
def test_age_header_values(value, seconds):
    assert age_value([(b"Age", value)]) == seconds


def test_missing_age_is_zero():
    assert age_value([]) == 0
