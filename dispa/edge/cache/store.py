"""Where entries live: a memory tier, and optionally a disk tier beneath it.

Both tiers are bounded in bytes (of encoded, compressed entries) and evict the least
recently used entry first. An entry pushed out of memory moves to disk when there is a
disk tier, and a disk hit moves back to memory: each entry is in exactly one tier, so
the two bounds add up to what the cache holds. An entry too big for memory but not for
disk goes straight to disk and is served from there.

The index (the variants of each primary key, their URLs and tags) always stays in
memory, so a lookup opens no file it will not use and a purge opens none at all. On
start, the disk tier's index is rebuilt from its files (disk_files.py).

Not thread-safe: one event loop owns a store. Expiry is not its business: stale entries
stay until evicted or purged, since decision.py may still serve or revalidate them.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import OrderedDict
from dataclasses import dataclass

from dispa.edge.cache.disk_files import DiskFiles, pack
from dispa.edge.cache.entry import CachedResponse, CorruptEntry, decode_entry, encode_entry
from dispa.edge.cache.fields import AnyHeaders
from dispa.edge.cache.key import normalize_url, secondary_key, variant_id, vary_names

log = logging.getLogger("dispa.edge.cache")

DEFAULT_MAX_ENTRY_BYTES = 8 * 1024 * 1024


# Decoded entries kept for fast hits (see CacheStore._decoded).
HOT_ENTRIES = 1024


@dataclass(slots=True)
class _Variant:
    """What the index knows of one stored entry, wherever its bytes are."""

    primary_key: str
    vary_names: tuple[bytes, ...]
    vary_key: bytes
    url: str
    tags: tuple[str, ...]
    response_time: float
    size: int  # bytes it takes in its tier
    on_disk: bool = False


class CacheStore:
    def __init__(
        self,
        memory_bytes: int,
        disk_dir: str | None = None,
        disk_bytes: int = 0,
        max_entry_bytes: int = DEFAULT_MAX_ENTRY_BYTES,
    ) -> None:
        """A disk tier exists when ``disk_dir`` is given and ``disk_bytes`` is positive;
        the directory is created if needed, and the entries already in it are indexed."""
        if min(memory_bytes, disk_bytes, max_entry_bytes) < 0:
            raise ValueError("cache sizes cannot be negative")
        self.memory_limit = memory_bytes
        self.disk_dir = disk_dir if disk_bytes > 0 else None  # None: no disk tier
        self.disk_limit = disk_bytes if self.disk_dir is not None else 0
        self.max_entry_bytes = max_entry_bytes
        self._variants: dict[str, _Variant] = {}  # by variant id (key.variant_id)
        # Dicts with None values serve as insertion-ordered sets of variant ids.
        self._by_primary_key: dict[str, dict[str, None]] = {}
        self._by_url: dict[str, dict[str, None]] = {}
        self._by_tag: dict[str, dict[str, None]] = {}
        self._memory: OrderedDict[str, bytes] = OrderedDict()  # least recently used first
        self._disk: OrderedDict[str, None] = OrderedDict()
        self.memory_bytes = 0
        self.disk_bytes = 0
        self.memory_hits = 0
        self.disk_hits = 0
        self.misses = 0
        self.evictions = 0  # entries dropped for room, from the cache altogether
        self.spills = 0  # entries moved from memory to disk
        self.promotions = 0  # entries moved from disk back to memory
        self.rejected = 0  # entries not stored: too big, or Vary: *
        self.corrupt = 0  # entries that did not decode, deleted
        # The most recently served entries, decoded: a hit on them skips decompressing and
        # unpacking (most of a hit's cost). Keyed by variant with the stored bytes they
        # came from, so a replaced entry is never served from here. Bounded by count and
        # by a quarter of the memory tier's bytes (body bytes, decoded).
        self._decoded: OrderedDict[str, tuple[bytes, CachedResponse]] = OrderedDict()
        self._decoded_bytes = 0
        self._files = DiskFiles(self.disk_dir) if self.disk_dir is not None else None
        if self._files is not None:
            self._load_disk(self._files)

    # ------------------------------------------------------------ lookup and store

    def lookup(self, primary_key: str, request_headers: AnyHeaders) -> CachedResponse | None:
        """The stored response for this request, whichever tier holds it, or None.

        Among the variants whose Vary'd headers match the request, the most recent
        response is chosen (RFC 9111 section 4.1).
        """
        variant = self._select(primary_key, request_headers)
        blob = None if variant is None else self._read(variant)
        if variant is None or blob is None:
            self.misses += 1
            return None
        hot = self._decoded.get(variant)
        if hot is not None and hot[0] is blob:
            self._decoded.move_to_end(variant)
            return hot[1]
        try:
            entry = decode_entry(blob)
        except CorruptEntry as error:
            log.warning("dropping a damaged cache entry for %s: %s", primary_key, error)
            self.corrupt += 1
            self._drop(variant)
            self.misses += 1
            return None
        self._remember_decoded(variant, blob, entry)
        return entry

    def _remember_decoded(self, variant: str, blob: bytes, entry: CachedResponse) -> None:
        previous = self._decoded.pop(variant, None)
        if previous is not None:
            self._decoded_bytes -= len(previous[1].body)
        self._decoded[variant] = (blob, entry)
        self._decoded_bytes += len(entry.body)
        budget = self.memory_limit // 4
        while self._decoded and (len(self._decoded) > HOT_ENTRIES or self._decoded_bytes > budget):
            _, (_, oldest) = self._decoded.popitem(last=False)
            self._decoded_bytes -= len(oldest.body)

    def store(self, primary_key: str, request_headers: AnyHeaders, entry: CachedResponse) -> bool:
        """Store (or replace) the variant of ``primary_key`` this request selects.

        ``entry.vary_key`` is set here, from the request headers the response varies on.
        Returns False when the entry is not kept: over ``max_entry_bytes`` (counted
        uncompressed), ``Vary: *``, or bigger than any tier.
        """
        names = vary_names(entry.headers)
        if b"*" in names or entry.size() > self.max_entry_bytes:
            self.rejected += 1
            return False
        vary_key = secondary_key(names, request_headers)
        entry = dataclasses.replace(entry, vary_key=vary_key)
        blob = encode_entry(entry)
        variant = variant_id(primary_key, vary_key)
        self._drop(variant)
        self._index(
            variant,
            _Variant(
                primary_key=primary_key,
                vary_names=names,
                vary_key=vary_key,
                url=normalize_url(entry.url),
                tags=entry.tags,
                response_time=entry.response_time,
                size=len(blob),
            ),
        )
        if len(blob) <= self.memory_limit:
            self._put_in_memory(variant, blob)
            return True
        if self._move_to_disk(variant, blob):
            return True
        self._forget(variant)
        self.rejected += 1
        return False

    # ------------------------------------------------------------ removal

    def remove(self, primary_key: str) -> int:
        """Drop every variant of ``primary_key``; the number dropped."""
        return self._drop_all(self._by_primary_key.get(primary_key, {}))

    def purge_url(self, url: str) -> int:
        """Drop every entry for ``scheme://host/target``, all variants; the number dropped."""
        return self._drop_all(self._by_url.get(normalize_url(url), {}))

    def purge_tag(self, tag: str) -> int:
        """Drop every entry labelled ``tag`` (Cache-Tag, Surrogate-Key); the number dropped."""
        return self._drop_all(self._by_tag.get(tag, {}))

    def clear(self) -> int:
        """Drop every entry, in both tiers; the number dropped."""
        return self._drop_all(dict.fromkeys(self._variants))

    # ------------------------------------------------------------ new limits

    def resize(self, memory_bytes: int, disk_bytes: int, max_entry_bytes: int) -> None:
        """New limits for the same tiers (a reload): what still fits stays. Beyond a
        smaller limit the least recently used go, from memory to the disk tier when there
        is one. Which tiers exist is fixed at construction: ``disk_bytes`` is only read
        when there is a disk tier, and must then be positive."""
        if min(memory_bytes, disk_bytes, max_entry_bytes) < 0:
            raise ValueError("cache sizes cannot be negative")
        self.max_entry_bytes = max_entry_bytes  # for what is stored from now on
        if self._files is not None:
            self.disk_limit = disk_bytes
            while self.disk_bytes > self.disk_limit:
                self._drop(next(iter(self._disk)))
                self.evictions += 1
        self.memory_limit = memory_bytes
        self._shrink_memory()
        budget = self.memory_limit // 4
        while self._decoded and self._decoded_bytes > budget:
            _, (_, oldest) = self._decoded.popitem(last=False)
            self._decoded_bytes -= len(oldest.body)

    # ------------------------------------------------------------ reporting

    def statistics(self) -> dict[str, int]:
        return {
            "entries": len(self._variants),
            "memory_entries": len(self._memory),
            "memory_bytes": self.memory_bytes,
            "memory_limit": self.memory_limit,
            "disk_entries": len(self._disk),
            "disk_bytes": self.disk_bytes,
            "disk_limit": self.disk_limit,
            "hits": self.memory_hits + self.disk_hits,
            "memory_hits": self.memory_hits,
            "disk_hits": self.disk_hits,
            "misses": self.misses,
            "evictions": self.evictions,
            "spills": self.spills,
            "promotions": self.promotions,
            "rejected": self.rejected,
            "corrupt": self.corrupt,
        }

    def __len__(self) -> int:
        return len(self._variants)

    # ------------------------------------------------------------ variants

    def _select(self, primary_key: str, request_headers: AnyHeaders) -> str | None:
        chosen: str | None = None
        chosen_time = 0.0
        # Variants usually share one Vary list: compute the request's key once per list.
        keys: dict[tuple[bytes, ...], bytes] = {}
        for variant in self._by_primary_key.get(primary_key, ()):
            stored = self._variants[variant]
            key = keys.get(stored.vary_names)
            if key is None:
                key = keys[stored.vary_names] = secondary_key(stored.vary_names, request_headers)
            # ">=": of two equally recent variants, the one stored later wins.
            if key == stored.vary_key and (chosen is None or stored.response_time >= chosen_time):
                chosen, chosen_time = variant, stored.response_time
        return chosen

    # ------------------------------------------------------------ tiers

    def _read(self, variant: str) -> bytes | None:
        stored = self._variants[variant]
        if not stored.on_disk:
            self._memory.move_to_end(variant)
            self.memory_hits += 1
            return self._memory[variant]
        assert self._files is not None
        try:
            blob = self._files.read(variant)
        except (OSError, CorruptEntry) as error:
            log.warning("dropping an unreadable cache file for %s: %s", stored.primary_key, error)
            self.corrupt += 1
            self._drop(variant)
            return None
        self.disk_hits += 1
        if len(blob) <= self.memory_limit:
            self._leave_disk(variant)
            stored.size = len(blob)
            self._put_in_memory(variant, blob)
            self.promotions += 1
        else:
            self._disk.move_to_end(variant)
            self._files.touch(variant)
        return blob

    def _put_in_memory(self, variant: str, blob: bytes) -> None:
        self._memory[variant] = blob
        self.memory_bytes += len(blob)
        self._variants[variant].on_disk = False
        # The newest entry fits on its own (callers check), so it is never the one evicted.
        self._shrink_memory()

    def _shrink_memory(self) -> None:
        """Least recently used first, out of memory until the rest fits: to the disk tier
        when there is one and it takes the entry, else forgotten."""
        while self.memory_bytes > self.memory_limit:
            victim, victim_blob = self._memory.popitem(last=False)
            self.memory_bytes -= len(victim_blob)
            if self._move_to_disk(victim, victim_blob):
                self.spills += 1
            else:
                self._forget(victim)
                self.evictions += 1

    def _move_to_disk(self, variant: str, blob: bytes) -> bool:
        """Write an indexed entry's bytes to disk and account for them; False if the disk
        tier is absent, too small for it, or failing."""
        if self._files is None:
            return False
        stored = self._variants[variant]
        data = pack(stored.primary_key, blob)
        if len(data) > self.disk_limit:
            return False
        while self.disk_bytes + len(data) > self.disk_limit:
            self._drop(next(iter(self._disk)))
            self.evictions += 1
        try:
            self._files.write(variant, data)
        except OSError as error:
            log.warning("cannot write a cache file for %s: %s", stored.primary_key, error)
            return False
        self._disk[variant] = None
        self.disk_bytes += len(data)
        stored.size = len(data)
        stored.on_disk = True
        return True

    def _leave_disk(self, variant: str) -> None:
        assert self._files is not None
        del self._disk[variant]
        self.disk_bytes -= self._variants[variant].size
        self._files.remove(variant)

    def _drop_all(self, variants: dict[str, None]) -> int:
        dropped = 0
        for variant in list(variants):  # copied: dropping edits the index being read
            dropped += self._drop(variant)
        return dropped

    def _drop(self, variant: str) -> bool:
        stored = self._variants.get(variant)
        if stored is None:
            return False
        if stored.on_disk:
            self._leave_disk(variant)
        else:
            self.memory_bytes -= len(self._memory.pop(variant))
        self._forget(variant)
        return True

    def _load_disk(self, files: DiskFiles) -> None:
        """Index the entry files already on disk, least recently used first."""
        found = sorted(files.scan(), key=lambda file: file.modified)
        self.corrupt += files.damaged
        for file in found:
            self._index(
                file.variant,
                _Variant(
                    primary_key=file.primary_key,
                    vary_names=vary_names(file.entry.headers),
                    vary_key=file.entry.vary_key,
                    url=normalize_url(file.entry.url),
                    tags=file.entry.tags,
                    response_time=file.entry.response_time,
                    size=file.size,
                    on_disk=True,
                ),
            )
            self._disk[file.variant] = None
            self.disk_bytes += file.size
        # The limit may have shrunk since these files were written.
        while self.disk_bytes > self.disk_limit:
            self._drop(next(iter(self._disk)))
            self.evictions += 1

    # ------------------------------------------------------------ index

    def _index(self, variant: str, stored: _Variant) -> None:
        self._variants[variant] = stored
        self._by_primary_key.setdefault(stored.primary_key, {})[variant] = None
        self._by_url.setdefault(stored.url, {})[variant] = None
        for tag in stored.tags:
            self._by_tag.setdefault(tag, {})[variant] = None

    def _forget(self, variant: str) -> None:
        """Remove an entry from the index (its bytes are already gone from the tiers)."""
        hot = self._decoded.pop(variant, None)
        if hot is not None:
            self._decoded_bytes -= len(hot[1].body)
        stored = self._variants.pop(variant)
        _discard(self._by_primary_key, stored.primary_key, variant)
        _discard(self._by_url, stored.url, variant)
        for tag in stored.tags:
            _discard(self._by_tag, tag, variant)


def _discard(index: dict[str, dict[str, None]], key: str, variant: str) -> None:
    members = index.get(key)
    if members is not None:
        members.pop(variant, None)
        if not members:
            del index[key]
