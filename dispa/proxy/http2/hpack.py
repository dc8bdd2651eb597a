"""HPACK encoding of response header blocks: the static table and raw literals only.

Profiled under h2load, the hpack library's encoder was the largest single cost of an
HTTP/2 response in Dispa: Huffman coding in pure Python, and a scan of the whole dynamic
table for every field. This encoder never adds to a dynamic table and never Huffman-codes:
a field the static table holds whole is one index; any other is a literal "without
indexing" (by the static table's index of its name where there is one) with raw strings
(RFC 7541 6.1, 6.2.2, 5.2). Several times faster, for some tens of bytes more per block;
the decoder on the other side is the peer's own and unchanged.

It stands in for h2's encoder: h2 calls ``encode(headers)`` and sets
``header_table_size`` when the client's SETTINGS_HEADER_TABLE_SIZE changes.
"""

from __future__ import annotations

from hpack.table import HeaderTable

# name -> (index of the name, {value: index of the whole field})
_STATIC = HeaderTable.STATIC_TABLE_MAPPING
_SIZE_UPDATE_TO_ZERO = b"\x20"  # RFC 7541 6.3: our dynamic table holds 0 bytes
_ONE_BYTE = tuple(bytes((value,)) for value in range(256))


def encode_integer(value: int, prefix_bits: int, first_bits: int) -> bytes:
    """An integer with an N-bit prefix (RFC 7541 5.1), ``first_bits`` set above it."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return _ONE_BYTE[first_bits | value]
    out = bytearray((first_bits | limit,))
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _string(data: bytes) -> bytes:
    """A raw (not Huffman-coded) string literal: its length, then its bytes."""
    size = len(data)
    return (_ONE_BYTE[size] if size < 127 else encode_integer(size, 7, 0)) + data


class LiteralEncoder:
    __slots__ = ("_announce_size",)

    def __init__(self) -> None:
        # The first block says our table is empty; so does the next one after any change
        # of the client's limit, which a decoder may require to hear (RFC 7541 4.2).
        self._announce_size = True

    @property
    def header_table_size(self) -> int:
        return 0

    @header_table_size.setter
    def header_table_size(self, value: int) -> None:
        self._announce_size = True

    def encode(self, headers, huffman: bool = True) -> bytes:
        parts = []
        if self._announce_size:
            self._announce_size = False
            parts.append(_SIZE_UPDATE_TO_ZERO)
        cache = _ENCODED
        for field in headers:
            encoded = cache.get(field)
            if encoded is None:
                encoded = _encode_field(field[0], field[1])
                if field[0] not in _NEVER_REPEATED:
                    if len(cache) >= _CACHE_LIMIT:
                        cache.clear()  # values seldom repeated must not fill it up
                    cache[field] = encoded
            parts.append(encoded)
        return b"".join(parts)


def _encode_field(name: bytes, value: bytes) -> bytes:
    static = _STATIC.get(name)
    if static is None:
        return b"\x00" + _string(name) + _string(value)
    index = static[1].get(value)
    if index is not None:
        return _ONE_BYTE[0x80 | index]  # every static index is < 127
    return encode_integer(static[0], 4, 0x00) + _string(value)


# Without a dynamic table a field always encodes the same, on any connection: most fields
# of responses (server, content-type, a content-length, a date within its second) repeat.
_ENCODED: dict[tuple[bytes, bytes], bytes] = {}
_CACHE_LIMIT = 4096
# Fields new with every response: stored, they would only push the others out.
_NEVER_REPEATED = frozenset({b"x-request-id"})
