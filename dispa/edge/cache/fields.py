"""Reading header fields the way RFC 9110 section 5.3 says: several lines of one field
are one comma-separated list, and names compare without regard to case."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from dispa.proxy.events import Headers

# What the functions here read: a Headers list, or the tuple a CachedResponse keeps.
AnyHeaders = Sequence[tuple[bytes, bytes]]


def field_lines(headers: AnyHeaders, lower_name: bytes) -> list[bytes]:
    """Every value of a field, in the order received."""
    return [value for name, value in headers if name.lower() == lower_name]


def first_field(headers: AnyHeaders, lower_name: bytes) -> bytes | None:
    for name, value in headers:
        if name.lower() == lower_name:
            return value
    return None


def has_field(headers: AnyHeaders, lower_name: bytes) -> bool:
    return first_field(headers, lower_name) is not None


def list_members(lines: Iterable[bytes]) -> list[bytes]:
    """The members of a comma-separated list field, trimmed, empty members dropped.

    Not aware of quoted strings: use it only for fields whose members are tokens
    (Vary, Connection, Pragma); Cache-Control has its own quote-aware parser.
    """
    members = []
    for line in lines:
        for member in line.split(b","):
            member = member.strip()
            if member:
                members.append(member)
    return members


def without_fields(headers: AnyHeaders, lower_names: Iterable[bytes]) -> Headers:
    dropped = frozenset(lower_names)
    return [(name, value) for name, value in headers if name.lower() not in dropped]
