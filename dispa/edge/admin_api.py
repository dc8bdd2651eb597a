"""The edge's own part of its admin API: its status, metrics, rate limits and cache."""

from __future__ import annotations

from aiohttp import web

from dispa.admin.app import REGISTRY_KEY
from dispa.observe.metrics import CONTENT_TYPE, render


def edge_routes(node) -> list:
    async def node_status(request: web.Request) -> web.Response:
        return web.json_response(node.local_status())

    async def metrics(request: web.Request) -> web.Response:
        body = render(request.app[REGISTRY_KEY]) + render(node.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})

    async def rate_limits(request: web.Request) -> web.Response:
        return web.json_response(node.gateway.quota.statistics())

    async def cache(request: web.Request) -> web.Response:
        store = node.gateway.cache
        if store is None:
            return web.json_response({"error": "this edge has no cache"}, status=404)
        return web.json_response(store.statistics())

    async def certificates(request: web.Request) -> web.Response:
        # The ACME state this edge serves; the leader waits for it before validation.
        return web.json_response(node.acme_tls.status())

    return [
        web.get("/api/v1/certificates", certificates),
        web.get("/metrics", metrics),
        web.get("/api/v1/node", node_status),
        web.get("/api/v1/ratelimits", rate_limits),
        web.get("/api/v1/cache", cache),
    ]
