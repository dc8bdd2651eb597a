"""After the workload: wait until every node holds the latest revision, then read back
what each holds, through the same admin API and listeners an operator would use."""

from __future__ import annotations

import asyncio
import contextlib
import time

from chaos import layout
from chaos.nodes import Nodes

SETTLE_TIMEOUT = 30.0


async def settle_and_read(nodes: Nodes) -> dict:
    """Wait (bounded) until every core and edge holds the same latest revision, then read
    back every core's history and every edge's state."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    await nodes.wait_leader(SETTLE_TIMEOUT)
    while True:
        statuses = await nodes.core_statuses()
        revisions = {s["revision"] for s in statuses.values() if s}
        applied = {s["applied_revision"] for s in statuses.values() if s}
        edges = {
            e: await nodes.get_json(nodes.admin(e), "/api/v1/node") for e in nodes.names("edge")
        }
        edge_revisions = {s["applied_revision"] for s in edges.values() if s}
        answered = all(statuses.values()) and all(edges.values())
        if answered and len(revisions | applied | edge_revisions) == 1:
            break
        if time.monotonic() >= deadline:
            break  # the checkers will say who is behind
        await asyncio.sleep(0.3)
    histories = {core: await _history(nodes, core) for core in nodes.names("core")}
    edge_state = {}
    for edge in nodes.names("edge"):
        status = await nodes.get_json(nodes.admin(edge), "/api/v1/node") or {}
        edge_state[edge] = {
            "revision": status.get("applied_revision"),
            "marker": await _marker(nodes, edge),
        }
    longest = max(histories.values(), key=len, default={})
    final_revision = max(longest, default=0)
    return {
        "histories": histories,
        "edges": edge_state,
        "final_revision": final_revision,
        "final_marker": longest.get(final_revision),
    }


async def _history(nodes: Nodes, core: str) -> dict[int, str]:
    """{revision: marker} as this core holds it, read through its admin API."""
    answer = await nodes.get_json(nodes.admin(core), "/api/v1/config/history")
    if answer is None:
        return {}
    held = {}
    for entry in answer["history"]:
        one = await nodes.get_json(nodes.admin(core), f"/api/v1/config/{entry['revision']}")
        if one is not None:
            held[entry["revision"]] = _marker_of(one["config"])
    return held


def _marker_of(config: dict) -> str | None:
    for route in config.get("routes", []):
        if route.get("name") == "marker":
            return route["direct_response"]["body"]
    return None


async def _marker(nodes: Nodes, edge: str) -> str | None:
    with contextlib.suppress(Exception):
        async with nodes.session.get(f"http://{nodes.listener(edge)}{layout.MARKER_PATH}") as reply:
            return await reply.text() if reply.status == 200 else None
    return None
