"""What cores serve to edges: the watch stream, edge reports, quota leases and purges.

Edges are not Raft members: they follow a core over HTTP. The watch stream sends the
committed config (a snapshot, then deltas) and cache purges as they commit, with
heartbeats in between; see ``watch_protocol.py`` for the frames.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from urllib.parse import urlsplit

from aiohttp import web

from dispa.cluster.bridge import CommandFailed
from dispa.cluster.watch_protocol import CONTENT_TYPE, HEARTBEAT, config_delta, encode_frame


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _int_param(request: web.Request, name: str, default: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise web.HTTPBadRequest(reason=f"query parameter {name} must be a whole number") from None


def config_message(state, have_revision: int) -> dict | None:
    """The message that brings an edge holding ``have_revision`` to the current config."""
    entry = state.history.get(str(state.revision))
    if entry is None or state.revision <= have_revision:
        return None  # nothing newer (a lagging core never sends an edge backwards)
    base = state.history.get(str(have_revision)) if have_revision > 0 else None
    if base is not None and have_revision < state.revision:
        return {
            "type": "delta",
            "base": have_revision,
            "revision": state.revision,
            "committed_at": entry["time"],
            **config_delta(base["config"], entry["config"]),
        }
    return {
        "type": "snapshot",
        "revision": state.revision,
        "config": entry["config"],
        "committed_at": entry["time"],
    }


def purge_messages(state, have_seq: int) -> list[dict]:
    if have_seq < 0:
        # The edge knows of no purge: whatever it may hold (a disk cache) is suspect.
        return [{"type": "purge_all", "seq": state.purge_seq}]
    missed = state.purges_after(have_seq)
    if missed is None:
        return [{"type": "purge_all", "seq": state.purge_seq}]
    return [
        {"type": "purge", "seq": p["seq"], "urls": p["urls"], "tags": p["tags"]} for p in missed
    ]


def watch_routes(node) -> list:
    """aiohttp route definitions bound to one ``CoreNode``."""

    async def watch(request: web.Request) -> web.StreamResponse:
        revision = _int_param(request, "from", 0)
        purge_seq = _int_param(request, "purges", -1)
        acme_seq = _int_param(request, "acme", -1)  # what ACME state the edge serves
        response = web.StreamResponse(headers={"Content-Type": CONTENT_TYPE})
        await response.prepare(request)
        last_sent = 0.0
        with contextlib.suppress(ConnectionResetError, asyncio.CancelledError):
            while not node.stopping.is_set():
                state = node.store.state
                frames = []
                message = config_message(state, revision)
                if message is not None:
                    frames.append(message)
                    revision = message["revision"]
                for purge in purge_messages(state, purge_seq):
                    frames.append(purge)
                    purge_seq = purge["seq"]
                if state.acme.seq > acme_seq:
                    frames.append({"type": "acme", **state.acme.served()})
                    acme_seq = state.acme.seq
                now = time.monotonic()
                if not frames and now - last_sent >= HEARTBEAT:
                    frames.append(
                        {
                            "type": "heartbeat",
                            "revision": state.revision,
                            "purge_seq": state.purge_seq,
                            "has_quorum": node.store.status()["has_quorum"],
                            "time": time.time(),
                        }
                    )
                if frames:
                    await response.write(b"".join(encode_frame(f) for f in frames))
                    last_sent = now
                await node.wait_changed(HEARTBEAT - (time.monotonic() - last_sent))
        return response

    async def read_json(request: web.Request) -> dict:
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise web.HTTPBadRequest(reason="send a JSON object")
        return body

    async def report_edge(request: web.Request) -> web.Response:
        body = await read_json(request)
        try:
            name, region = str(body["name"]), str(body.get("region", ""))
            admin = str(body.get("admin", ""))
            revision, purge_seq = int(body["revision"]), int(body.get("purge_seq", 0))
        except (KeyError, TypeError, ValueError):
            return _error(400, 'send {"name", "region", "admin", "revision", "purge_seq"}')
        try:
            result = await node.store.report_edge(
                name, region, admin, revision, purge_seq, time.time()
            )
        except CommandFailed as failure:
            return _error(503, f"not committed: {failure.reason}")
        return web.json_response(result, status=200 if result.get("ok") else 400)

    async def lease_quota(request: web.Request) -> web.Response:
        body = await read_json(request)
        try:
            args = (
                str(body["limit_name"]),
                str(body["key"]),
                str(body["node"]),
                int(body["want"]),
                int(body["limit"]),
                float(body["window"]),
                float(body["now"]),
            )
        except (KeyError, TypeError, ValueError):
            return _error(
                400, 'send {"limit_name", "key", "node", "want", "limit", "window", "now"}'
            )
        try:
            result = await node.store.lease_quota(*args)
        except CommandFailed as failure:
            return _error(503, f"not committed: {failure.reason}")
        return web.json_response(result)

    async def purge(request: web.Request) -> web.Response:
        body = await read_json(request)
        urls, tags = body.get("urls", []), body.get("tags", [])
        if not isinstance(urls, list) or not isinstance(tags, list):
            return _error(400, "urls and tags must be lists of strings")
        if not urls and not tags:
            return _error(400, 'nothing to purge: send {"urls": [...]} and/or {"tags": [...]}')
        for index, url in enumerate(urls):
            parts = urlsplit(str(url))
            if parts.scheme not in ("http", "https") or not parts.netloc:
                return _error(400, f"urls[{index}]: '{url}' is not an absolute http(s) URL")
        try:
            result = await node.store.purge_cache(
                [str(u) for u in urls], [str(t) for t in tags], time.time()
            )
        except CommandFailed as failure:
            return _error(503, f"not committed: {failure.reason}")
        return web.json_response(result, status=200 if result.get("ok") else 400)

    return [
        web.get("/api/v1/watch", watch),
        web.post("/api/v1/edges/report", report_edge),
        web.post("/api/v1/quota/lease", lease_quota),
        web.post("/api/v1/cache/purge", purge),
    ]
