"""A 64-bit hash that is the same in every process, on every node, across restarts.

Hashing balancers must send a key to the same endpoint from every gateway node, so they
cannot use Python's ``hash()``, which is salted per process (PYTHONHASHSEED).
"""

from __future__ import annotations

from hashlib import blake2b


def hash64(data: bytes, *, person: bytes = b"") -> int:
    """Hash ``data`` to an unsigned 64-bit integer.

    ``person`` (at most 16 bytes) separates hash families, such as a Maglev endpoint's
    offset and skip, without concatenating bytes that could collide.
    """
    return int.from_bytes(blake2b(data, digest_size=8, person=person).digest())
