"""The wire format of the watch stream that cores serve and edges follow.

``GET /api/v1/watch?from=REV&purges=SEQ`` answers with a long-lived body of frames. A
frame is a 4-byte big-endian length and a msgpack map compressed with zstandard:

    {"type": "snapshot", "revision", "config", "committed_at"}   the whole shared config
    {"type": "delta", "base", "revision", "set", "unset", "committed_at"}
                                              top-level sections changed since ``base``
    {"type": "purge", "seq", "urls", "tags"}  a cache purge to apply
    {"type": "purge_all", "seq"}              purges were missed: empty the whole cache
    {"type": "acme", "seq", "challenges", "certificate"}
                                              the ACME answers and certificate to serve
    {"type": "heartbeat", "revision", "purge_seq", "has_quorum", "time"}

A delta is sent only when the edge said it holds ``base``; anything else gets a snapshot.
Heartbeats come at least every ``HEARTBEAT`` seconds, so an edge that hears nothing for
a few of them knows the core is gone even when the TCP connection is not closed.
"""

from __future__ import annotations

import struct

import msgpack
import zstandard

CONTENT_TYPE = "application/vnd.dispa.watch"
HEARTBEAT = 1.0
# A frame larger than this is a broken stream, not a config.
MAX_FRAME = 64 * 1024 * 1024
_LENGTH = struct.Struct(">I")
_compressor = zstandard.ZstdCompressor(level=3)
_decompressor = zstandard.ZstdDecompressor()


class BrokenStream(Exception):
    """The watch stream does not hold valid frames."""


def encode_frame(message: dict) -> bytes:
    body = _compressor.compress(msgpack.packb(message, use_bin_type=True))
    return _LENGTH.pack(len(body)) + body


class FrameReader:
    """Bytes in, whole messages out: frames may arrive split or several at once."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[dict]:
        self._buffer += data
        messages = []
        while len(self._buffer) >= _LENGTH.size:
            (length,) = _LENGTH.unpack_from(self._buffer)
            if length > MAX_FRAME:
                raise BrokenStream(f"frame of {length} bytes is larger than {MAX_FRAME}")
            end = _LENGTH.size + length
            if len(self._buffer) < end:
                break
            body = bytes(self._buffer[_LENGTH.size : end])
            del self._buffer[:end]
            try:
                # zstandard ignores max_output_size for a frame that declares its size, and
                # allocates what it declares: a small frame could ask for gigabytes.
                if zstandard.frame_content_size(body) > MAX_FRAME:
                    raise BrokenStream(f"a frame that unpacks to more than {MAX_FRAME} bytes")
                message = msgpack.unpackb(
                    _decompressor.decompress(body, max_output_size=MAX_FRAME),
                    raw=False,
                    strict_map_key=False,
                )
            except (zstandard.ZstdError, ValueError, msgpack.ExtraData) as error:
                raise BrokenStream(f"undecodable frame: {error}") from None
            if not isinstance(message, dict) or "type" not in message:
                raise BrokenStream("a frame without a message type")
            messages.append(message)
        return messages


def config_delta(old: dict, new: dict) -> dict:
    """The top-level sections of ``new`` that differ from ``old``, and those it dropped."""
    return {
        "set": {key: value for key, value in new.items() if old.get(key) != value},
        "unset": [key for key in old if key not in new],
    }


def apply_delta(old: dict, delta: dict) -> dict:
    config = {key: value for key, value in old.items() if key not in delta.get("unset", ())}
    config.update(delta.get("set", {}))
    return config
