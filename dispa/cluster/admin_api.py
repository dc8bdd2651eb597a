"""The cluster part of a core's admin API: config revisions, history, rollback, diff,
cluster status, membership, backup and restore.

Writes are validated here, before they reach the Raft log (a replicated command must
never see bad input), then committed; the answer comes only after the commit. What each
write accepts (content types, body size) is declared with ``accepts``, and enforced with
the Host and Origin checks by the admin guard (``dispa/admin/guard.py``) before it runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time

import aiohttp
import yaml
from aiohttp import web

from dispa.admin.app import REGISTRY_KEY
from dispa.admin.guard import CONFIG_BODY, JSON, JSON_OR_YAML, RESTORE_BODY, accepts
from dispa.cluster.bridge import CommandFailed
from dispa.cluster.config_diff import config_diff
from dispa.cluster.membership_check import add_problem, remove_problem
from dispa.cluster.metrics import cluster_registry
from dispa.config.bounds import load_json
from dispa.config.cluster import SharedConfig
from dispa.config.errors import ConfigError
from dispa.config.file_paths import TEXT_CONTEXT
from dispa.config.load import build_model, parse_text
from dispa.config.schema import Gateway, Listener, split_address
from dispa.config.validate import cross_check
from dispa.discovery.merge import carry_discovered_endpoints
from dispa.observe.metrics import CONTENT_TYPE, render

PEER_TIMEOUT = 1.0
# How long a new core's Raft address has to accept a connection before it is added.
NEW_MEMBER_CONNECT_TIMEOUT = 1.0
_PLACEHOLDER_LISTENER = Listener(name="placeholder", address="127.0.0.1:0")


def validate_shared(data: dict, context: dict | None = None) -> SharedConfig:
    """A shared config, or ConfigError with every problem and its path. ``context``:
    how relative file paths are read (config/file_paths.py); none keeps them."""
    if isinstance(data, dict) and ("listeners" in data or "admin" in data):
        raise ConfigError(
            ["listeners and admin are set per node in its core config, not in the shared config"]
        )
    if isinstance(data, dict) and "cache" in data:
        raise ConfigError(
            [
                "cache is set per node: in each edge's own file (cores do not cache), not in the "
                "shared config"
            ]
        )
    return build_model(SharedConfig, data, cross_checks=_cross_check_shared, context=context)


def _cross_check_shared(shared: SharedConfig) -> list[str]:
    probe = Gateway(
        listeners=(_PLACEHOLDER_LISTENER,),
        upstreams=shared.upstreams,
        routes=shared.routes,
        filters=shared.filters,
        rate_limits=shared.rate_limits,
        regions=shared.regions,
        discovery=shared.discovery,
    )
    return cross_check(probe)


def _error(status: int, message: str, **extra) -> web.Response:
    return web.json_response({"error": message, **extra}, status=status)


def _expected_revision(request: web.Request) -> int | None:
    raw = request.headers.get("If-Match")
    if raw is None:
        return None
    raw = raw.strip().strip('"')
    if not raw.isdigit():
        raise web.HTTPBadRequest(reason="If-Match must be a revision number")
    return int(raw)


def cluster_routes(node) -> list:
    """aiohttp route definitions bound to one ``CoreNode``."""

    async def read_config_body(request: web.Request) -> dict:
        text = await request.text()
        try:
            # Off the event loop: YAML is read in pure Python, and a hostile document of a
            # few KiB (20,000 nested brackets) costs the scanner a second or more before
            # the depth bound stops it, while this loop also serves the data plane.
            data = await asyncio.to_thread(parse_text, text, "request body")
            # A new config refuses relative file paths: it has no folder to find them in.
            return validate_shared(data, TEXT_CONTEXT).model_dump(mode="json", exclude_unset=True)
        except ConfigError as error:
            raise _ConfigRejected(error.problems) from None

    async def commit(pending) -> dict:
        try:
            return await pending
        except CommandFailed as failure:
            raise _NotCommitted(failure) from None

    def write_answer(result: dict) -> web.Response:
        if result.get("ok"):
            return web.json_response(result)
        if result.get("error") == "stale revision":
            return _error(
                409, "the config changed since that revision", revision=result.get("revision")
            )
        if result.get("error") == "unknown revision":
            return _error(404, "no such revision in the history", revision=result.get("revision"))
        return _error(500, result.get("error", "refused"))

    async def get_config(request: web.Request) -> web.Response:
        state = node.store.state
        entry = state.history.get(str(state.revision))
        if entry is None:
            return _error(404, "no config has been applied to this cluster yet", revision=0)
        return web.json_response(
            {
                "revision": state.revision,
                "applied_revision": node.applied_revision,
                "time": entry["time"],
                "author": entry["author"],
                "note": entry["note"],
                "config": entry["config"],
            },
            headers={"ETag": f'"{state.revision}"'},
        )

    @accepts(*JSON_OR_YAML, max_body=CONFIG_BODY)
    async def put_config(request: web.Request) -> web.Response:
        expected = _expected_revision(request)
        config = await read_config_body(request)
        author = request.headers.get("X-Dispa-Author", request.remote or "")
        result = await commit(
            node.store.put_config(
                config, expected, time.time(), author, request.headers.get("X-Dispa-Note", "")
            )
        )
        return write_answer(result)

    @accepts(*JSON_OR_YAML, max_body=CONFIG_BODY)
    async def dry_run(request: web.Request) -> web.Response:
        state = node.store.state
        # As the commit would: discovered endpoints are kept where the config lists none.
        config = carry_discovered_endpoints(state.current_config(), await read_config_body(request))
        diff = config_diff(state.current_config(), config, f"revision {state.revision}", "proposed")
        return web.json_response(
            {
                "revision": state.revision,
                "diff": diff,
                "unchanged": state.current_config() == config,
            }
        )

    async def history(request: web.Request) -> web.Response:
        state = node.store.state
        entries = [
            {"revision": int(rev), "time": e["time"], "author": e["author"], "note": e["note"]}
            for rev, e in sorted(state.history.items(), key=lambda item: int(item[0]))
        ]
        return web.json_response({"revision": state.revision, "history": entries})

    async def one_revision(request: web.Request) -> web.Response:
        revision = request.match_info["revision"]
        entry = node.store.state.history.get(revision)
        if entry is None:
            return _error(404, f"revision {revision} is not in the history")
        return web.json_response({"revision": int(revision), **entry})

    @accepts(*JSON)
    async def rollback(request: web.Request) -> web.Response:
        try:
            body = await request.json(loads=load_json)
            target = int(body["revision"])
        except (ValueError, KeyError, TypeError):
            return _error(400, 'send {"revision": N}, the revision to roll back to')
        result = await commit(
            node.store.rollback_config(
                target, _expected_revision(request), time.time(), request.remote or ""
            )
        )
        return write_answer(result)

    async def diff(request: web.Request) -> web.Response:
        state = node.store.state
        try:
            new = int(request.query.get("to", state.revision))
            old = int(request.query.get("from", new - 1))
        except ValueError:
            return _error(400, "from and to must be revision numbers")
        old_entry, new_entry = state.history.get(str(old)), state.history.get(str(new))
        if new_entry is None or (old_entry is None and old != 0):
            return _error(404, "one of those revisions is not in the history")
        text = config_diff(
            old_entry["config"] if old_entry else None,
            new_entry["config"],
            f"revision {old}",
            f"revision {new}",
        )
        return web.Response(text=text, content_type="text/plain")

    async def node_status(request: web.Request) -> web.Response:
        return web.json_response(node.local_status())

    async def cluster(request: web.Request) -> web.Response:
        local = node.local_status()
        state = node.store.state
        members = dict(state.members)
        statuses = await asyncio.gather(
            *(_peer_status(m["admin"]) for m in members.values()), return_exceptions=True
        )
        cores = []
        for (member_id, member), status in zip(members.items(), statuses, strict=True):
            entry = {"id": member_id, **member}
            if isinstance(status, dict):
                entry.update(
                    reachable=True,
                    state=status["state"],
                    applied_revision=status["applied_revision"],
                    lag=state.revision - status["applied_revision"],
                    term=status["term"],
                    commit_index=status["commit_index"],
                )
            else:
                entry.update(reachable=False)
            cores.append(entry)
        return web.json_response(
            {
                "revision": state.revision,
                "leader": local["leader"],
                "term": local["term"],
                "commit_index": local["commit_index"],
                "has_quorum": local["has_quorum"],
                "answered_by": node.node_id,
                "cores": cores,
                "edges": [
                    {
                        "name": name,
                        "region": edge["region"],
                        "admin": edge["admin"],
                        "applied_revision": edge["revision"],
                        "lag": state.revision - edge["revision"],
                        "purge_seq": edge["purge_seq"],
                        "last_report_ago": round(max(0.0, time.time() - edge["seen"]), 1),
                    }
                    for name, edge in sorted(state.edges.items())
                ],
            }
        )

    # One membership change at a time through this node: each is checked against the
    # membership the previous one left.
    membership_lock = asyncio.Lock()

    @accepts(*JSON)
    async def add_member(request: web.Request) -> web.Response:
        try:
            body = await request.json(loads=load_json)
            member_id, raft = str(body["id"]), str(body["raft"])
            admin, region = str(body["admin"]), str(body.get("region", "default"))
            if not all(split_address(address)[0] for address in (raft, admin)):
                raise ValueError("no host")
        except (ValueError, KeyError, TypeError):
            return _error(
                400,
                'send {"id", "raft", "admin", "region"} of the new core (addresses as host:port)',
            )
        if node.config.cluster.store != "raft":
            return _error(400, "membership changes apply to the embedded Raft store only")
        async with membership_lock:
            members = node.store.state.members
            if member_id in members:
                return _error(409, f"a core named {member_id} is already a member; remove it first")
            links = node.store.raft_links()
            if raft == node.config.raft.address or raft in links:
                return _error(409, f"{raft} is already the Raft address of a member")
            if not await _accepts_connection(raft):
                return _error(
                    409,
                    f"nothing accepts connections on the new core's Raft address {raft}: "
                    "start the core first (with the cluster's secret and peers), then add it",
                )
            problem = add_problem(node.store.raft_links(), new_answers=True)
            if problem is not None:
                return _error(409, f"not added: {problem}")
            await commit(node.store.change_membership(True, raft))
            await commit(node.store.add_member(member_id, raft, admin, region))
        return web.json_response({"ok": True, "added": member_id})

    @accepts(*JSON)  # no body: the content type is still required (see guard.py)
    async def remove_member(request: web.Request) -> web.Response:
        member_id = request.match_info["id"]
        async with membership_lock:
            member = node.store.state.members.get(member_id)
            if member is None:
                return _error(404, f"no core named {member_id}")
            if node.config.cluster.store == "raft":
                problem = remove_problem(
                    node.store.raft_links(), node.config.raft.address, member["raft"]
                )
                if problem is not None:
                    return _error(409, f"{member_id} not removed: {problem}")
                await commit(node.store.change_membership(False, member["raft"]))
            await commit(node.store.remove_member(member_id))
        return web.json_response({"ok": True, "removed": member_id})

    async def backup(request: web.Request) -> web.Response:
        plain = node.store.state.to_plain()
        return web.json_response(
            {"format": 1, "taken_at": time.time(), "taken_from": node.node_id, "state": plain}
        )

    @accepts(*JSON, max_body=RESTORE_BODY)
    async def restore(request: web.Request) -> web.Response:
        try:
            body = await request.json(loads=load_json)
            plain = body["state"]
            config = plain["history"][str(plain["revision"])]["config"]
        except (ValueError, KeyError, TypeError):
            return _error(400, "not a Dispa backup (expected the JSON written by dispa backup)")
        try:
            validate_shared(config)
        except ConfigError as error:
            return _error(400, "the backup holds an invalid config", errors=error.problems)
        result = await commit(node.store.restore_state(plain))
        return write_answer(result)

    extra_metrics = cluster_registry(node)

    async def metrics(request: web.Request) -> web.Response:
        body = render(request.app[REGISTRY_KEY]) + render(extra_metrics)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})

    async def rate_limits(request: web.Request) -> web.Response:
        return web.json_response(node.gateway.quota.statistics())

    handlers = [
        web.get("/metrics", metrics),
        web.get("/api/v1/ratelimits", rate_limits),
        web.get("/api/v1/config", get_config),
        web.put("/api/v1/config", put_config),
        web.post("/api/v1/config/dry-run", dry_run),
        web.get("/api/v1/config/history", history),
        web.get("/api/v1/config/diff", diff),
        web.post("/api/v1/config/rollback", rollback),
        web.get("/api/v1/config/{revision:\\d+}", one_revision),
        web.get("/api/v1/node", node_status),
        web.get("/api/v1/cluster", cluster),
        web.post("/api/v1/members", add_member),
        web.delete("/api/v1/members/{id}", remove_member),
        web.get("/api/v1/backup", backup),
        web.post("/api/v1/restore", restore),
    ]
    return [
        web.RouteDef(r.method, r.path, _translate_errors(r.handler), r.kwargs) for r in handlers
    ]


class _ConfigRejected(Exception):
    def __init__(self, problems: list[str]) -> None:
        self.problems = problems


class _NotCommitted(Exception):
    def __init__(self, failure: CommandFailed) -> None:
        self.failure = failure


def _translate_errors(handler):
    @functools.wraps(handler)  # keeps what the handler accepts (guard.accepts)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except _ConfigRejected as rejected:
            return _error(400, "invalid config", errors=rejected.problems)
        except _NotCommitted as not_committed:
            failure = not_committed.failure
            return _error(
                503, f"not committed: {failure.reason}", maybe_committed=failure.maybe_committed
            )

    return wrapped


async def _accepts_connection(address: str) -> bool:
    """Whether something accepts a TCP connection on ``address`` now (closed at once)."""
    host, port = split_address(address)
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port), NEW_MEMBER_CONNECT_TIMEOUT
        )
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


async def _peer_status(admin_address: str) -> dict:
    timeout = aiohttp.ClientTimeout(total=PEER_TIMEOUT)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.get(f"http://{admin_address}/api/v1/node") as response,
    ):
        return await response.json()


def dump_yaml(config: dict) -> str:
    return yaml.safe_dump(config, sort_keys=False)
