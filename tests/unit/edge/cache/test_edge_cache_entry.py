"""CachedResponse and its encoding: round trips, compression, and damage detection."""

import os

import msgpack
import pytest

from dispa.edge.cache.entry import (
    COMPRESS_FROM_BYTES,
    CachedResponse,
    CorruptEntry,
    decode_entry,
    encode_entry,
)


def entry(body: bytes = b"hello", **changes) -> CachedResponse:
    fields = {
        "status": 200,
        "reason": b"OK",
        "headers": [(b"Content-Type", b"text/plain"), (b"Set-Cookie", b"a=1")],
        "body": body,
        "request_time": 10.5,
        "response_time": 11.25,
        "url": "https://a.example/x?y=1",
        "tags": ("product-1", "café"),
        "vary_key": b"\x91\x92\xa1x\xc0",
    }
    fields.update(changes)
    return CachedResponse(**fields)


def record_of(data: bytes) -> dict:
    return msgpack.unpackb(data, raw=False)


def test_headers_given_as_a_list_are_kept_as_a_tuple():
    response = entry()
    assert isinstance(response.headers, tuple)
    assert response.headers[0] == (b"Content-Type", b"text/plain")


def test_from_response_drops_hop_by_hop_fields_and_reads_tags():
    response = CachedResponse.from_response(
        200,
        b"OK",
        [(b"Connection", b"close"), (b"Surrogate-Key", b"a b"), (b"ETag", b'"1"')],
        b"x",
        1.0,
        2.0,
        "http://a/",
    )
    assert response.headers == ((b"Surrogate-Key", b"a b"), (b"ETag", b'"1"'))
    assert response.tags == ("a", "b")
    assert response.vary_key == b""


def test_size_counts_header_fields_and_body():
    assert entry(b"12345").size() == 5 + len(b"Content-Typetext/plain") + len(b"Set-Cookiea=1")


def test_small_body_round_trips_uncompressed():
    original = entry(b"tiny")
    data = encode_entry(original)
    assert record_of(data)["zstd"] is False
    assert decode_entry(data) == original


def test_compressible_body_is_compressed():
    original = entry(b"abcdefgh" * 10_000)
    data = encode_entry(original)
    assert record_of(data)["zstd"] is True
    assert len(data) < len(original.body) // 10
    assert decode_entry(data) == original


def test_incompressible_body_is_stored_as_it_is():
    original = entry(os.urandom(COMPRESS_FROM_BYTES * 4))
    data = encode_entry(original)
    assert record_of(data)["zstd"] is False
    assert decode_entry(data) == original


def test_any_url_text_round_trips():
    original = entry(url="http://a/\udcff")  # a lone surrogate, as surrogateescape makes
    assert decode_entry(encode_entry(original)).url == original.url


@pytest.mark.parametrize("data", [b"", b"\x00", b"garbage", msgpack.packb([1, 2, 3])])
def test_garbage_is_corrupt(data):
    with pytest.raises(CorruptEntry):
        decode_entry(data)


def test_truncated_entry_is_corrupt():
    data = encode_entry(entry(b"abcdefgh" * 1000))
    with pytest.raises(CorruptEntry):
        decode_entry(data[: len(data) // 2])


def test_unknown_format_is_corrupt():
    record = record_of(encode_entry(entry()))
    record["format"] = 99
    with pytest.raises(CorruptEntry, match="format"):
        decode_entry(msgpack.packb(record))


def test_wrong_body_length_is_corrupt():
    record = record_of(encode_entry(entry()))
    record["body_length"] += 1
    with pytest.raises(CorruptEntry, match="length"):
        decode_entry(msgpack.packb(record))


def test_damaged_compressed_body_is_corrupt():
    record = record_of(encode_entry(entry(b"abcdefgh" * 1000)))
    body = bytearray(record["body"])
    body[len(body) // 2 :] = b"\xff" * (len(body) - len(body) // 2)
    record["body"] = bytes(body)
    with pytest.raises(CorruptEntry):
        decode_entry(msgpack.packb(record))


def test_compressed_body_claiming_another_length_is_refused_before_decompression():
    record = record_of(encode_entry(entry(b"abcdefgh" * 1000)))
    record["body_length"] = 10
    with pytest.raises(CorruptEntry, match="compressed body"):
        decode_entry(msgpack.packb(record))


@pytest.mark.parametrize(
    ("field", "value"),
    [("status", True), ("status", "200"), ("reason", "OK"), ("headers", [[b"a"]]), ("tags", [1])],
)
def test_fields_of_the_wrong_type_are_corrupt(field, value):
    record = record_of(encode_entry(entry()))
    record[field] = value
    with pytest.raises(CorruptEntry):
        decode_entry(msgpack.packb(record, use_bin_type=True))
