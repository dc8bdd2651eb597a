"""The external store: the cluster state kept in an etcd cluster (``cluster: {store: etcd}``).

Key layout under the prefix P (``/dispa`` by default). Values are JSON, except the revision:

    P/config/revision                   the current config revision, in decimal ("42")
    P/config/history/{revision:012d}    {"config", "time", "author", "note"}; the last 100
    P/members/{id}                      {"raft", "admin", "region"} of a core
    P/quota/{limit}/{key}               {"window", "limit", "leases": {node: tokens}}: the ledger
                                        of the current window, on an etcd lease that ends two
                                        windows after the window starts
    P/sessions/{upstream}/{session}     [endpoint, expires_at], on an etcd lease for the ttl
    P/purges/seq                        the seq of the last cache purge, in decimal ("7")
    P/purges/{seq:012d}                 {"seq", "urls", "tags", "time"}; the last 1000
    P/edges/{name}                      {"region", "admin", "revision", "purge_seq", "seen"}
                                        of an edge, as it last reported

Names inside keys are percent-encoded, so a "/" in a rate-limit key cannot split the path.

The semantics are those of the Raft store, and the results the same dicts, because the
commands are the same pure ``ClusterState`` methods:

- A write reads what it needs, runs the ``ClusterState`` command on a small state built from
  it, and writes the outcome in one transaction guarded by the ``mod_revision`` of what it
  read. A lost race reads again and runs the command again (a bounded number of times): a
  stale ``expected_revision`` is then refused with the current revision, and two writers
  without one both succeed, one revision after the other, never forking the history.
- A purge takes the next seq by compare-and-set on ``P/purges/seq``, so purges from several
  cores never share a seq; the same transaction drops the purges beyond the last 1000.
- Reads are local: ``state`` is a mirror fed by a watch on the prefix, resumed from the last
  etcd revision seen after a disconnect, reloaded whole when that revision was compacted.
  A write returns once the mirror holds it (or after a bounded wait), so a core reads its
  own writes, as with Raft. The ``on_applied`` hook is called when a config revision is
  complete in the mirror, and when new purges arrived (so edge watches send them at once),
  as the Raft store calls it.
- Expiry is etcd's: sessions and ledgers carry leases, one lease per second of expiry shared
  by every key expiring in that second, so ``expire_sessions`` has nothing left to do.
- The etcd cluster's membership is managed in etcd; the members keys only list the cores.
- A failure raises ``CommandFailed``; ``maybe_committed`` is True when a write was sent and
  no answer came back.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import copy
import json
import logging
import math
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote, unquote, urlsplit

import aetcd
import grpc
from aetcd import transactions as txn

from dispa.cluster.bridge import CommandFailed
from dispa.cluster.state import PURGE_LIMIT, ClusterState
from dispa.config.bounds import load_json

log = logging.getLogger("dispa.etcd")

T = TypeVar("T")

# Writers of one key in this process take turns (see _KeyedLocks), so these bound only the
# races with other cores.
CONFIG_ATTEMPTS = 10
LEDGER_ATTEMPTS = 20
PURGE_ATTEMPTS = 20
# Compares in one transaction; etcd refuses more than --max-txn-ops (128 by default).
TXN_COMPARES = 64
STATUS_INTERVAL = 2.0
WATCH_RETRY_MAX = 2.0

_CHANNEL_OPTIONS = {
    # Reconnect soon after etcd is back, instead of gRPC's backoff of up to two minutes.
    "grpc.initial_reconnect_backoff_ms": 200,
    "grpc.min_reconnect_backoff_ms": 200,
    "grpc.max_reconnect_backoff_ms": 2000,
    # Notice a silently dead connection under the watch (etcd allows a ping every 5 s).
    "grpc.keepalive_time_ms": 10_000,
    "grpc.keepalive_timeout_ms": 5_000,
    # The initial load is one answer: a long history must not hit gRPC's 4 MiB default.
    "grpc.max_receive_message_length": 256 << 20,
}
_ETCD_ERRORS = (aetcd.ClientError, grpc.RpcError, grpc.aio.UsageError, TimeoutError)
# etcd answered, and the answer was no: nothing was applied, and the connection is fine.
_REFUSALS = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.OUT_OF_RANGE,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.UNAUTHENTICATED,
}


class EtcdUnreachable(ConnectionError):
    """``start()`` found no etcd endpoint that answered in time."""


@dataclass(frozen=True)
class EtcdTimeouts:
    connect: float = 10.0  # start(): how long to look for an endpoint that answers
    request: float = 3.0  # one etcd call
    mirror: float = 2.0  # how long a write waits for the watch to bring it into the mirror


# ---------------------------------------------------------------------- key layout


class KeyLayout:
    """Where each part of the state lives under the prefix (see the module docstring)."""

    def __init__(self, prefix: str) -> None:
        self.root = prefix.rstrip("/") + "/"
        self.revision = f"{self.root}config/revision"
        self.history_prefix = f"{self.root}config/history/"
        self.purge_seq = f"{self.root}purges/seq"
        # Only the zero-padded numbers sort before "seq" under it.
        self.purge_prefix = f"{self.root}purges/"

    def history(self, revision: int | str) -> str:
        return f"{self.history_prefix}{int(revision):012d}"

    def member(self, node_id: str) -> str:
        return f"{self.root}members/{quote(node_id, safe='')}"

    def ledger(self, limit_name: str, key: str) -> str:
        return f"{self.root}quota/{quote(limit_name, safe='')}/{quote(key, safe='')}"

    def session(self, upstream: str, session: str) -> str:
        return f"{self.root}sessions/{quote(upstream, safe='')}/{quote(session, safe='')}"

    def purge(self, seq: int) -> str:
        return f"{self.purge_prefix}{int(seq):012d}"

    def edge(self, name: str) -> str:
        return f"{self.root}edges/{quote(name, safe='')}"

    def parse(self, key: bytes) -> tuple[str, ...] | None:
        """("config", "revision"), ("config", "history", n), ("members", id),
        ("quota", limit, key), ("sessions", upstream, session), ("purges", "seq"),
        ("purges", n), ("edges", name); None for a foreign key."""
        text = key.decode("utf-8", "replace")
        if not text.startswith(self.root):
            return None
        parts = tuple(unquote(part) for part in text[len(self.root) :].split("/"))
        shapes = {
            ("config", 2),
            ("config", 3),
            ("members", 2),
            ("quota", 3),
            ("sessions", 3),
            ("purges", 2),
            ("edges", 2),
        }
        return parts if (parts[0], len(parts)) in shapes else None


def _encode(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()


def _decode(raw: bytes) -> Any:
    # Anyone with write access to etcd may have written it: nested past the parser's
    # limit is a ValueError, skipped like any unreadable key, not a RecursionError.
    return load_json(raw)


# ---------------------------------------------------------------------- the local mirror


class StateMirror:
    """The local copy of the state, fed by etcd's watch; the store's reads are served here."""

    def __init__(self, keys: KeyLayout, on_applied: Callable[[int], None]) -> None:
        self.keys = keys
        self.state = ClusterState()
        self.seen = 0  # the etcd revision this copy reflects
        self._on_applied = on_applied
        self._announced: int | None = None
        self._announced_purge_seq = 0
        self._waiters: list[tuple[int, asyncio.Future]] = []

    def load(self, entries: list[tuple[bytes, bytes]], revision: int) -> None:
        """Replace the whole copy with what etcd held at ``revision``."""
        self.state = ClusterState()
        for key, value in entries:
            self._store(key, value)
        self._advance(revision)

    def apply(self, kind: str, key: bytes, value: bytes, revision: int) -> None:
        """One watch event. The events of one etcd revision come in one watch answer and are
        applied before the loop runs anything else, so nobody sees a revision half-applied."""
        if kind == "PUT":
            self._store(key, value)
        else:
            self._remove(key)
        self._advance(revision)

    async def wait_seen(self, revision: int, timeout: float) -> bool:
        """Wait until the copy reflects etcd ``revision``; False if it did not in time."""
        if self.seen >= revision:
            return True
        future = asyncio.get_running_loop().create_future()
        self._waiters.append((revision, future))
        try:
            async with asyncio.timeout(timeout):
                await future
            return True
        except TimeoutError:
            return False
        finally:
            self._waiters = [(r, f) for r, f in self._waiters if f is not future]

    def _advance(self, revision: int) -> None:
        self.seen = max(self.seen, revision)
        for waited, future in self._waiters:
            if waited <= self.seen and not future.done():
                future.set_result(None)
        self._announce()

    def _announce(self) -> None:
        # Only a revision whose config is here is worth applying; new purges are worth
        # telling about (the Raft store calls the hook after a purge too).
        state = self.state
        ready = state.revision if str(state.revision) in state.history else None
        new_config = ready is not None and ready != self._announced
        new_purges = state.purge_seq != self._announced_purge_seq
        if not new_config and not new_purges:
            return
        if new_config:
            self._announced = ready
        self._announced_purge_seq = state.purge_seq
        try:
            self._on_applied(self._announced or 0)
        except Exception:
            log.exception("config-applied hook failed")

    def _store(self, key: bytes, raw: bytes) -> None:
        path = self.keys.parse(key)
        if path is None:
            return
        state = self.state
        try:
            match path:
                case ("config", "revision"):
                    state.revision = int(raw)
                case ("config", "history", number):
                    state.history[str(int(number))] = _decode(raw)
                case ("members", node_id):
                    state.members[node_id] = _decode(raw)
                case ("quota", limit_name, limit_key):
                    state.quota[f"{limit_name}\x00{limit_key}"] = _decode(raw)
                case ("sessions", upstream, session):
                    state.sessions[f"{upstream}\x00{session}"] = list(_decode(raw))
                case ("purges", "seq"):
                    state.purge_seq = int(raw)
                case ("purges", number):
                    self._store_purge(int(number), _decode(raw))
                case ("edges", name):
                    state.edges[name] = dict(_decode(raw))
        except (ValueError, TypeError):
            # Written by someone else than Dispa: skipped, never allowed to stop the watch.
            log.warning("ignoring unreadable etcd key %r", key)

    def _remove(self, key: bytes) -> None:
        state = self.state
        match self.keys.parse(key):
            case ("config", "revision"):
                state.revision = 0
            case ("config", "history", number) if number.isdigit():
                state.history.pop(str(int(number)), None)
            case ("members", node_id):
                state.members.pop(node_id, None)
            case ("quota", limit_name, limit_key):
                state.quota.pop(f"{limit_name}\x00{limit_key}", None)
            case ("sessions", upstream, session):
                state.sessions.pop(f"{upstream}\x00{session}", None)
            case ("purges", "seq"):
                state.purge_seq = 0
            case ("purges", number) if number.isdigit():
                purges, seq = state.purges, int(number)
                index = bisect.bisect_left(purges, seq, key=_purge_seq)
                if index < len(purges) and purges[index]["seq"] == seq:
                    del purges[index]
            case ("edges", name):
                state.edges.pop(name, None)

    def _store_purge(self, seq: int, entry: dict) -> None:
        """Keep ``purges`` ordered by seq (as the Raft state appends them) and bounded, whatever
        order the keys come in."""
        if not isinstance(entry, dict):
            raise TypeError("a purge is a mapping")
        entry = {
            "seq": seq,
            "urls": [str(url) for url in entry.get("urls", [])],
            "tags": [str(tag) for tag in entry.get("tags", [])],
            "time": entry.get("time", 0.0),
        }
        purges = self.state.purges
        index = bisect.bisect_left(purges, seq, key=_purge_seq)
        if index < len(purges) and purges[index]["seq"] == seq:
            purges[index] = entry
        else:
            purges.insert(index, entry)
        if len(purges) > PURGE_LIMIT:
            # The writer deletes these in the same transaction; this only bounds the mirror
            # should a delete be missed.
            del purges[: len(purges) - PURGE_LIMIT]


def _purge_seq(entry: dict) -> int:
    return entry["seq"]


# ---------------------------------------------------------------------- helpers


class _KeyedLocks:
    """One lock per key, kept only while in use: writers of one key in this process take
    turns, so compare-and-set retries are spent only on races with other cores."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (None, 0))
        lock = lock or asyncio.Lock()
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


