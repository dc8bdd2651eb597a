"""Structured Field Dictionaries (RFC 8941 sections 3.2 and 4.2), parsed strictly.

What targeted cache-control fields (RFC 9213) are written in. Unlike Cache-Control, one
error anywhere makes the whole value invalid: ``parse_dictionary`` then answers None and
the field is ignored. One pass over the text, no recursion deeper than an inner list, so
the cost is linear in what the origin sent (and field sizes are bounded by the parser).

Values come out as Python values: Integer -> int, Decimal -> float, String -> str,
Token -> ``Token`` (a str), Byte Sequence -> bytes, Boolean -> bool, Inner List ->
``InnerList`` (a list of (value, parameters)). Each member is (value, parameters).
"""

from __future__ import annotations

import base64
import binascii
import string

_KEY_START = frozenset(string.ascii_lowercase + "*")
_KEY = frozenset(string.ascii_lowercase + string.digits + "_-.*")
_TOKEN_START = frozenset(string.ascii_letters + "*")
# tchar (RFC 9110 section 5.6.2), plus ":" and "/".
_TOKEN = frozenset(string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~:/")
_DIGITS = frozenset(string.digits)
_BASE64 = frozenset(string.ascii_letters + string.digits + "+/=")
_OWS = " \t"

Parameters = dict[str, object]
Member = tuple[object, Parameters]


class Token(str):
    """A Token, told apart from a String of the same characters."""


class InnerList(list):
    """An Inner List: its items are (value, parameters)."""


class _Invalid(ValueError):
    pass


def parse_dictionary(value: bytes | str) -> dict[str, Member] | None:
    """The members of a Dictionary field value, in order; None if it is not one.

    Several field lines are joined with ", " first, as RFC 8941 section 4.2 says.
    """
    if isinstance(value, bytes | bytearray):
        try:
            value = bytes(value).decode("ascii")
        except UnicodeDecodeError:
            return None
    elif not value.isascii():
        return None
    parser = _Parser(value)
    try:
        return parser.dictionary()
    except _Invalid:
        return None


class _Parser:
    __slots__ = ("at", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.at = 0

    def dictionary(self) -> dict[str, Member]:
        self._skip(" ")
        members: dict[str, Member] = {}
        while not self._done():
            key = self._key()
            if self._peek() == "=":
                self.at += 1
                members[key] = self._item_or_inner_list()
            else:
                members[key] = (True, self._parameters())
            self._skip(_OWS)
            if self._done():
                return members
            if self._take() != ",":
                raise _Invalid("members are separated by commas")
            self._skip(_OWS)
            if self._done():
                raise _Invalid("a trailing comma")
        return members

    # ---------------------------------------------------------------- pieces

    def _item_or_inner_list(self) -> Member:
        if self._peek() == "(":
            return self._inner_list()
        return self._bare_item(), self._parameters()

    def _inner_list(self) -> Member:
        self.at += 1  # "("
        items = InnerList()
        while not self._done():
            self._skip(" ")
            if self._peek() == ")":
                self.at += 1
                return items, self._parameters()
            items.append((self._bare_item(), self._parameters()))
            if self._peek() not in (" ", ")"):
                raise _Invalid("inner list items are separated by spaces")
        raise _Invalid("an inner list without its ')'")

    def _parameters(self) -> Parameters:
        parameters: Parameters = {}
        while self._peek() == ";":
            self.at += 1
            self._skip(" ")
            key = self._key()
            value: object = True
            if self._peek() == "=":
                self.at += 1
                value = self._bare_item()
            parameters[key] = value
        return parameters

    def _key(self) -> str:
        if self._peek() not in _KEY_START:
            raise _Invalid("a key starts with a lower-case letter or '*'")
        return self._run(_KEY)

    def _bare_item(self) -> object:
        first = self._peek()
        if first == "-" or first in _DIGITS:
            return self._number()
        if first == '"':
            return self._string()
        if first in _TOKEN_START:
            return Token(self._run(_TOKEN))
        if first == ":":
            return self._byte_sequence()
        if first == "?":
            return self._boolean()
        raise _Invalid("not an item")

    def _number(self) -> int | float:
        start = self.at
        if self._peek() == "-":
            self.at += 1
        whole = self._run(_DIGITS)
        if not whole:
            raise _Invalid("a number without digits")
        if self._peek() != ".":
            if len(whole) > 15:
                raise _Invalid("an integer of more than 15 digits")
            return int(self.text[start : self.at])
        self.at += 1
        fraction = self._run(_DIGITS)
        if len(whole) > 12 or not 1 <= len(fraction) <= 3:
            raise _Invalid("a decimal of more than 12.3 digits")
        return float(self.text[start : self.at])

    def _string(self) -> str:
        self.at += 1  # the opening quote
        characters = []
        while not self._done():
            character = self._take()
            if character == "\\":
                if self._peek() not in ('"', "\\"):
                    raise _Invalid("only '\\\"' and '\\\\' are escapes")
                characters.append(self._take())
            elif character == '"':
                return "".join(characters)
            elif not " " <= character <= "~":
                raise _Invalid("a control character in a string")
            else:
                characters.append(character)
        raise _Invalid("a string without its closing quote")

    def _byte_sequence(self) -> bytes:
        self.at += 1  # ":"
        encoded = self._run(_BASE64)
        if self._take() != ":":
            raise _Invalid("a byte sequence without its closing ':'")
        if "=" not in encoded:  # RFC 8941 4.2.7: missing padding is no reason to fail
            encoded += "=" * (-len(encoded) % 4)
        try:
            return base64.b64decode(encoded, validate=True)
        except binascii.Error:
            raise _Invalid("not base64") from None

    def _boolean(self) -> bool:
        self.at += 1  # "?"
        digit = self._take()
        if digit not in ("0", "1"):
            raise _Invalid("a boolean is ?0 or ?1")
        return digit == "1"

    # ---------------------------------------------------------------- cursor

    def _done(self) -> bool:
        return self.at >= len(self.text)

    def _peek(self) -> str:
        return self.text[self.at] if self.at < len(self.text) else ""

    def _take(self) -> str:
        character = self._peek()
        self.at += 1
        return character

    def _skip(self, characters: str) -> None:
        text = self.text
        while self.at < len(text) and text[self.at] in characters:
            self.at += 1

    def _run(self, allowed: frozenset[str]) -> str:
        start = self.at
        text = self.text
        while self.at < len(text) and text[self.at] in allowed:
            self.at += 1
        return text[start : self.at]
