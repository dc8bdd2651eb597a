"""Clients with sticky sessions.

Each client keeps the session cookie the gateway gave it and sends it with every request
to /sticky, noting which upstream answered (the X-Upstream header). Clients of the cores
go round-robin over every core, so they keep their upstream only if the session table is
replicated; clients of an edge stay on that edge (edges keep sessions locally). A client
whose node does not answer moves on to the next one, as a client behind a load balancer
would.
"""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp

from chaos import layout

REQUEST_TIMEOUT = 3.0


@dataclass(frozen=True)
class StickyRequest:
    client: str
    at: float
    node: str
    status: int
    upstream: str  # who answered; "" when no upstream answered


async def sticky_client(
    span,
    client: str,
    nodes: dict[str, str],
    spread: bool,
    interval: float,
    max_requests: int,
    records,
) -> None:
    """``nodes``: name -> listener address; with ``spread`` each request goes to the next
    node, without it the client stays on the first one that answers."""
    names = list(nodes)
    cookie = ""
    position = 0
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
    # A fresh connection per request: the client must not stay glued to one node by
    # keep-alive, and a killed node must not leave a dead pooled connection behind.
    async with aiohttp.ClientSession(
        timeout=timeout, connector=aiohttp.TCPConnector(force_close=True)
    ) as session:
        for _ in range(max_requests):
            if not span.running():
                return
            node = names[position % len(names)]
            headers = {"Cookie": f"{layout.SESSION_COOKIE}={cookie}"} if cookie else {}
            at = span.now()
            try:
                async with session.get(f"http://{nodes[node]}/sticky", headers=headers) as reply:
                    await reply.read()
                    morsel = reply.cookies.get(layout.SESSION_COOKIE)
                    if morsel is not None and morsel.value:
                        cookie = morsel.value
                    upstream = reply.headers.get("x-upstream", "")
                    records.append(StickyRequest(client, at, node, reply.status, upstream))
                    if spread:
                        position += 1
            except (aiohttp.ClientError, TimeoutError, OSError):
                records.append(StickyRequest(client, at, node, 0, ""))
                position += 1  # that node is gone for now: try the next one
            await span.pause(interval)
