"""What cores serve to edges: the watch stream, edge reports, quota leases and purges.

Edges are not Raft members: they follow a core over HTTP. The watch stream sends the
committed config (a snapshot, then deltas) and cache purges as they commit, with
heartbeats in between; see ``watch_protocol.py`` for the frames.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from aiohttp import web

from dispa.admin.guard import accepts
from dispa.cluster.bridge import CommandFailed
from dispa.cluster.purge_urls import purge_url_problem
from dispa.cluster.watch_protocol import CONTENT_TYPE, HEARTBEAT, config_delta, encode_frame
from dispa.config.bounds import load_json
from dispa.proxy.request_target import path_rules_of

# A lease names the window its time falls in: a time further than this from the core's
# clock is refused, or it could move a key's ledger to a future window, where every
# honest node's lease for the current one would be granted nothing.
MAX_LEASE_CLOCK_SKEW = 5.0
# Watch streams served at once; each holds a connection and a task while it lasts.
MAX_WATCH_STREAMS = 1024
# Longest strings a lease or an edge report may carry (they are kept in the cluster state).
MAX_KEY_LENGTH = 4096
MAX_NAME_LENGTH = 256


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

    streams = {"open": 0}
    # The path rules a purge URL is checked with: the core's listeners' (purge_urls.py).
    path_rules = tuple(dict.fromkeys(path_rules_of(one.paths) for one in node.config.listeners))

    async def watch(request: web.Request) -> web.StreamResponse:
        if streams["open"] >= MAX_WATCH_STREAMS:
            return _error(503, f"this core serves {MAX_WATCH_STREAMS} watch streams already")
        streams["open"] += 1
        try:
            return await _watch(request)
        finally:
            streams["open"] -= 1

    async def _watch(request: web.Request) -> web.StreamResponse:
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
            body = await request.json(loads=load_json)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise web.HTTPBadRequest(reason="send a JSON object")
        return body

    @accepts("application/json")
    async def report_edge(request: web.Request) -> web.Response:
        body = await read_json(request)
        try:
            name, region = str(body["name"]), str(body.get("region", ""))
            admin = str(body.get("admin", ""))
            revision, purge_seq = int(body["revision"]), int(body.get("purge_seq", 0))
        except (KeyError, TypeError, ValueError):
            return _error(400, 'send {"name", "region", "admin", "revision", "purge_seq"}')
        if max(len(name), len(region), len(admin)) > MAX_NAME_LENGTH:
            return _error(400, f"name, region and admin take at most {MAX_NAME_LENGTH} characters")
        try:
            result = await node.store.report_edge(
                name, region, admin, revision, purge_seq, time.time()
            )
        except CommandFailed as failure:
            return _error(503, f"not committed: {failure.reason}")
        return web.json_response(result, status=200 if result.get("ok") else 400)

    @accepts("application/json")
    async def lease_quota(request: web.Request) -> web.Response:
        body = await read_json(request)
        try:
            limit_name, key, lessee = str(body["limit_name"]), str(body["key"]), str(body["node"])
            want, now = int(body["want"]), float(body["now"])
        except (KeyError, TypeError, ValueError):
            return _error(400, 'send {"limit_name", "key", "node", "want", "now"}')
        if len(key) > MAX_KEY_LENGTH or len(lessee) > MAX_NAME_LENGTH:
            return _error(400, "key or node too long")
        # The limit and window are the replicated config's, never the request's: a lessee
        # that named its own could lease past the limit every other node enforces.
        terms = node.store.state.lease_terms(limit_name)
        if terms is None:
            return _error(404, f"no rate limit named '{limit_name[:100]}' in the cluster's config")
        skew = now - time.time()
        if not abs(skew) <= MAX_LEASE_CLOCK_SKEW:
            return _error(
                400,
                f"the lease's time is {skew:+.1f} s from this core's clock (at most "
                f"{MAX_LEASE_CLOCK_SKEW:.0f} s): synchronise the clocks",
            )
        limit, window = terms
        try:
            result = await node.store.lease_quota(limit_name, key, lessee, want, limit, window, now)
        except CommandFailed as failure:
            return _error(503, f"not committed: {failure.reason}")
        return web.json_response(result)

    @accepts("application/json")
    async def purge(request: web.Request) -> web.Response:
        body = await read_json(request)
        urls, tags = body.get("urls", []), body.get("tags", [])
        if not isinstance(urls, list) or not isinstance(tags, list):
            return _error(400, "urls and tags must be lists of strings")
        if not urls and not tags:
            return _error(400, 'nothing to purge: send {"urls": [...]} and/or {"tags": [...]}')
        for index, url in enumerate(urls):
            problem = purge_url_problem(url, path_rules)
            if problem is not None:
                return _error(400, f"urls[{index}]: '{str(url)[:200]}': {problem}")
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
