"""Route regexes (``path_regex``, header ``regex``) on RE2, a linear-time engine.

A backtracking engine (Python's ``re``) takes exponential time on patterns like
``/(a+)+$`` against ``/aaaa...!``, and a route regex runs on the data plane's only thread
for every request that reaches it: one client could stall every listener. RE2 matches in
time linear in the text whatever the pattern, and refuses what it cannot do that way
(backreferences, lookaround); such a pattern is a config error naming its field.

Compiled here, once per config, both for validation (schema.py) and for the router, so a
pattern that passes validation is the very pattern the router runs.
"""

from __future__ import annotations

import re2
from re2 import _re2

# The low-level matcher: re2's Python wrapper costs about 3 us a call (it builds a match
# object in Python), the bare call under 1 us. A full match is all a route asks.
_FULL = _re2.RE2.Anchor.ANCHOR_BOTH
_NO_MATCH = -1


def _options(latin1: bool) -> re2.Options:
    options = re2.Options()
    options.log_errors = False  # a bad pattern is reported once, as a config error
    options.never_capture = True  # whether it matches, not where
    if latin1:
        options.encoding = re2.Options.Encoding.LATIN1
    return options


_UTF8 = _options(latin1=False)
_LATIN1 = _options(latin1=True)


class LinearRegex:
    """A compiled pattern; ``fullmatch(text: bytes)`` says whether all of it matches."""

    __slots__ = ("_match", "pattern")

    def __init__(self, pattern: str, latin1: bool) -> None:
        self.pattern = pattern
        compiled = _re2.RE2(pattern.encode("utf-8", "surrogatepass"), _LATIN1 if latin1 else _UTF8)
        if not compiled.ok():
            reason = compiled.error().decode("utf-8", "replace")
            raise ValueError(
                f"bad regular expression '{pattern}': {reason} (route regexes are RE2, "
                "matched in linear time: no backreferences or lookaround)"
            )
        self._match = compiled.Match

    def fullmatch(self, text: bytes) -> bool:
        return self._match(_FULL, text, 0, len(text))[0][0] != _NO_MATCH


def path_regex(pattern: str) -> LinearRegex:
    """For normalised paths (ASCII: paths.py percent-encodes the rest), as UTF-8."""
    return LinearRegex(pattern, latin1=False)


def header_regex(pattern: str) -> LinearRegex:
    """For header values, any bytes: byte by byte (Latin-1), the pattern as UTF-8 bytes,
    as Python's ``re`` matched ``pattern.encode()`` before."""
    return LinearRegex(pattern, latin1=True)
