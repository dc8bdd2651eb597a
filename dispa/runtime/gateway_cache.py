"""The response cache of a single gateway (``dispa run``): the edge's cache, wired alike.

A config with a route marked ``cache: true`` gets an ``EdgeCache`` (dispa/edge/edge_cache.py)
built from the file's ``cache`` section and handed to the data plane as ``gateway.cache``,
as an edge does. No such route, no cache: the data plane then pays nothing for caching.

Once made, the cache stays for the life of the process. Exchanges hold on to it while a
fetch is in flight (others wait on that fetch), so a reload never swaps it: it gets the
new settings (``EdgeCache.reconfigure``: new sizes keep what still fits) and the new
listeners' path rules (what purge URLs are normalised with). A config that no longer
caches any route empties it. A config's disk directory is made before the config goes
live (``check``: a bad one refuses the config), the cache set up once it is (``apply``).

With ``--workers N`` each worker process has a cache of its own, of the configured sizes;
a disk tier then lives in ``<disk_dir>/worker-<index>``, since two stores must never
share a directory (each indexes, evicts and deletes the files it finds there).
"""

from __future__ import annotations

import logging
import os

from dispa.config.schema import CacheSettings
from dispa.config.schema import Gateway as GatewayConfig
from dispa.edge.edge_cache import EdgeCache
from dispa.private_files import make_private_dir
from dispa.proxy.request_target import path_rules_of
from dispa.proxy.server import Gateway, ListenError

log = logging.getLogger("dispa.cache")


class GatewayCache:
    """Makes, reconfigures and purges ``gateway.cache`` for a single gateway process."""

    def __init__(self, gateway: Gateway, worker_index: int | None = None) -> None:
        self.gateway = gateway
        self.worker_index = worker_index
        self.path_rules = ()

    @property
    def cache(self) -> EdgeCache | None:
        return self.gateway.cache

    def check(self, config: GatewayConfig) -> None:
        """Before ``config`` goes live: ListenError, so that it is refused with nothing
        changed, when its cache's disk directory cannot be made."""
        if not any(route.cache for route in config.routes):
            return
        settings = self._settings_of_this_process(config.cache)
        if settings.disk_dir and settings.disk_size > 0:
            try:
                make_private_dir(settings.disk_dir)
            except OSError as error:
                raise ListenError(
                    f"cache.disk_dir: cannot use {settings.disk_dir}: {error.strerror or error}"
                ) from None

    def apply(self, config: GatewayConfig) -> None:
        """Once ``config`` is live: make the cache when a route first caches, else give it
        the new settings (it keeps what still fits), or empty it when none caches."""
        self.path_rules = tuple(path_rules_of(listener.paths) for listener in config.listeners)
        cached_routes = sum(1 for route in config.routes if route.cache)
        cache = self.gateway.cache
        if not cached_routes:
            if cache is not None and len(cache.entries):
                dropped = cache.purge_all()
                log.info("no route caches any more: %d cached responses dropped", dropped)
            return
        settings = self._settings_of_this_process(config.cache)
        try:
            if cache is None:
                self.gateway.cache = EdgeCache(settings, self.path_rules)
                log.info(
                    "response cache on for %d route(s): %s in memory%s",
                    cached_routes,
                    _size(settings.memory),
                    f", {_size(settings.disk_size)} in {settings.disk_dir}"
                    if settings.disk_dir
                    else "",
                )
            else:
                cache.reconfigure(settings, self.path_rules)
        except OSError as error:  # the disk tier failed between check and now: rare
            log.error(
                "the response cache %s: %s",
                "keeps its previous settings" if cache is not None else "is off",
                error,
            )

    def _settings_of_this_process(self, settings: CacheSettings) -> CacheSettings:
        if self.worker_index is None or not settings.disk_dir:
            return settings
        own = os.path.join(settings.disk_dir, f"worker-{self.worker_index}")
        return settings.model_copy(update={"disk_dir": own})

    # ---------------------------------------------------------------- purges

    def purge(self, urls: list[str], tags: list[str]) -> int:
        """Drop what is stored for these URLs and tags; the number of responses dropped."""
        cache = self.gateway.cache
        if cache is None:
            return 0  # nothing was ever stored
        removed = sum(cache.purge_url(url) for url in urls)
        removed += sum(cache.purge_tag(tag) for tag in tags)
        log.info("purged %d cached responses (%d urls, %d tags)", removed, len(urls), len(tags))
        return removed

    def purge_all(self) -> int:
        cache = self.gateway.cache
        return cache.purge_all() if cache is not None else 0

    def statistics(self) -> dict | None:
        cache = self.gateway.cache
        return cache.statistics() if cache is not None else None


def _size(count: int) -> str:
    for unit, scale in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if count >= scale and count % scale == 0:
            return f"{count // scale} {unit}"
    return f"{count} bytes"
