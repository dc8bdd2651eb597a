"""HTTP-date read strictly (RFC 9110 section 5.6.7), and what each reader makes of an
invalid one: Expires means already expired (RFC 9111 section 5.3), an invalid Date is
replaced by the arrival time, an invalid If-Modified-Since is ignored."""

import calendar
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dispa.edge.cache.entry import CachedResponse
from dispa.edge.cache.freshness import date_value, freshness_lifetime, parse_http_date
from dispa.edge.cache.validators import client_conditional_matches

NOW = calendar.timegm((2025, 6, 1, 12, 0, 0))
IN_2050 = float(calendar.timegm((2050, 8, 18, 2, 1, 18)))
VALID_2050 = b"Thu, 18 Aug 2050 02:01:18 GMT"

# ---------------------------------------------------------------- valid forms

VALID = [
    # IMF-fixdate, the one form senders may generate
    (b"Sun, 06 Nov 1994 08:49:37 GMT", 784111777.0),
    (VALID_2050, IN_2050),
    (b"Tue, 19 Jan 2038 03:14:08 GMT", 2.0**31),  # one past 32-bit time
    (b"Sun, 21 Nov 2286 04:46:39 GMT", float(calendar.timegm((2286, 11, 21, 4, 46, 39)))),
    (b"Thu, 01 Jan 1970 00:00:00 GMT", 0.0),
    (b"Thu, 29 Feb 2024 00:00:00 GMT", float(calendar.timegm((2024, 2, 29, 0, 0, 0)))),
    # a leap second is a valid time-of-day
    (b"Wed, 31 Dec 2008 23:59:60 GMT", float(calendar.timegm((2009, 1, 1, 0, 0, 0)))),
    # the obsolete RFC 850 form, two-digit year
    (b"Sunday, 06-Nov-94 08:49:37 GMT", 784111777.0),
    (b"Thursday, 18-Aug-50 02:01:18 GMT", IN_2050),
    # the obsolete asctime form: no zone (it is GMT), a space-padded or two-digit day
    (b"Sun Nov  6 08:49:37 1994", 784111777.0),
    (b"Sun Nov 06 08:49:37 1994", 784111777.0),
    (b"Thu Aug 18 02:01:18 2050", IN_2050),
    # names in another case: no other reading is possible, and caches accept them
    (b"THU, 18 Aug 2050 02:01:18 GMT", IN_2050),
    (b"Thu, 18 AUG 2050 02:01:18 GMT", IN_2050),
    (b"Thu, 18 Aug 2050 02:01:18 gMT", IN_2050),
    # whitespace around a field value is not part of it (RFC 9110 section 5.5)
    (b" Thu, 18 Aug 2050 02:01:18 GMT\t", IN_2050),
]


@pytest.mark.parametrize(("value", "seconds"), VALID)
def test_valid_http_dates(value, seconds):
    assert parse_http_date(value, now=NOW) == seconds
    assert parse_http_date(value.decode("latin-1"), now=NOW) == seconds


# ---------------------------------------------------------------- invalid forms

INVALID = [
    # what the issue lists
    b"Thu, 18 Aug 50 02:01:18 GMT",  # two-digit year in an IMF-fixdate
    b"Thu 18 Aug 2050 02:01:18 GMT",  # missing comma
    b"Thu, 18  Aug  2050 02:01:18 GMT",  # extra spaces
    b"Thu,  18 Aug 2050 02:01:18 GMT",
    b"Thu, 18 Aug 2050  02:01:18 GMT",
    b"Thu, 18-Aug-2050 02:01:18 GMT",  # dashes in an IMF-fixdate
    b"Thu, 18 Aug 2050 02.01.18 GMT",  # dots in the time
    b"Thu, 18 Aug 2050 2:01:18 GMT",  # one-digit hour
    b"Thu, 18 Aug 2050 02:1:18 GMT",
    b"Thu, 18 Aug 2050 02:01:8 GMT",
    b"Thu, 8 Aug 2050 02:01:18 GMT",  # one-digit day
    b"Thu, 18 Aug\r\n 2050 02:01:18 GMT",  # folded over two lines (obs-fold)
    b"Thu, 18 Aug\n 2050 02:01:18 GMT",
    b"Thu, 18 Aug 2050 02:01:18 GMT, Thu, 18 Aug 2050 02:01:19 GMT",  # two lines, combined
    b"Thu, 18 Aug 2050 02:01:18 UTC",  # zones other than GMT
    b"Thu, 18 Aug 2050 02:01:18 AEST",
    b"Thu, 18 Aug 2050 02:01:18 +0000",
    b"Thu, 18 Aug 2050 02:01:18 Z",
    b"Thu, 18 Aug 2050 02:01:18",  # no zone at all
    b"Thu, 18 Aug 2050 02:01:18 GMT+1",
    # out of range
    b"Mon, 99 Nov 1994 08:49:37 GMT",
    b"Fri, 30 Feb 2024 00:00:00 GMT",
    b"Sun, 06 Nov 1994 08:49:99 GMT",
    b"Sun, 06 Nov 1994 08:60:37 GMT",
    b"Sun, 06 Nov 1994 25:49:37 GMT",
    b"Sun, 06 Nov 1994 24:00:00 GMT",
    b"Sun, 00 Nov 1994 08:49:37 GMT",
    b"Sun, 06 Nov 99999 08:49:37 GMT",
    b"Sun, 06 Nov 0000 08:49:37 GMT",
    # not names of days or months
    b"Xyz, 06 Nov 1994 08:49:37 GMT",
    b"Sun, 06 Nvm 1994 08:49:37 GMT",
    b"Sunday, 06 Nov 1994 08:49:37 GMT",  # a long day name belongs to RFC 850 only
    b"Sun, 06-Nov-94 08:49:37 GMT",  # and a short one to the other two
    # RFC 850 done wrong
    b"Sunday, 06-Nov-1994 08:49:37 GMT",
    b"Sunday, 6-Nov-94 08:49:37 GMT",
    b"Sunday, 06-Nov-94 08:49:37 UTC",
    # asctime done wrong
    b"Sun Nov 6 08:49:37 1994",
    b"Sun Nov  6 08:49:37 94",
    b"Sun Nov  6 08:49:37 1994 GMT",
    b"Sun, Nov  6 08:49:37 1994",
    # digits only ASCII digits; bytes only ASCII
    "Sun, \u0660\u0666 Nov 1994 08:49:37 GMT".encode(),
    "Sun, \uff10\uff16 Nov 1994 08:49:37 GMT".encode(),  # full-width digits
    b"Sun, 06 Nov 1994 08:49:37 GMT\x00",
    # garbage
    None,
    b"",
    b"0",
    b"-1",
    b"garbage",
    b"1994-11-06T08:49:37Z",
    b"784111777",
]