class _ExpiryLeases:
    """etcd leases shared by every key that expires in the same second: one lease grant per
    second of expiry, not one per session."""

    def __init__(self) -> None:
        self._by_second: dict[int, int] = {}

    async def lease_until(
        self, expires_at: float, grant: Callable[[int], Awaitable[aetcd.Lease]]
    ) -> int:
        second = math.ceil(expires_at)
        lease_id = self._by_second.get(second)
        if lease_id is None:
            # A lease's ttl runs from its grant on the server: measure it on the real clock.
            lease_id = (await grant(max(1, math.ceil(second - time.time())))).id
            lease_id = self._by_second.setdefault(second, lease_id)
            self._forget_before(time.time())
        return lease_id

    def forget(self, lease_id: int) -> None:
        """A lease etcd no longer knows (expired early, or revoked)."""
        self._by_second = {s: i for s, i in self._by_second.items() if i != lease_id}

    def _forget_before(self, now: float) -> None:
        for second in [s for s in self._by_second if s <= now]:
            del self._by_second[second]


def _parse_endpoint(endpoint: str) -> tuple[str, int]:
    parsed = urlsplit(endpoint if "://" in endpoint else f"http://{endpoint}")
    if parsed.scheme != "http":
        raise ValueError(
            f"etcd endpoint {endpoint}: only http:// endpoints are supported "
            "(the client speaks plain gRPC)"
        )
    if not parsed.hostname:
        raise ValueError(f"etcd endpoint {endpoint}: no host")
    return parsed.hostname, parsed.port or 2379


