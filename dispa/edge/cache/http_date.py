"""HTTP-date (RFC 9110 section 5.6.7), read strictly.

Three forms, and nothing else: IMF-fixdate (``Sun, 06 Nov 1994 08:49:37 GMT``, the only one
senders may generate), and the obsolete RFC 850 (``Sunday, 06-Nov-94 08:49:37 GMT``) and
asctime (``Sun Nov  6 08:49:37 1994``) forms that recipients must still accept. One space
where the grammar has one, two digits where it has two, a comma where it has one, the zone
``GMT``. What ``email.utils`` also takes (no comma, a numeric or other zone, dots in the
time, a two-digit year in an IMF-fixdate, a value folded over lines) is not an HTTP-date,
and each reader gives an invalid one its own meaning (RFC 9111 section 5.3: an invalid
Expires is already expired; RFC 9110 section 13.1.3: an invalid If-Modified-Since is
ignored; section 6.6.1: an invalid Date is as good as none).

Day and month names and ``GMT`` are matched without regard to case: the grammar spells
them case-sensitively, but ``THU`` or ``gmt`` can mean nothing else, and shared caches
(and the HTTP cache test suite's "optimal" results) read them so. The weekday is not
checked against the date, as no recipient does.
"""

from __future__ import annotations

import calendar
import functools
import re
import time

_DAY = r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)"
_LONG_DAY = r"(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)"
_MONTH = r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
_TIME = r"([0-9]{2}):([0-9]{2}):([0-9]{2})"
# re.ASCII: [0-9] is plain enough, but IGNORECASE must fold ASCII letters only.
_FLAGS = re.ASCII | re.IGNORECASE
_IMF_FIXDATE = re.compile(rf"{_DAY}, ([0-9]{{2}}) {_MONTH} ([0-9]{{4}}) {_TIME} GMT", _FLAGS)
_RFC850 = re.compile(rf"{_LONG_DAY}, ([0-9]{{2}})-{_MONTH}-([0-9]{{2}}) {_TIME} GMT", _FLAGS)
_ASCTIME = re.compile(rf"{_DAY} {_MONTH} ([0-9]{{2}}| [0-9]) {_TIME} ([0-9]{{4}})", _FLAGS)
_MONTHS = {name.lower(): number for number, name in enumerate(calendar.month_abbr) if name}
# RFC 9110 section 5.5: a field value does not include the whitespace around it.
_OWS = " \t"


def parse_http_date(value: bytes | str | None, now: float | None = None) -> float | None:
    """An HTTP-date as Unix seconds, or None when ``value`` is not one.

    ``now`` (Unix seconds, default the current time) only matters for the RFC 850 form:
    its two-digit year is the most recent year with those digits that is not more than
    50 years after ``now`` (RFC 9110 section 5.6.7).
    """
    if value is None:
        return None
    if isinstance(value, bytes | bytearray):
        value = bytes(value).decode("latin-1")  # every byte maps to one character
    parsed = _parse_text(value)
    if parsed is None:
        return None
    if isinstance(parsed, float):
        return parsed
    return _with_two_digit_year(parsed, time.time() if now is None else now)


# A stored response's Date is read on every hit: each distinct value is parsed once.
@functools.lru_cache(maxsize=4096)
def _parse_text(text: str) -> float | tuple[int, int, int, int, int, int] | None:
    """Seconds for a four-digit-year form; the fields for RFC 850 (its year is resolved
    against a clock, so not cached); None when invalid."""
    text = text.strip(_OWS)
    match = _IMF_FIXDATE.fullmatch(text)
    if match is not None:
        day, month, year, *clock = match.groups()
        return _seconds(int(year), _MONTHS[month.lower()], int(day), *map(int, clock))
    match = _ASCTIME.fullmatch(text)
    if match is not None:
        month, day, *clock, year = match.groups()
        return _seconds(int(year), _MONTHS[month.lower()], int(day), *map(int, clock))
    match = _RFC850.fullmatch(text)
    if match is not None:
        day, month, year, *clock = match.groups()
        fields = (int(year), _MONTHS[month.lower()], int(day), *map(int, clock))
        # Checked against a leap year here (29 Feb passes), and again once the century
        # is known (_with_two_digit_year).
        return fields if _valid(2000, *fields[1:]) else None
    return None


def _seconds(year: int, month: int, day: int, hour: int, minute: int, second: int) -> float | None:
    if year < 1 or not _valid(year, month, day, hour, minute, second):
        return None
    # timegm, not mktime: the time is GMT, never the host's local time. A leap second
    # (:60) is the first second of the next minute.
    return float(calendar.timegm((year, month, day, hour, minute, second)))


def _valid(year: int, month: int, day: int, hour: int, minute: int, second: int) -> bool:
    return (
        1 <= day <= calendar.monthrange(year, month)[1]
        and hour < 24
        and minute < 60
        and second <= 60
    )


def _with_two_digit_year(fields: tuple[int, ...], now: float) -> float | None:
    two_digits, month, day, hour, minute, second = fields
    today = time.gmtime(now)
    # The same instant 50 years on, compared field by field: "more than 50 years ahead".
    limit = (today.tm_year + 50, *today[1:6])
    year = today.tm_year // 100 * 100 + 100 + two_digits
    while (year, month, day, hour, minute, second) > limit:
        year -= 100
    return _seconds(year, month, day, hour, minute, second)
