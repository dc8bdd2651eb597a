"""Cache-Control (RFC 9111 section 5.2, RFC 5861) parsed into one frozen value.

Lenient, as a recipient must be: directive names compare without case, arguments may be
tokens or quoted strings, a directive with a malformed argument (``max-age=soon``) is
ignored rather than failing the whole field, and when a directive repeats the first
occurrence wins (RFC 9111 section 4.2.1 allows that or treating the response as stale).
Parsing never raises, whatever the bytes.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from dispa.edge.cache.fields import AnyHeaders, field_lines

# RFC 9111 section 1.2.2: a delta-seconds too large to represent is taken as 2^31.
DELTA_SECONDS_LIMIT = 2**31


@dataclass(frozen=True, slots=True)
class CacheControl:
    """The directives of a request or a response; None or False when absent."""

    max_age: int | None = None
    s_maxage: int | None = None
    no_store: bool = False
    no_cache: bool = False
    private: bool = False
    public: bool = False
    must_revalidate: bool = False
    proxy_revalidate: bool = False
    no_transform: bool = False
    stale_while_revalidate: int | None = None
    stale_if_error: int | None = None
    only_if_cached: bool = False
    max_stale: float | None = None  # math.inf for a bare max-stale: any staleness will do
    min_fresh: int | None = None
    # Read from a targeted field (RFC 9213, targeted.py) rather than Cache-Control: then
    # Expires does not count either.
    targeted: bool = False


NO_DIRECTIVES = CacheControl()

_FLAGS = {
    "no-store": "no_store",
    # no-cache="field" and private="field" only restrict the named fields; treating them as
    # their unqualified forms is stricter (revalidate always, never store) and always safe.
    "no-cache": "no_cache",
    "private": "private",
    "public": "public",
    "must-revalidate": "must_revalidate",
    "proxy-revalidate": "proxy_revalidate",
    "no-transform": "no_transform",
    "only-if-cached": "only_if_cached",
}
_SECONDS = {
    "max-age": "max_age",
    "s-maxage": "s_maxage",
    "stale-while-revalidate": "stale_while_revalidate",
    "stale-if-error": "stale_if_error",
    "min-fresh": "min_fresh",
}


def cache_control_of(headers: AnyHeaders) -> CacheControl:
    """The Cache-Control directives of a message, from all of its Cache-Control lines."""
    lines = field_lines(headers, b"cache-control")
    return _parse_lines(tuple(lines)) if lines else NO_DIRECTIVES


@functools.lru_cache(maxsize=4096)
def _parse_lines(lines: tuple[bytes, ...]) -> CacheControl:
    # Every hit reads the stored response's Cache-Control, and the same few values
    # come again and again: parse each once (the result is immutable).
    return parse_cache_control(lines)


def parse_cache_control(values: bytes | Iterable[bytes]) -> CacheControl:
    """Parse one Cache-Control field value, or several lines of it."""
    if isinstance(values, bytes | bytearray):
        values = (values,)
    found: dict[str, object] = {}
    for value in values:
        # Latin-1 maps every byte to one character, so no input can fail to decode.
        for name, argument in _directives(bytes(value).decode("latin-1")):
            _apply(found, name, argument)
    return CacheControl(**found) if found else NO_DIRECTIVES


def _apply(found: dict[str, object], name: str, argument: str | None) -> None:
    if name in _FLAGS:
        found.setdefault(_FLAGS[name], True)
    elif name in _SECONDS:
        seconds = delta_seconds(argument)
        if seconds is not None:
            found.setdefault(_SECONDS[name], seconds)
    elif name == "max-stale":
        if argument is None:
            found.setdefault("max_stale", math.inf)
        else:
            seconds = delta_seconds(argument)
            if seconds is not None:
                found.setdefault("max_stale", float(seconds))


def delta_seconds(argument: str | None) -> int | None:
    """A non-negative whole number of seconds, or None if the argument is not one."""
    if argument is None or not argument.isascii() or not argument.isdigit():
        return None
    digits = argument.lstrip("0") or "0"
    if len(digits) > 10:  # avoids int() on huge strings, which Python refuses past 4300 digits
        return DELTA_SECONDS_LIMIT
    return min(int(digits), DELTA_SECONDS_LIMIT)


def _directives(text: str) -> Iterator[tuple[str, str | None]]:
    for item in _split_outside_quotes(text):
        name, equals, argument = item.partition("=")
        name = name.strip().lower()
        if name:
            yield name, _unquote(argument.strip()) if equals else None


def _split_outside_quotes(text: str) -> Iterator[str]:
    """Split on commas, except those inside a quoted string (where backslash escapes)."""
    start = 0
    quoted = escaped = False
    for index, character in enumerate(text):
        if escaped:
            escaped = False
        elif quoted:
            if character == "\\":
                escaped = True
            elif character == '"':
                quoted = False
        elif character == '"':
            quoted = True
        elif character == ",":
            yield text[start:index]
            start = index + 1
    yield text[start:]


def _unquote(argument: str) -> str:
    """The content of a quoted string (RFC 9110 5.6.4); a token is returned as it is.

    Recipients accept both forms for every directive (RFC 9111 section 5.2), so
    ``max-age="60"`` means 60. An unterminated quoted string runs to the end.
    """
    if not argument.startswith('"'):
        return argument
    characters = []
    escaped = False
    for character in argument[1:]:
        if escaped:
            characters.append(character)
            escaped = False
        elif character == "\\":
            escaped = True
        elif character == '"':
            break
        else:
            characters.append(character)
    return "".join(characters)