def _put_op(key: str, value: bytes, lease_id: int = 0) -> txn.Put:
    return txn.Put(key.encode(), value, lease_id)


def _delete_op(key: str) -> txn.Delete:
    return txn.Delete(key.encode())


def _lease_missing(error: BaseException) -> bool:
    return "lease not found" in str(error)


def _grpc_code(error: BaseException) -> grpc.StatusCode | None:
    # aetcd raises its own exceptions "from" gRPC's, which carry the status code.
    for candidate in (error, error.__cause__):
        if isinstance(candidate, grpc.aio.AioRpcError):
            return candidate.code()
    return None


def _unreachable(error: BaseException) -> bool:
    """etcd did not answer (as opposed to answering no)."""
    return _grpc_code(error) not in _REFUSALS


def _maybe_committed(error: BaseException) -> bool:
    """Whether a write that failed this way may still have been applied: not when etcd
    refused it, nor when gRPC could not even connect."""
    text = str(error)
    never_sent = "failed to connect" in text or "Connection refused" in text
    return _unreachable(error) and not never_sent


def _committed_revision(responses: list) -> int:
    """The etcd revision of a successful transaction (aetcd drops the outer header)."""
    revisions = [
        getattr(response, response.WhichOneof("response")).header.revision
        for response in responses
        if hasattr(response, "WhichOneof")
    ]
    return max(revisions, default=0)


