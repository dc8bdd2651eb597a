"""The CLI's side of the admin API: apply, status, members, backup, restore.

Each function prints what an operator needs and returns an exit status; failures are
one plain sentence (the server's error and any config problems), never a traceback.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

import aiohttp

from dispa.config.bounds import load_json
from dispa.config.errors import ConfigError
from dispa.config.load import parse_text
from dispa.private_files import make_private_dir, write_private_file

TIMEOUT = aiohttp.ClientTimeout(total=15)
# The admin API takes writes only with the content type each route documents.
YAML = {"Content-Type": "application/yaml"}  # a config file: YAML, of which JSON is a subset
JSON = {"Content-Type": "application/json"}
EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT = 0, 1, 2


class AdminUnreachable(Exception):
    pass


def _base(admin: str) -> str:
    admin = admin.rstrip("/")
    return admin if admin.startswith(("http://", "https://")) else f"http://{admin}"


async def _call(method: str, admin: str, path: str, **kwargs) -> tuple[int, object]:
    url = _base(admin) + path
    try:
        async with (
            aiohttp.ClientSession(timeout=TIMEOUT) as session,
            session.request(method, url, **kwargs) as response,
        ):
            if response.content_type == "application/json":
                return response.status, await response.json()
            return response.status, await response.text()
    except (aiohttp.ClientError, TimeoutError) as error:
        raise AdminUnreachable(
            f"cannot reach the admin API at {url}: {error or 'timed out'}"
        ) from None


def _fail(status: int, body: object) -> int:
    if isinstance(body, dict):
        print(f"error ({status}): {body.get('error', body)}", file=sys.stderr)
        for problem in body.get("errors", []):
            print(f"  {problem}", file=sys.stderr)
    else:
        print(f"error ({status}): {body}", file=sys.stderr)
    return EXIT_BAD_INPUT if status == 400 else EXIT_FAILURE


def run(coroutine) -> int:
    try:
        return asyncio.run(coroutine)
    except AdminUnreachable as error:
        print(str(error), file=sys.stderr)
        return EXIT_FAILURE


async def apply(admin: str, path: str, dry_run: bool, expected: int | None) -> int:
    try:
        text = Path(path).read_text()
        parse_text(text, path)  # a YAML syntax error is reported here, with its line
    except OSError as error:
        print(f"{path}: cannot read: {error.strerror}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except ConfigError as error:
        print(error.render(), file=sys.stderr)
        return EXIT_BAD_INPUT
    status, body = await _call(
        "POST", admin, "/api/v1/config/dry-run", data=text.encode(), headers=YAML
    )
    if status != 200:
        return _fail(status, body)
    print(body["diff"] or "(no change)", end="" if body["diff"] else "\n")
    if dry_run:
        print(f"dry run: nothing applied (current revision {body['revision']})")
        return EXIT_OK
    headers = {"If-Match": str(expected if expected is not None else body["revision"]), **YAML}
    status, body = await _call("PUT", admin, "/api/v1/config", data=text.encode(), headers=headers)
    if status != 200:
        return _fail(status, body)
    if body.get("unchanged"):
        print(f"unchanged: revision {body['revision']} already holds this config")
    else:
        print(f"applied: revision {body['revision']}")
    return EXIT_OK


async def status(admin: str, as_json: bool) -> int:
    code, body = await _call("GET", admin, "/api/v1/cluster")
    if code != 200:
        return _fail(code, body)
    if as_json:
        print(json.dumps(body, indent=2))
        return EXIT_OK
    print(
        f"revision {body['revision']}  leader {body['leader']}  term {body['term']}  "
        f"commit index {body['commit_index']}  quorum {'yes' if body['has_quorum'] else 'NO'}"
    )
    print(f"{'core':<12}{'region':<10}{'state':<11}{'applied':>8}{'lag':>5}  admin")
    for core in body["cores"]:
        if core.get("reachable"):
            print(
                f"{core['id']:<12}{core['region']:<10}{core['state']:<11}"
                f"{core['applied_revision']:>8}{core['lag']:>5}  {core['admin']}"
            )
        else:
            print(
                f"{core['id']:<12}{core['region']:<10}{'unreachable':<11}{'-':>8}{'-':>5}"
                f"  {core['admin']}"
            )
    edges = body.get("edges", [])
    if edges:
        print(f"{'edge':<12}{'region':<10}{'reported':<11}{'applied':>8}{'lag':>5}  admin")
        for edge in edges:
            print(
                f"{edge['name']:<12}{edge['region']:<10}"
                f"{str(edge['last_report_ago']) + ' s ago':<11}"
                f"{edge['applied_revision']:>8}{edge['lag']:>5}  {edge['admin']}"
            )
    return EXIT_OK


async def purge(admin: str, urls: list[str], tags: list[str]) -> int:
    code, body = await _call(
        "POST", admin, "/api/v1/cache/purge", json={"urls": urls, "tags": tags}
    )
    if code != 200:
        return _fail(code, body)
    if "removed" in body:  # a single gateway's admin: it purged its own cache at once
        pending = body.get("pending_workers")
        print(
            f"purged on the gateway: removed {body['removed']} cached responses "
            f"({len(urls)} urls, {len(tags)} tags)"
            + (f"; {pending} worker(s) still to apply it" if pending else "")
        )
        return EXIT_OK
    print(
        f"purge {body['seq']} committed ({len(urls)} urls, {len(tags)} tags); "
        "edges apply it from their watch stream"
    )
    return EXIT_OK


async def members_add(admin: str, node_id: str, raft: str, admin_of_new: str, region: str) -> int:
    payload = {"id": node_id, "raft": raft, "admin": admin_of_new, "region": region}
    code, body = await _call("POST", admin, "/api/v1/members", json=payload)
    if code != 200:
        return _fail(code, body)
    print(f"added core {node_id} ({raft})")
    return EXIT_OK


async def members_remove(admin: str, node_id: str) -> int:
    code, body = await _call("DELETE", admin, f"/api/v1/members/{node_id}", headers=JSON)
    if code != 200:
        return _fail(code, body)
    print(f"removed core {node_id}")
    return EXIT_OK


async def backup(admin: str, output: str) -> int:
    code, body = await _call("GET", admin, "/api/v1/backup")
    if code != 200:
        return _fail(code, body)
    # The whole cluster state, secrets included: 0600, and any folder made for it 0700.
    make_private_dir(Path(output).parent, tighten=False)
    write_private_file(output, json.dumps(body).encode())
    revision = body["state"]["revision"]
    print(
        f"backup of revision {revision} written to {output} "
        f"({time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(body['taken_at']))} UTC)"
    )
    return EXIT_OK


async def restore(admin: str, source: str) -> int:
    try:
        payload = load_json(Path(source).read_text())
    except OSError as error:
        print(f"{source}: cannot read: {error.strerror}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except ValueError as error:  # bad JSON, or nested past the parser's limit
        print(f"{source}: not a Dispa backup (not JSON: {error})", file=sys.stderr)
        return EXIT_BAD_INPUT
    code, body = await _call("POST", admin, "/api/v1/restore", json=restore_payload(payload))
    if code != 200:
        return _fail(code, body)
    print(f"restored: the backup's config is now revision {body['revision']}")
    return EXIT_OK


def restore_payload(backup: object) -> object:
    """What a restore uses of a backup: its current config and its sessions. The rest of the
    history is left out, so a backup with a long history still fits the restore's size."""
    try:
        state = backup["state"]
        revision = state["revision"]
        current = state["history"][str(revision)]
    except (KeyError, TypeError):
        return backup  # not a backup: the core says why
    return {**backup, "state": {**state, "history": {str(revision): current}}}
