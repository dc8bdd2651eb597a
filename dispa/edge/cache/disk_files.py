"""The disk tier's files: where an entry's file lives, what is in it, writing it whole.

Layout: ``<dir>/<first two hex digits>/<variant id>.entry``, the variant id being a
SHA-256 (key.py), so names are safe on any file system and 256 subdirectories keep each
one quick to list. A file holds msgpack ``[format, primary key, encoded entry]``: the
primary key cannot be recovered from the hash, and the index needs it after a restart.

Files are written under a temporary name and renamed into place, so a reader never sees
half of one. They are not fsynced: a file torn by a crash is found at the next start and
deleted, and losing a cached copy only costs a refetch. Cached responses may be private to
a client: files are 0600 and folders 0700, whatever the umask.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from typing import NamedTuple

import msgpack

from dispa.edge.cache.entry import CachedResponse, CorruptEntry, decode_entry
from dispa.edge.cache.key import variant_id
from dispa.private_files import TEMPORARY_SUFFIX, make_private_dir, write_private_file

log = logging.getLogger("dispa.edge.cache")

FILE_FORMAT = 1
ENTRY_SUFFIX = ".entry"


class FoundFile(NamedTuple):
    variant: str
    primary_key: str
    entry: CachedResponse
    size: int
    modified: float


class DiskFiles:
    __slots__ = ("damaged", "directory")

    def __init__(self, directory: str) -> None:
        make_private_dir(directory)
        self.directory = directory
        self.damaged = 0  # files found unreadable, and deleted

    def path(self, variant: str) -> str:
        return os.path.join(self.directory, variant[:2], variant + ENTRY_SUFFIX)

    def write(self, variant: str, data: bytes) -> None:
        """Put ``data`` (from ``pack``) in place atomically; raises OSError on failure."""
        path = self.path(variant)
        # Made 0700 when created; not re-checked on every write.
        make_private_dir(os.path.dirname(path), tighten=False)
        write_private_file(path, data, durable=False)

    def read(self, variant: str) -> bytes:
        """The encoded entry in a variant's file; OSError or CorruptEntry if it cannot be."""
        with open(self.path(variant), "rb") as handle:
            return unpack(handle.read())[1]

    def remove(self, variant: str) -> None:
        _remove_quietly(self.path(variant))

    def touch(self, variant: str) -> None:
        """Mark a file as just used: its time orders the LRU after a restart."""
        # The order is only a hint; a missing file shows up at the next read.
        with contextlib.suppress(OSError):
            os.utime(self.path(variant))

    def scan(self) -> Iterator[FoundFile]:
        """Every valid entry file, in no particular order. Damaged files, and temporary
        ones left by a write a crash cut short, are deleted on the way; files the cache
        did not write are left alone."""
        for directory, _, names in os.walk(self.directory):
            for name in names:
                path = os.path.join(directory, name)
                if name.endswith(TEMPORARY_SUFFIX):
                    _remove_quietly(path)
                elif name.endswith(ENTRY_SUFFIX):
                    found = self._load(path, name.removesuffix(ENTRY_SUFFIX))
                    if found is not None:
                        yield found

    def _load(self, path: str, variant: str) -> FoundFile | None:
        try:
            with open(path, "rb") as handle:
                data = handle.read()
                modified = os.fstat(handle.fileno()).st_mtime
            primary_key, blob = unpack(data)
            entry = decode_entry(blob)
            misplaced = os.path.normpath(path) != os.path.normpath(self.path(variant))
            if misplaced or variant != variant_id(primary_key, entry.vary_key):
                raise CorruptEntry("file name does not match its content")
        except (OSError, CorruptEntry) as error:
            log.warning("deleting the damaged cache file %s: %s", path, error)
            self.damaged += 1
            _remove_quietly(path)
            return None
        return FoundFile(variant, primary_key, entry, len(data), modified)


def pack(primary_key: str, blob: bytes) -> bytes:
    return msgpack.packb(
        [FILE_FORMAT, primary_key.encode("utf-8", "surrogatepass"), blob], use_bin_type=True
    )


def unpack(data: bytes) -> tuple[str, bytes]:
    """``(primary key, encoded entry)``; CorruptEntry if ``data`` is not a cache file."""
    try:
        file_format, primary_key, blob = msgpack.unpackb(data, raw=False)
        if file_format != FILE_FORMAT or not isinstance(blob, bytes):
            raise CorruptEntry("not a cache file of a known format")
        return primary_key.decode("utf-8", "surrogatepass"), blob
    except CorruptEntry:
        raise
    # Damaged bytes can fail in any of these ways; all of them mean the same thing here.
    except (ValueError, TypeError, AttributeError) as error:
        raise CorruptEntry(str(error) or type(error).__name__) from error


def _remove_quietly(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
    except OSError as error:
        log.warning("cannot remove the cache file %s: %s", path, error)