async def _backoff(attempt: int) -> None:
    # Jitter, so two cores that lost a race to each other do not collide again.
    await asyncio.sleep(random.uniform(0, 0.005 * (attempt + 1)))


# ---------------------------------------------------------------------- the store


class EtcdClusterStore:
    """``ClusterStore`` on an external etcd cluster."""

    def __init__(
        self,
        endpoints: tuple[str, ...],
        prefix: str,
        on_applied: Callable[[int], None],
        timeouts: EtcdTimeouts | None = None,
    ) -> None:
        if not endpoints:
            raise ValueError("cluster.store etcd needs cluster.endpoints (etcd client URLs)")
        self.endpoints = tuple(endpoints)
        self._addresses = [_parse_endpoint(endpoint) for endpoint in self.endpoints]
        self.timeouts = timeouts or EtcdTimeouts()
        self.keys = KeyLayout(prefix)
        self._mirror = StateMirror(self.keys, on_applied)
        self._locks = _KeyedLocks()
        self._leases = _ExpiryLeases()
        self._client: aetcd.Client | None = None
        self._endpoint_index = 0
        self._tasks: list[asyncio.Task] = []
        self._stopping = False
        self._healthy = False
        self._leader: str | None = None
        self._term: int | None = None

    @property
    def state(self) -> ClusterState:
        return self._mirror.state

    # ------------------------------------------------------------------ start and stop

    async def start(self) -> None:
        deadline = time.monotonic() + self.timeouts.connect
        while True:
            try:
                await self._load_everything()
                break
            except CommandFailed as failure:
                if time.monotonic() >= deadline:
                    await self._close_client()
                    raise EtcdUnreachable(
                        f"cannot reach etcd at {', '.join(self.endpoints)} within "
                        f"{self.timeouts.connect:g} s: {failure.reason}"
                    ) from None
                await asyncio.sleep(0.2)
        self._tasks = [
            asyncio.create_task(self._follow_changes(), name="etcd watch"),
            asyncio.create_task(self._poll_status(), name="etcd status"),
        ]

    async def stop(self) -> None:
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        # Closing the client also ends a watch stream, should a cancel be lost on the way.
        await self._close_client()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    def status(self) -> dict:
        return {
            "role": "etcd-client",
            "leader": self._leader,
            "term": self._term,
            "commit_index": self._mirror.seen,
            "last_applied": self._mirror.seen,
            "has_quorum": self._healthy,
        }

    # ------------------------------------------------------------------ config

    async def put_config(self, config, expected_revision, now, author, note):
        return await self._config_command(
            lambda state: state.put_config(config, expected_revision, now, author, note)
        )

    async def rollback_config(self, to_revision, expected_revision, now, author):
        return await self._config_command(
            lambda state: state.rollback(to_revision, expected_revision, now, author),
            also_read=(to_revision,),
        )

    async def _config_command(
        self,
        command: Callable[[ClusterState], dict],
        also_read: tuple[int, ...] = (),
    ) -> dict:
        """Run a config command on what etcd holds; write its outcome if nobody raced us."""
        async with self._locks.hold(self.keys.revision):
            for attempt in range(CONFIG_ATTEMPTS):
                state, guard, based_on = await self._read_config(also_read)
                known = set(state.history)
                result = command(state)
                if not result.get("ok") or result.get("unchanged"):
                    await self._mirror.wait_seen(based_on, self.timeouts.mirror)
                    return result
                puts = [
                    _put_op(self.keys.history(number), _encode(state.history[number]))
                    for number in sorted(set(state.history) - known, key=int)
                ]
                deletes = [
                    _delete_op(self.keys.history(number))
                    for number in known
                    if number not in state.history
                ]
                puts.append(_put_op(self.keys.revision, str(state.revision).encode()))
                committed = await self._commit(
                    [txn.Mod(self.keys.revision) == guard], puts + deletes
                )
                if committed is not None:
                    await self._mirror.wait_seen(committed, self.timeouts.mirror)
                    return result
                await _backoff(attempt)
        raise CommandFailed(
            "the config kept changing under concurrent writers; try again", maybe_committed=False
        )

    async def _read_config(self, also_read: tuple[int, ...]) -> tuple[ClusterState, int, int]:
        """A small state holding the current revision, the numbers of every revision in the
        history (so the pure command trims it as Raft does) and the entries it will read;
        the guard (mod_revision of the revision key) and the etcd revision it was read at."""
        raw, guard, _, based_on = await self._read(self.keys.revision)
        state = ClusterState()
        state.revision = int(raw) if raw is not None else 0
        # Read after the guard: should a config be written in between, these reads are newer
        # than the guard, but then the guard fails, so no write lands on reads that disagree.
        numbers = await self._etcd(
            lambda client: client.get_prefix(self.keys.history_prefix.encode(), keys_only=True),
            writes=False,
        )
        state.history = {str(int(kv.key.rsplit(b"/", 1)[1])): None for kv in numbers}
        for number in {state.revision, *also_read}:
            if str(number) in state.history:
                entry, _, _, _ = await self._read(self.keys.history(number))
                state.history[str(number)] = _decode(entry) if entry is not None else None
        return state, guard, max(based_on, numbers.header.revision)

    # ------------------------------------------------------------------ members

    async def add_member(self, node_id, raft, admin, region):
        state = ClusterState()
        result = state.add_member(node_id, raft, admin, region)
        revision = await self._put_key(
            self.keys.member(str(node_id)), _encode(state.members[str(node_id)])
        )
        await self._mirror.wait_seen(revision, self.timeouts.mirror)
        return result

    async def remove_member(self, node_id):
        key = self.keys.member(str(node_id))
        committed = await self._commit([txn.Version(key) > 0], [_delete_op(key)])
        if committed is None:
            return ClusterState().remove_member(node_id)  # the refusal, as Raft words it
        # As in ClusterState.remove_member: the node's leased quota is free again.
        for slot, entry in list(self.state.quota.items()):
            if str(node_id) in entry.get("leases", {}):
                limit_name, _, limit_key = slot.partition("\x00")
                await self._ledger_command(limit_name, limit_key, _without_leases_of(str(node_id)))
        await self._mirror.wait_seen(committed, self.timeouts.mirror)
        return {"ok": True}

    async def change_membership(self, add: bool, raft_address: str) -> None:
        raise CommandFailed("membership of an etcd-backed cluster is managed in etcd itself", False)

    # ------------------------------------------------------------------ quota ledger

    async def lease_quota(self, limit_name, key, node, want, limit, window, now):
        return await self._ledger_command(
            limit_name,
            key,
            lambda state: state.lease_quota(limit_name, key, node, want, limit, window, now),
            window=window,
        )

    async def return_quota(self, limit_name, key, node, tokens, window_start):
        return await self._ledger_command(
            limit_name,
            key,
            lambda state: state.return_quota(limit_name, key, node, tokens, window_start),
        )

    async def _ledger_command(
        self,
        limit_name: str,
        key: str,
        command: Callable[[ClusterState], dict],
        window: float | None = None,
    ) -> dict:
        """Run a quota command on one ledger entry; write the outcome guarded by the entry's
        mod_revision. ``window``: the length of a window, when the command may start one."""
        ledger_key = self.keys.ledger(limit_name, key)
        slot = f"{limit_name}\x00{key}"
        async with self._locks.hold(ledger_key):
            for attempt in range(LEDGER_ATTEMPTS):
                raw, guard, lease_id, _ = await self._read(ledger_key)
                before = _decode(raw) if raw is not None else None
                state = ClusterState()
                if before is not None:
                    state.quota[slot] = copy.deepcopy(before)
                result = command(state)
                after = state.quota.get(slot)
                if not result.get("ok") or after is None or after == before:
                    return result
                if window is not None and (before is None or before["window"] != after["window"]):
                    # A new window: its ledger outlives it by one window, then etcd drops it.
                    lease_id = await self._lease_until(after["window"] + 2 * window)
                committed = await self._commit(
                    [txn.Mod(ledger_key) == guard], [_put_op(ledger_key, _encode(after), lease_id)]
                )
                if committed is not None:
                    await self._mirror.wait_seen(committed, self.timeouts.mirror)
                    return result
                await _backoff(attempt)
        raise CommandFailed(
            f"the quota ledger of {limit_name} kept changing; try again", maybe_committed=False
        )

    # ------------------------------------------------------------------ sticky sessions

    async def put_session(self, upstream, session, endpoint, ttl, now):
        state = ClusterState()
        result = state.put_session(upstream, session, endpoint, ttl, now)
        if not result.get("ok"):
            return result
        entry = state.sessions[f"{upstream}\x00{session}"]
        key, value = self.keys.session(upstream, session), _encode(entry)
        lease_id = await self._lease_until(entry[1])
        try:
            revision = await self._put_key(key, value, lease_id)
        except CommandFailed as failure:
            if not _lease_missing(failure):
                raise
            self._leases.forget(lease_id)  # it expired between our grant and this put
            revision = await self._put_key(key, value, await self._lease_until(entry[1]))
        await self._mirror.wait_seen(revision, self.timeouts.mirror)
        return result

    async def expire_sessions(self, now):
        # etcd deletes a session with its lease, and the watch removes it from every mirror.
        return {"ok": True, "expired": 0}

    # ------------------------------------------------------------------ cache purges

    async def purge_cache(self, urls, tags, now):
        """Take the next purge seq by compare-and-set on ``P/purges/seq`` and write the purge
        under it, in one transaction."""
        async with self._locks.hold(self.keys.purge_seq):
            for attempt in range(PURGE_ATTEMPTS):
                raw, guard, _, _ = await self._read(self.keys.purge_seq)
                state = ClusterState()
                state.purge_seq = int(raw) if raw is not None else 0
                result = state.purge_cache(list(urls), list(tags), now)
                if not result.get("ok"):
                    return result
                entry = state.purges[-1]
                seq = entry["seq"]
                # The entry before the seq: the mirror announces a purge when its seq
                # arrives, and the entry is there by then.
                operations = [
                    _put_op(self.keys.purge(seq), _encode(entry)),
                    _put_op(self.keys.purge_seq, str(seq).encode()),
                ]
                oldest_kept = seq - PURGE_LIMIT + 1
                if oldest_kept > 1:
                    # Dropped in the same transaction, not left to an etcd lease: the limit is
                    # a count, which a lease (a time) cannot keep, and every core and a fresh
                    # load must see exactly the last PURGE_LIMIT purges, as Raft keeps them.
                    # A range, so any older leftover goes too; it ends before "seq".
                    operations.append(
                        txn.Delete(
                            self.keys.purge_prefix.encode(), self.keys.purge(oldest_kept).encode()
                        )
                    )
                committed = await self._commit([txn.Mod(self.keys.purge_seq) == guard], operations)
                if committed is not None:
                    await self._mirror.wait_seen(committed, self.timeouts.mirror)
                    return result
                await _backoff(attempt)
        raise CommandFailed("purges kept coming from other cores; try again", maybe_committed=False)

    # ------------------------------------------------------------------ edges

    async def report_edge(self, name, region, admin, revision, purge_seq, now):
        """Last report wins, as in Raft. The pure command also forgets edges silent for a day
        (and the oldest beyond EDGE_LIMIT): run on the mirror's edges, it names them, and they
        are deleted only if etcd still holds what the mirror saw (a report in between wins)."""
        state = ClusterState()
        state.edges = dict(self.state.edges)  # the command replaces entries, never edits them
        before = dict(state.edges)
        result = state.report_edge(name, region, admin, revision, purge_seq, now)
        if not result.get("ok"):
            return result
        committed = await self._put_key(self.keys.edge(str(name)), _encode(state.edges[str(name)]))
        forgotten = [
            (other, entry)
            for other, entry in before.items()
            if other not in state.edges and other != str(name)
        ]
        for start in range(0, len(forgotten), TXN_COMPARES):
            batch = forgotten[start : start + TXN_COMPARES]
            done = await self._commit(
                [txn.Value(self.keys.edge(other)) == _encode(entry) for other, entry in batch],
                [_delete_op(self.keys.edge(other)) for other, _ in batch],
            )
            committed = max(committed, done or 0)
        await self._mirror.wait_seen(committed, self.timeouts.mirror)
        return result

    # ------------------------------------------------------------------ ACME

    async def acme(self, command, args):
        # ACME orders are driven by the Raft leader; cores on etcd have none.
        raise CommandFailed(
            "ACME certificates need the embedded Raft store (cluster.store: raft)",
            maybe_committed=False,
        )

    # ------------------------------------------------------------------ restore

    async def restore_state(self, plain):
        """Disaster recovery, as in the Raft store (``ClusterState.restore_backup``): the
        backup's config becomes a new revision after both this cluster's and the backup's
        latest; history and members stay; live sessions of the backup are added (each on
        an etcd lease). Quota ledgers are not restored: they belong to past windows. Purges
        and edge reports are this cluster's own and stay as they are (``restore_backup``
        leaves them alone, and only config keys are written), so no purge seq is reused."""
        restored = ClusterState.from_plain(plain)
        now = time.time()
        for slot, entry in restored.sessions.items():
            if entry[1] > now:
                upstream, _, session = slot.partition("\x00")
                await self.put_session(upstream, session, entry[0], entry[1] - now, now)
        backup = {**restored.to_plain(), "sessions": {}}

        def restore(state: ClusterState) -> dict:
            return state.restore_backup(backup, now)

        return await self._config_command(restore, also_read=(restored.revision,))

    async def _load_everything(self) -> None:
        everything = await self._etcd(
            lambda client: client.get_prefix(self.keys.root.encode()), writes=False
        )
        self._mirror.load([(kv.key, kv.value) for kv in everything.kvs], everything.header.revision)

    async def _follow_changes(self) -> None:
        """Keep the mirror current: watch the prefix from the revision after the last seen."""
        retry = 0.1
        lost = False  # one warning per outage, not one per retry
        while not self._stopping:
            client = self._connection()
            try:
                async with asyncio.timeout(self.timeouts.request):
                    watch = await client.watch_prefix(
                        self.keys.root.encode(), start_revision=self._mirror.seen + 1
                    )
                if lost:
                    log.info("etcd watch resumed from revision %d", self._mirror.seen + 1)
                retry, lost = 0.1, False
                async for event in watch:
                    kv = event.kv
                    self._mirror.apply(event.kind, kv.key, kv.value, kv.mod_revision)
                # The stream ended without an error: the client was closed (by stop(), or
                # to fail over to another endpoint).
            except aetcd.RevisionCompactedError:
                log.warning(
                    "etcd compacted revisions after %d before the watch saw them: reloading",
                    self._mirror.seen,
                )
                try:
                    await self._load_everything()
                except CommandFailed:
                    await asyncio.sleep(retry)
                    retry = min(retry * 2, WATCH_RETRY_MAX)
            except _ETCD_ERRORS as error:
                self._healthy = False
                log.log(
                    logging.DEBUG if lost else logging.WARNING,
                    "etcd watch lost (%s); it resumes from revision %d",
                    _describe(error),
                    self._mirror.seen + 1,
                )
                lost = True
                await self._drop_connection(client)
                await asyncio.sleep(retry)
                retry = min(retry * 2, WATCH_RETRY_MAX)
            except Exception:
                # A bug here must not freeze the mirror for good: log it, watch again.
                log.exception("etcd watch failed")
                await asyncio.sleep(WATCH_RETRY_MAX)

    async def _poll_status(self) -> None:
        """The etcd leader and term for ``status()``; also notices an etcd without a leader."""
        while not self._stopping:
            with contextlib.suppress(CommandFailed):
                status = await self._etcd(lambda client: client.status(), writes=False)
                leader = status.leader
                self._term = status.raft_term
                self._leader = (leader.name or ",".join(leader.client_urls)) if leader else None
                self._healthy = leader is not None
            await asyncio.sleep(STATUS_INTERVAL)

    # ------------------------------------------------------------------ etcd calls

    async def _read(self, key: str) -> tuple[bytes | None, int, int, int]:
        """(value or None, mod_revision (0 if absent), lease id, etcd revision of the read)."""
        found = await self._etcd(
            lambda client: client.get_range(key.encode(), key.encode() + b"\0"), writes=False
        )
        revision = found.header.revision
        if not found.kvs:
            return None, 0, 0, revision
        kv = found.kvs[0]
        return kv.value, kv.mod_revision, kv.lease, revision

    async def _put_key(self, key: str, value: bytes, lease_id: int = 0) -> int:
        answer = await self._etcd(
            lambda client: client.put(key.encode(), value, lease_id), writes=True
        )
        return answer.header.revision

    async def _commit(self, compare: list, operations: list) -> int | None:
        """The etcd revision of the committed transaction, or None if a compare failed."""
        succeeded, responses = await self._etcd(
            lambda client: client.transaction(compare=compare, success=operations, failure=[]),
            writes=True,
        )
        return _committed_revision(responses) if succeeded else None

    async def _lease_until(self, expires_at: float) -> int:
        async def grant(ttl: int) -> aetcd.Lease:
            return await self._etcd(lambda client: client.lease(ttl), writes=False)

        return await self._leases.lease_until(expires_at, grant)

    async def _etcd(self, call: Callable[[aetcd.Client], Awaitable[T]], *, writes: bool) -> T:
        """One bounded etcd call; its failure becomes CommandFailed, honest about whether a
        write may have landed."""
        client = self._connection()
        host, port = self._addresses[self._endpoint_index]
        try:
            # asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow a cancel.
            async with asyncio.timeout(self.timeouts.request):
                answer = await call(client)
        except _ETCD_ERRORS as error:
            if _unreachable(error):
                self._healthy = False
                await self._drop_connection(client)
            raise CommandFailed(
                f"etcd at {host}:{port}: {_describe(error)}",
                maybe_committed=writes and _maybe_committed(error),
            ) from None
        self._healthy = True
        return answer

    def _connection(self) -> aetcd.Client:
        if self._client is None:
            host, port = self._addresses[self._endpoint_index]
            self._client = aetcd.Client(
                host=host, port=port, timeout=self.timeouts.request, options=_CHANNEL_OPTIONS
            )
        return self._client

    async def _drop_connection(self, client: aetcd.Client) -> None:
        """After a failure, the next call goes to the next endpoint. With one endpoint the
        channel stays: gRPC reconnects it by itself."""
        if len(self._addresses) == 1 or self._client is not client:
            return
        self._client = None
        self._endpoint_index = (self._endpoint_index + 1) % len(self._addresses)
        with contextlib.suppress(*_ETCD_ERRORS):
            await client.close()

    async def _close_client(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(*_ETCD_ERRORS):
                await client.close()


def _without_leases_of(node_id: str) -> Callable[[ClusterState], dict]:
    def command(state: ClusterState) -> dict:
        state.members[node_id] = {}
        return state.remove_member(node_id)  # the pure command also frees the node's leases

    return command


def _describe(error: BaseException) -> str:
    if isinstance(error, TimeoutError):
        return "no answer in time"
    return str(error).strip() or type(error).__name__
