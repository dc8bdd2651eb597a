"""While it waits for every node to serve the challenge answers, the ACME leader asks
each admin address the cluster state holds, edges' included: an address an edge reported
may answer anything. A body nested past the parser's limit counts as a node that cannot
be asked (as bad JSON does), never a RecursionError that ends the ACME pass."""

from __future__ import annotations

import time
from types import SimpleNamespace

from aiohttp import web

from dispa.cluster.acme_manager import AcmeManager
from dispa.cluster.state import ClusterState


async def test_a_deep_answer_from_a_reported_admin_is_a_node_that_cannot_be_asked() -> None:
    async def certificates(request: web.Request) -> web.Response:
        return web.Response(body=b"[" * 100_000, content_type="application/json")

    app = web.Application()
    app.router.add_get("/api/v1/certificates", certificates)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    try:
        state = ClusterState()
        state.report_edge("hostile", "eu", f"127.0.0.1:{port}", 1, 0, time.time())
        manager = AcmeManager(SimpleNamespace(store=SimpleNamespace(state=state)))
        started = time.monotonic()
        await manager._wait_published(1)
        assert time.monotonic() - started < 2  # answered at once, not waited out
    finally:
        await runner.cleanup()
