"""The admin HTTP API: health, readiness, Prometheus metrics, config and upstream state.

Served by aiohttp on its own address, apart from the data plane: the admin sees the
gateway only through an ``AdminView``, and a failing admin handler answers 500 without
touching traffic.
"""

from __future__ import annotations

import logging

from aiohttp import web
from prometheus_client import CollectorRegistry

from dispa.admin.access import AdminAccess
from dispa.admin.guard import SMALL_BODY, admin_guard
from dispa.admin.view import AdminView
from dispa.observe.metrics import CONTENT_TYPE, build_registry, render

logger = logging.getLogger(__name__)

VIEW_KEY = web.AppKey("view", AdminView)
REGISTRY_KEY = web.AppKey("registry", CollectorRegistry)

# Admin requests are short reads; on close, do not hold the gateway's shutdown for long.
SHUTDOWN_TIMEOUT = 2.0


@web.middleware
async def json_errors(request: web.Request, handler) -> web.StreamResponse:
    """Every error is JSON; an unexpected exception is logged with its traceback and
    answered as a bare 500, so internals never reach the client."""
    try:
        return await handler(request)
    except web.HTTPException as error:
        if error.status < 400:
            raise
        headers = {"Allow": error.headers["Allow"]} if "Allow" in error.headers else None
        return web.json_response(
            {"error": error.reason.lower()}, status=error.status, headers=headers
        )
    except Exception:
        logger.exception("admin handler failed: %s %s", request.method, request.path)
        return web.json_response({"error": "internal error"}, status=500)


async def healthz(request: web.Request) -> web.Response:
    # Liveness only: answering at all means the process and its loop are running.
    return web.Response(text="ok")


async def readyz(request: web.Request) -> web.Response:
    if request.app[VIEW_KEY].is_ready():
        return web.Response(text="ready")
    return web.Response(text="not ready", status=503)


async def metrics(request: web.Request) -> web.Response:
    body = render(request.app[REGISTRY_KEY])
    # Set as a raw header: aiohttp's content_type argument rejects the charset parameter.
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


async def config(request: web.Request) -> web.Response:
    return web.json_response(request.app[VIEW_KEY].config_document())


async def upstreams(request: web.Request) -> web.Response:
    return web.json_response(request.app[VIEW_KEY].upstreams_document())


def build_admin_app(
    view: AdminView, extra_routes=(), collectors=(), access: AdminAccess | None = None
) -> web.Application:
    """The admin app; ``extra_routes`` (aiohttp RouteDefs, e.g. a core node's cluster API)
    take precedence over a default route with the same method and path; ``collectors``
    add Prometheus families to /metrics (e.g. discovery's). ``access`` says which Host
    and Origin it answers (``guard.py``); by default its own loopback address only."""
    access = access or AdminAccess.for_address("127.0.0.1:0")
    # Routes that take more raise the limit for themselves (guard.accepts).
    app = web.Application(
        middlewares=[json_errors, admin_guard(access)], client_max_size=SMALL_BODY
    )
    app[VIEW_KEY] = view
    app[REGISTRY_KEY] = build_registry(view)
    for collector in collectors:
        app[REGISTRY_KEY].register(collector)
    app.router.add_routes(extra_routes)
    taken = {(route.method, route.path) for route in extra_routes}
    defaults = [
        web.get("/healthz", healthz),
        web.get("/readyz", readyz),
        web.get("/metrics", metrics),
        web.get("/api/v1/config", config),
        web.get("/api/v1/upstreams", upstreams),
    ]
    app.router.add_routes([r for r in defaults if (r.method, r.path) not in taken])
    return app


class AdminServer:
    """A running admin API; ``port`` is the bound port (useful when asked for port 0)."""

    def __init__(self, runner: web.AppRunner, port: int) -> None:
        self._runner = runner
        self.port = port

    async def close(self) -> None:
        await self._runner.cleanup()


async def start_admin(
    view: AdminView, host: str, port: int, extra_routes=(), collectors=(), admin_config=None
) -> AdminServer:
    """``admin_config``: the ``admin`` section of the node's file (its allowed hosts and
    origins); without it, only the admin's own address and loopback names are answered."""
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    access = (
        AdminAccess.from_config(admin_config)
        if admin_config is not None
        else AdminAccess.for_address(address)
    )
    # No access log: scrapes and probes every few seconds would drown the gateway's own.
    runner = web.AppRunner(
        build_admin_app(view, extra_routes, collectors, access),
        access_log=None,
        shutdown_timeout=SHUTDOWN_TIMEOUT,
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, reuse_address=True)
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    bound_port = runner.addresses[0][1]
    return AdminServer(runner, bound_port)