@pytest.mark.parametrize("value", INVALID)
def test_invalid_http_dates_are_none(value):
    assert parse_http_date(value, now=NOW) is None


def test_unicode_text_with_non_ascii_digits_is_refused():
    assert parse_http_date("Sun, \u0660\u0666 Nov 1994 08:49:37 GMT", now=NOW) is None


# ---------------------------------------------------------------- RFC 850's two-digit year


@pytest.mark.parametrize(
    ("now_year", "written", "year"),
    [
        (2025, b"94", 1994),  # 2094 is more than 50 years away: the past century
        (2025, b"50", 2050),  # 25 years ahead: this century
        (2025, b"75", 2075),  # exactly 50 years ahead (to the day or less): not "more than"
        (2025, b"76", 1976),
        (2025, b"00", 2000),
        (2099, b"00", 2100),  # one year ahead wins over 99 years back
        (2099, b"49", 2149),
        (2099, b"50", 2050),
    ],
)
def test_a_two_digit_year_is_read_as_rfc_9110_says(now_year, written, year):
    now = calendar.timegm((now_year, 1, 1, 0, 0, 0))
    value = b"Sunday, 01-Jan-" + written + b" 00:00:00 GMT"
    assert parse_http_date(value, now=now) == calendar.timegm((year, 1, 1, 0, 0, 0))


# ---------------------------------------------------------------- what callers make of it


def _http_date(seconds: float) -> bytes:
    from email.utils import formatdate

    return formatdate(seconds, usegmt=True).encode()


@pytest.mark.parametrize("expires", [value for value in INVALID if value])
def test_an_invalid_expires_means_already_expired(expires):
    headers = [(b"Date", _http_date(NOW)), (b"Expires", expires)]
    assert freshness_lifetime(200, headers, NOW) == 0.0


def test_a_valid_expires_gives_its_lifetime():
    headers = [(b"Date", _http_date(NOW)), (b"Expires", _http_date(NOW + 600))]
    assert freshness_lifetime(200, headers, NOW) == 600.0


def test_two_expires_lines_are_invalid_even_when_each_is_valid():
    headers = [
        (b"Date", _http_date(NOW)),
        (b"Expires", _http_date(NOW + 600)),
        (b"Expires", _http_date(NOW + 600)),
    ]
    assert freshness_lifetime(200, headers, NOW) == 0.0


def test_an_invalid_date_is_replaced_by_the_arrival_time():
    assert date_value([(b"Date", b"Sun, 06 Nov 1994 08:49:37 UTC")], NOW) == NOW
    assert date_value([(b"Date", b"Sun, 06 Nov 1994 08:49:37 GMT")], NOW) == 784111777.0


def test_an_invalid_last_modified_gives_no_heuristic_freshness():
    day = 86_400
    good = [(b"Date", _http_date(NOW)), (b"Last-Modified", _http_date(NOW - 10 * day))]
    bad = [(b"Date", _http_date(NOW)), (b"Last-Modified", b"Sun, 06 Nov 1994 08:49:37 UTC")]
    assert freshness_lifetime(200, good, NOW) == day
    assert freshness_lifetime(200, bad, NOW) == 0.0


def test_an_invalid_if_modified_since_is_ignored():
    entry = CachedResponse(
        status=200,
        reason=b"OK",
        headers=((b"Last-Modified", b"Sun, 06 Nov 1994 08:49:37 GMT"),),
        body=b"x",
        request_time=NOW,
        response_time=NOW,
        url="http://a.test/",
    )
    valid = [(b"If-Modified-Since", b"Sun, 06 Nov 1994 08:49:37 GMT")]
    invalid = [(b"If-Modified-Since", b"Sun, 06 Nov 1994 08:49:37 UTC")]
    assert client_conditional_matches(entry, valid)
    assert not client_conditional_matches(entry, invalid)


# ---------------------------------------------------------------- round trips

SECONDS = st.integers(min_value=0, max_value=253_402_300_799)  # up to 9999-12-31
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@given(SECONDS)
def test_any_imf_fixdate_and_asctime_reads_back(seconds):
    assert parse_http_date(_http_date(seconds), now=NOW) == seconds
    assert parse_http_date(time.asctime(time.gmtime(seconds)), now=NOW) == seconds


@given(st.integers(min_value=NOW - 49 * 365 * 86400, max_value=NOW + 49 * 365 * 86400))
def test_an_rfc_850_date_within_fifty_years_reads_back(seconds):
    t = time.gmtime(seconds)
    text = (
        f"{DAYS[t.tm_wday]}, {t.tm_mday:02d}-{MONTHS[t.tm_mon - 1]}-{t.tm_year % 100:02d} "
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT"
    )
    assert parse_http_date(text, now=NOW) == seconds
