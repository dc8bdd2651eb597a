"""Dispa's HPACK encoder, checked by the hpack library's own decoder."""

from __future__ import annotations

from hpack import Decoder
from hypothesis import given
from hypothesis import strategies as st

from dispa.proxy.http2.hpack import LiteralEncoder, encode_integer

names = st.one_of(
    st.sampled_from([b":status", b"content-type", b"date", b"via", b"set-cookie", b"server"]),
    st.binary(min_size=1, max_size=300).map(lambda name: name.lower()),
)
values = st.one_of(
    st.sampled_from([b"200", b"404", b"", b"gzip, deflate", b"text/plain"]),
    st.binary(max_size=2000),
)


@given(st.lists(st.lists(st.tuples(names, values), max_size=12), max_size=6))
def test_blocks_decode_to_what_was_encoded(blocks) -> None:
    encoder, decoder = LiteralEncoder(), Decoder()
    for block in blocks:
        assert decoder.decode(encoder.encode(block), raw=True) == block
    # Nothing was added to the decoder's dynamic table: every block stands alone.
    assert len(decoder.header_table.dynamic_entries) == 0


def test_static_fields_are_one_byte_and_sizes_announced() -> None:
    encoder = LiteralEncoder()
    first = encoder.encode([(b":status", b"200")])
    assert first == b"\x20\x88"  # table size 0, then static index 8
    assert encoder.encode([(b":status", b"200")]) == b"\x88"
    encoder.header_table_size = 1024  # the client changed its limit: say ours again
    assert encoder.header_table_size == 0
    assert encoder.encode([(b":status", b"204")]) == b"\x20\x89"


def test_integer_prefixes() -> None:
    assert encode_integer(10, 5, 0) == b"\x0a"  # RFC 7541 C.1.1
    assert encode_integer(1337, 5, 0) == b"\x1f\x9a\x0a"  # RFC 7541 C.1.2
    assert encode_integer(42, 8, 0) == b"\x2a"  # RFC 7541 C.1.3


def test_request_ids_are_encoded_but_not_remembered() -> None:
    from dispa.proxy.http2 import hpack as h2_hpack

    encoder = LiteralEncoder()
    block = encoder.encode([(b":status", b"200"), (b"x-request-id", b"only-once-1234")])
    assert Decoder().decode(block, raw=True) == [
        (b":status", b"200"),
        (b"x-request-id", b"only-once-1234"),
    ]
    assert (b"x-request-id", b"only-once-1234") not in h2_hpack._ENCODED
    assert (b":status", b"200") in h2_hpack._ENCODED
