"""A single gateway's cache in its admin API (``dispa run``).

- ``GET /api/v1/cache``: the cache's statistics (404 while no route caches). With
  ``--workers N``: ``{"workers": [statistics or null, ...]}``, one per worker.
- ``POST /api/v1/cache/purge``: the body a core takes (what ``dispa purge`` sends),
  ``{"urls": [...], "tags": [...]}``, refused alike (400) when it names nothing or a URL
  under which nothing can be stored (``dispa.cluster.purge_urls``). Applied at once to
  this gateway's cache: ``{"ok": true, "removed": N}``. With workers the supervisor logs
  it for them (``worker_purges.py``) and answers once each has applied it, within
  ``WORKERS_WAIT`` seconds; ``pending_workers`` counts those that had not by then (they
  apply it at their next tick, or when they start again).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable

from aiohttp import web

from dispa.admin.guard import accepts
from dispa.cluster.purge_urls import purge_url_problem
from dispa.config.bounds import load_json
from dispa.proxy.request_target import PathRules
from dispa.runtime.gateway_cache import GatewayCache
from dispa.runtime.worker_purges import PurgeLog

# How long the supervisor waits for every worker to apply a purge before it answers.
WORKERS_WAIT = 5.0
_POLL = 0.1


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def _purge_request(
    request: web.Request, rules: Iterable[PathRules]
) -> tuple[list[str], list[str]] | web.Response:
    """The URLs and tags to purge, or the 400 answer saying what is wrong."""
    try:
        body = await request.json(loads=load_json)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return _error(400, "send a JSON object")
    urls, tags = body.get("urls", []), body.get("tags", [])
    if not isinstance(urls, list) or not isinstance(tags, list):
        return _error(400, "urls and tags must be lists of strings")
    if not urls and not tags:
        return _error(400, 'nothing to purge: send {"urls": [...]} and/or {"tags": [...]}')
    rules = tuple(rules)
    for index, url in enumerate(urls):
        problem = purge_url_problem(url, rules)
        if problem is not None:
            return _error(400, f"urls[{index}]: '{str(url)[:200]}': {problem}")
    return [str(url) for url in urls], [str(tag) for tag in tags]


def cache_routes(gateway_cache: GatewayCache) -> list:
    """The routes of a gateway that runs in this process."""

    async def statistics(request: web.Request) -> web.Response:
        document = gateway_cache.statistics()
        if document is None:
            return _error(404, "no route of this gateway caches (routes[].cache)")
        return web.json_response(document)

    @accepts("application/json")
    async def purge(request: web.Request) -> web.Response:
        parsed = await _purge_request(request, gateway_cache.path_rules)
        if isinstance(parsed, web.Response):
            return parsed
        removed = gateway_cache.purge(*parsed)
        return web.json_response({"ok": True, "removed": removed})

    return [web.get("/api/v1/cache", statistics), web.post("/api/v1/cache/purge", purge)]


def workers_cache_routes(
    purge_log: PurgeLog,
    published: Callable[[], list[dict]],
    workers: int,
    path_rules: Callable[[], Iterable[PathRules]],
) -> list:
    """The supervisor's routes: its workers each have a cache, it has none."""

    async def statistics(request: web.Request) -> web.Response:
        return web.json_response({"workers": [doc.get("cache") for doc in published()]})

    @accepts("application/json")
    async def purge(request: web.Request) -> web.Response:
        parsed = await _purge_request(request, path_rules())
        if isinstance(parsed, web.Response):
            return parsed
        seq = purge_log.append(*parsed)
        deadline = time.monotonic() + WORKERS_WAIT
        while True:
            applied = [
                doc["cache_purge"]
                for doc in published()
                if (doc.get("cache_purge") or {}).get("seq", 0) >= seq
            ]
            if len(applied) >= workers or time.monotonic() >= deadline:
                break
            await asyncio.sleep(_POLL)
        removed = sum(done["removed"].get(seq, 0) for done in applied)
        answer = {"ok": True, "removed": removed}
        if len(applied) < workers:
            answer["pending_workers"] = workers - len(applied)
        return web.json_response(answer)

    return [web.get("/api/v1/cache", statistics), web.post("/api/v1/cache/purge", purge)]
