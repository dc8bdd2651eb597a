"""GET /api/v1/ai on the admin API: the online-learning module's state, as JSON."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web


def ai_routes(gateway_ai) -> list[web.RouteDef]:
    async def ai_state(request: web.Request) -> web.Response:
        return web.json_response(gateway_ai.document())

    return [web.get("/api/v1/ai", ai_state)]


def workers_ai_routes(published: Callable[[], list[dict]]) -> list[web.RouteDef]:
    """With worker processes each worker learns and steers its own balancers: the
    supervisor shows what each one last published (up to a second old)."""

    async def ai_state(request: web.Request) -> web.Response:
        workers = [document.get("ai") for document in published()]
        workers = [document for document in workers if document is not None]
        enabled = any(document.get("enabled") for document in workers)
        return web.json_response({"enabled": enabled, "workers": workers})

    return [web.get("/api/v1/ai", ai_state)]
