"""A stored response, and its bytes on the way into the store and out of it.

Encoded as a msgpack map whose body is compressed with zstandard, unless the body is so
small, or so incompressible (images, archives), that compression would not pay. A flag
says which. Decoding checks everything it reads and raises ``CorruptEntry`` on any
damage, so the store can throw a bad entry away instead of serving it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

import msgpack
import zstandard

from dispa.edge.cache.fields import AnyHeaders
from dispa.edge.cache.storable import headers_to_store
from dispa.edge.cache.tags import tags_of

FORMAT = 1
# Below this a zstd frame saves little and costs a decompression on every hit.
COMPRESS_FROM_BYTES = 512
COMPRESSION_LEVEL = 3

T = TypeVar("T")


class CorruptEntry(ValueError):
    """Bytes that do not decode to a CachedResponse."""


@dataclass(frozen=True, slots=True)
class CachedResponse:
    status: int
    reason: bytes
    # A tuple, so an entry handed to one request cannot be changed under the next one.
    # A Headers list is accepted and copied.
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes
    request_time: float  # when the request that fetched it was sent (Unix seconds)
    response_time: float  # when the response arrived
    url: str  # scheme://host/target, for purge_url
    tags: tuple[str, ...] = ()
    vary_key: bytes = b""  # the secondary key (key.py); the store sets it

    def __post_init__(self) -> None:
        object.__setattr__(self, "headers", tuple((name, value) for name, value in self.headers))
        object.__setattr__(self, "tags", tuple(self.tags))

    @classmethod
    def from_response(
        cls,
        status: int,
        reason: bytes,
        headers: AnyHeaders,
        body: bytes,
        request_time: float,
        response_time: float,
        url: str,
    ) -> CachedResponse:
        """An entry for a response as received: hop-by-hop headers dropped, tags read."""
        return cls(
            status=status,
            reason=reason,
            headers=tuple(headers_to_store(headers)),
            body=body,
            request_time=request_time,
            response_time=response_time,
            url=url,
            tags=tags_of(headers),
        )

    def size(self) -> int:
        """Bytes of header fields and body, uncompressed: what max_entry_bytes limits."""
        return len(self.body) + sum(len(name) + len(value) for name, value in self.headers)


def encode_entry(entry: CachedResponse) -> bytes:
    body = entry.body
    compressed = len(body) >= COMPRESS_FROM_BYTES
    if compressed:
        packed_body = zstandard.ZstdCompressor(level=COMPRESSION_LEVEL).compress(body)
        if len(packed_body) >= len(body):
            compressed, packed_body = False, body
    else:
        packed_body = body
    return msgpack.packb(
        {
            "format": FORMAT,
            "status": entry.status,
            "reason": entry.reason,
            "headers": [[name, value] for name, value in entry.headers],
            "zstd": compressed,
            "body_length": len(body),
            "body": packed_body,
            "request_time": float(entry.request_time),
            "response_time": float(entry.response_time),
            # Text as bytes with surrogatepass: any str round-trips, even a lone surrogate.
            "url": _text_bytes(entry.url),
            "tags": [_text_bytes(tag) for tag in entry.tags],
            "vary_key": entry.vary_key,
        },
        use_bin_type=True,
    )


def decode_entry(data: bytes) -> CachedResponse:
    try:
        record = msgpack.unpackb(data, raw=False)
        if not isinstance(record, dict) or record.get("format") != FORMAT:
            raise CorruptEntry("not a cache entry of a known format")
        body = record["body"]
        body_length = record["body_length"]
        if record["zstd"]:
            # Check the length the frame declares before trusting it with an allocation.
            if zstandard.frame_content_size(body) != body_length:
                raise CorruptEntry("compressed body of the wrong length")
            body = zstandard.ZstdDecompressor().decompress(body)
        if not isinstance(body, bytes) or len(body) != body_length:
            raise CorruptEntry("body of the wrong length")
        entry = CachedResponse(
            status=_typed(record["status"], int),
            reason=_typed(record["reason"], bytes),
            headers=tuple(
                (_typed(name, bytes), _typed(value, bytes)) for name, value in record["headers"]
            ),
            body=body,
            request_time=_typed(record["request_time"], float),
            response_time=_typed(record["response_time"], float),
            url=_text(record["url"]),
            tags=tuple(_text(tag) for tag in record["tags"]),
            vary_key=_typed(record["vary_key"], bytes),
        )
    except CorruptEntry:
        raise
    # Damaged bytes can fail in any of these ways; all of them mean the same thing here.
    except (ValueError, TypeError, KeyError, msgpack.ExtraData, zstandard.ZstdError) as error:
        raise CorruptEntry(str(error) or type(error).__name__) from error
    return entry


def _typed(value: object, kind: type[T]) -> T:
    if not isinstance(value, kind) or isinstance(value, bool):
        raise CorruptEntry(f"expected {kind.__name__}, found {type(value).__name__}")
    return value


def _text_bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def _text(value: object) -> str:
    return _typed(value, bytes).decode("utf-8", "surrogatepass")
