"""The edge's response cache as the data plane sees it (``dispa.proxy.caching``).

It puts the pure RFC 9111 library (``dispa.edge.cache``) to work for one request at a
time: look up and decide, keep one fetch per key in flight (the others wait for it), plan
what to do with the origin's answer, store it, and count what happened. ``X-Cache`` says
which way each response went: HIT, MISS, STALE (served stale while refreshing, or because
the origin failed), REVALIDATED (a 304 from the origin freshened the stored response).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Iterable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from dispa.config.edge import CacheSettings
from dispa.edge.cache import (
    CachedResponse,
    CacheStore,
    Decision,
    client_conditional_matches,
    decide,
    headers_for_client,
    is_storable,
    merge_not_modified,
    normalize_url,
    not_modified_headers,
    only_if_cached_fails,
    primary_key,
    purge_key,
    revalidation_headers,
    serve_stale_on_error,
)
from dispa.edge.cache.fields import without_fields
from dispa.edge.cache.invalidation import invalidates, urls_to_invalidate
from dispa.edge.cache.key import url_of
from dispa.edge.cache.validators import CLIENT_CONDITIONALS
from dispa.proxy.caching import (
    FETCH,
    INVALIDATE,
    REFUSE,
    SERVE,
    WAIT,
    CachedAnswer,
    CacheVerdict,
    ResponsePlan,
)
from dispa.proxy.request_target import DEFAULT_RULES, PathRefused, PathRules

log = logging.getLogger("dispa.cache")

RESULTS = ("hit", "miss", "stale", "revalidated", "refused", "coalesced")


class EdgeCache:
    def __init__(
        self, settings: CacheSettings, path_rules: Iterable[PathRules] = (DEFAULT_RULES,)
    ) -> None:
        disk_bytes = settings.disk_size if settings.disk_dir else 0
        self.settings = settings
        # The path rules of the edge's listeners: what its entries' targets were
        # normalised with, and so what a purge URL is normalised with.
        self.path_rules = tuple(dict.fromkeys(path_rules))
        self.entries = CacheStore(
            settings.memory, settings.disk_dir, disk_bytes, settings.max_entry
        )
        # key -> callbacks of the requests waiting for the fetch in flight for it
        self.in_flight: dict[str, list] = {}
        self.results = dict.fromkeys(RESULTS, 0)
        self.bytes_served = 0  # body bytes answered from the cache
        self.stored = 0
        self.invalidated = 0  # entries dropped by a successful write (RFC 9111 4.4)

    def configure(self, shared) -> None:
        """A new shared config: nothing cached depends on it (routes opt in per request)."""

    def reconfigure(self, settings: CacheSettings, path_rules: Iterable[PathRules]) -> None:
        """New settings for this same cache (a single gateway's reload). New sizes keep
        what still fits (``CacheStore.resize``); another disk tier (``disk_dir`` set,
        unset or moved) starts empty, and the old tier's entries are deleted rather than
        left to come back, unpurged, if it is named again. The object itself stays, so
        requests waiting for a fetch in flight are woken whatever the settings."""
        self.path_rules = tuple(dict.fromkeys(path_rules))
        if settings == self.settings:
            return
        disk_bytes = settings.disk_size if settings.disk_dir else 0
        disk_dir = settings.disk_dir if disk_bytes > 0 else None
        if disk_dir == self.entries.disk_dir:
            self.entries.resize(settings.memory, disk_bytes, settings.max_entry)
        else:
            # Built first: a disk directory that cannot be made leaves everything as it was.
            entries = CacheStore(settings.memory, disk_dir, disk_bytes, settings.max_entry)
            self.entries.clear()
            self.entries = entries
        self.settings = settings

    # ---------------------------------------------------------------- lookup

    def lookup(self, request, ctx, now: float) -> CacheVerdict:
        headers = request.headers
        key = primary_key(request.method, ctx.scheme, _host_of(request), request.target)
        entry = self.entries.lookup(key, headers)
        targeted = _field_names(self.settings.targeted_fields)
        decision = decide(entry, headers, now, targeted) if entry is not None else None
        if only_if_cached_fails(headers, decision):
            self.results["refused"] += 1
            return CacheVerdict(REFUSE, key)
        if decision is Decision.FRESH:
            self.results["hit"] += 1
            return CacheVerdict(SERVE, key, answer=self._answer(entry, headers, now, b"HIT"))
        if decision is Decision.STALE_WHILE_REVALIDATE:
            self.results["stale"] += 1
            refresh = None
            if key not in self.in_flight:
                self.in_flight[key] = []
                refresh = CacheVerdict(
                    FETCH,
                    key,
                    entry=entry,
                    request_headers=revalidation_headers(headers, entry),
                    request_time=now,
                )
            answer = self._answer(entry, headers, now, b"STALE")
            return CacheVerdict(SERVE, key, answer=answer, refresh=refresh)
        if key in self.in_flight:
            self.results["coalesced"] += 1
            return CacheVerdict(WAIT, key)
        self.in_flight[key] = []
        if entry is not None:  # stored, but the origin must confirm it first
            upstream_headers = revalidation_headers(headers, entry)
        else:
            self.results["miss"] += 1
            # The cache answers the client's own conditions; the origin is asked for the
            # whole response so that it can be stored.
            upstream_headers = without_fields(headers, CLIENT_CONDITIONALS)
        return CacheVerdict(
            FETCH, key, entry=entry, request_headers=upstream_headers, request_time=now
        )

    def _answer(self, entry: CachedResponse, request_headers, now: float, how: bytes):
        self.bytes_served += len(entry.body)
        if client_conditional_matches(entry, request_headers, now):
            targeted = _field_names(self.settings.targeted_fields)
            headers = [*not_modified_headers(entry, now, targeted), (b"x-cache", how)]
            return CachedAnswer(304, b"Not Modified", headers, b"")
        headers = [*headers_for_client(entry, now), (b"x-cache", how)]
        return CachedAnswer(entry.status, entry.reason, headers, entry.body)

    # ---------------------------------------------------------------- coalescing

    def wait(self, key: str, resume) -> None:
        waiters = self.in_flight.get(key)
        if waiters is None:
            asyncio.get_running_loop().call_soon(resume)  # the fetch is over already
        else:
            waiters.append(resume)

    def fetch_done(self, key: str) -> None:
        waiters = self.in_flight.pop(key, None)
        if waiters:
            loop = asyncio.get_running_loop()
            for resume in waiters:
                loop.call_soon(resume)

    # ---------------------------------------------------------------- writes

    def invalidation(self, request, ctx) -> CacheVerdict | None:
        """For an unsafe method (RFC 9111 4.4), a verdict naming the target URL, whose
        stored responses go once the write succeeds (``plan_response``); None for a safe
        method, which changes nothing."""
        if not invalidates(request.method):
            return None
        return CacheVerdict(INVALIDATE, url_of(ctx.scheme, _host_of(request), request.target))

    def _invalidate(self, target_url: str, status: int, headers) -> None:
        try:
            urls = urls_to_invalidate(target_url, status, headers)
            # The target as the data plane normalised it, so as entries are keyed; a
            # Location or Content-Location as the origin wrote it, so as a purge names it.
            dropped = self.entries.purge_url(urls[0]) if urls else 0
            dropped += sum(self.purge_url(url) for url in urls[1:])
        except Exception:  # the answer must go on whatever the cache makes of its fields
            log.exception("invalidating cached responses after a write failed")
            return
        self.invalidated += dropped

    # ---------------------------------------------------------------- the origin answered

    def plan_response(self, verdict, request, status, reason, headers, now) -> ResponsePlan:
        if verdict.action == INVALIDATE:
            self._invalidate(verdict.key, status, headers)
            return ResponsePlan(headers, False, 0, None)
        entry = verdict.entry
        targeted = _field_names(self.settings.targeted_fields)
        if entry is not None and status == 304:
            freshened = merge_not_modified(entry, headers, verdict.request_time, now)
            if freshened is not None:
                # The 304 may change the rules (no-store, private ...): it still answers
                # this request, but then the old entry must not answer the next one.
                if is_storable(
                    "GET", request.headers, freshened.status, freshened.headers, targeted
                ):
                    self.entries.store(verdict.key, request.headers, freshened)
                else:
                    self.entries.remove(verdict.key)
                self.results["revalidated"] += 1
                answer = self._answer(freshened, request.headers, now, b"REVALIDATED")
                return ResponsePlan([], False, 0, answer)
        if (
            entry is not None
            and status >= 500
            and serve_stale_on_error(entry, request.headers, now, targeted)
        ):
            self.results["stale"] += 1
            return ResponsePlan([], False, 0, self._answer(entry, request.headers, now, b"STALE"))
        storable = is_storable(request.method, request.headers, status, headers, targeted)
        return ResponsePlan(
            [*headers, (b"x-cache", b"MISS")], storable, self.settings.max_entry, None
        )

    def store(self, verdict, request, status, reason, headers, body: bytes, now: float) -> None:
        url = verdict.key.partition(" ")[2]
        entry = CachedResponse.from_response(
            status, reason, headers, body, verdict.request_time, now, url
        )
        if self.entries.store(verdict.key, request.headers, entry):
            self.stored += 1

    def stale_on_error(self, verdict, request, now: float) -> CachedAnswer | None:
        entry = verdict.entry
        targeted = _field_names(self.settings.targeted_fields)
        if entry is None or not serve_stale_on_error(entry, request.headers, now, targeted):
            return None
        self.results["stale"] += 1
        return self._answer(entry, request.headers, now, b"STALE")

    # ---------------------------------------------------------------- purges

    def purge_url(self, url: str) -> int:
        """Drop what is stored for ``url``, in the normal form of each of the listeners'
        path rules (usually one) that accept it; the number dropped. The URL as written
        counts too, for entries a disk tier kept from before targets were normalised."""
        keys = {normalize_url(url)}
        for rules in self.path_rules:
            with contextlib.suppress(PathRefused):  # refused: nothing stored under it
                keys.add(purge_key(url, rules))
        return sum(self.entries.purge_url(key) for key in keys)

    def purge_tag(self, tag: str) -> int:
        return self.entries.purge_tag(tag)

    def purge_all(self) -> int:
        return self.entries.clear()

    # ---------------------------------------------------------------- what happened

    def statistics(self) -> dict:
        looked_up = self.results["hit"] + self.results["miss"]
        return {
            "results": dict(self.results),
            "hit_ratio": self.results["hit"] / looked_up if looked_up else 0.0,
            "bytes_served": self.bytes_served,
            "stored": self.stored,
            "invalidated": self.invalidated,
            "store": self.entries.statistics(),
        }

    def metric_families(self):
        responses = CounterMetricFamily(
            "dispa_cache_responses",
            "Requests on cached routes by how the cache answered them.",
            labels=["result"],
        )
        for result, count in self.results.items():
            responses.add_metric([result], float(count))
        yield responses
        ratio = GaugeMetricFamily(
            "dispa_cache_hit_ratio", "Hits over hits and misses since the edge started."
        )
        ratio.add_metric([], self.statistics()["hit_ratio"])
        yield ratio
        served = CounterMetricFamily(
            "dispa_cache_served_bytes", "Body bytes answered from the cache."
        )
        served.add_metric([], float(self.bytes_served))
        yield served
        invalidated = CounterMetricFamily(
            "dispa_cache_invalidated",
            "Stored responses dropped because a write (POST, PUT, DELETE ...) to their URL, "
            "or to a URL naming them in Location or Content-Location, succeeded.",
        )
        invalidated.add_metric([], float(self.invalidated))
        yield invalidated
        stats = self.entries.statistics()
        stored = GaugeMetricFamily(
            "dispa_cache_stored_bytes", "Bytes held by the cache, per tier.", labels=["tier"]
        )
        stored.add_metric(["memory"], float(stats.get("memory_bytes", 0)))
        stored.add_metric(["disk"], float(stats.get("disk_bytes", 0)))
        yield stored
        entries = GaugeMetricFamily("dispa_cache_entries", "Responses held by the cache.")
        entries.add_metric([], float(stats.get("entries", 0)))
        yield entries


def _host_of(request) -> str:
    """The host a request's entries are keyed under: its Host header as sent (the port
    too), else the host the parser found (an HTTP/2 :authority, an absolute-form target)."""
    return request.host_header.decode("latin-1") if request.host_header else request.host


@functools.lru_cache(maxsize=8)
def _field_names(names: tuple[str, ...]) -> tuple[bytes, ...]:
    """cache.targeted_fields as the byte strings header names are compared with."""
    return tuple(name.encode("ascii") for name in names)
