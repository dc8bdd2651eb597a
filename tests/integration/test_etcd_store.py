"""The etcd-backed cluster store against a real single-node etcd server.

Each test gets its own key prefix on a shared etcd; the restart test has an etcd of its
own, since it kills it. The end-to-end test runs ``dispa core`` on etcd and drives it
through the admin API.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import itertools
import json
import os
import signal
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aetcd
import pytest
import yaml
from conftest import (
    HOST,
    PYTHON,
    Process,
    async_wait_until,
    free_ports,
    http_get,
    wait_until,
)

from dispa.cluster.bridge import CommandFailed
from dispa.cluster.etcd_store import (
    EtcdClusterStore,
    EtcdTimeouts,
    EtcdUnreachable,
    KeyLayout,
    StateMirror,
)
from dispa.cluster.state import EDGE_FORGET_AFTER, HISTORY_LIMIT, PURGE_LIMIT, ClusterState

ETCD = Path("/usr/bin/etcd")
pytestmark = pytest.mark.skipif(not ETCD.exists(), reason="needs the etcd server at /usr/bin/etcd")

NOW = 1_700_000_000.0


def shared_config(body: str) -> dict:
    return {"routes": [{"match": {"host": "*"}, "direct_response": {"status": 200, "body": body}}]}


# ---------------------------------------------------------------- a real etcd


class EtcdServer:
    """One etcd member on free loopback ports; restartable on the same data directory."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.client_port, self.peer_port = free_ports(2)
        self.endpoint = f"http://{HOST}:{self.client_port}"
        self.process: Process | None = None
        self.starts = itertools.count()

    def start(self) -> None:
        peer = f"http://{HOST}:{self.peer_port}"
        flags = {
            "name": "t",
            "data-dir": str(self.workdir / "etcd"),
            "listen-client-urls": self.endpoint,
            "advertise-client-urls": self.endpoint,
            "listen-peer-urls": peer,
            "initial-advertise-peer-urls": peer,
            "initial-cluster": f"t={peer}",
        }
        argv = [
            str(ETCD),
            *(part for flag, value in flags.items() for part in (f"--{flag}", value)),
        ]
        self.process = Process(argv, self.workdir, f"etcd-{next(self.starts)}")
        wait_until(self._healthy, timeout=15.0, what="etcd to answer /health")

    def _healthy(self) -> bool:
        if not self.process.alive():
            raise AssertionError(f"etcd exited:\n{self.process.stderr_text()[-2000:]}")
        with urllib.request.urlopen(f"{self.endpoint}/health", timeout=1.0) as response:
            return json.loads(response.read()).get("health") == "true"

    def kill(self) -> None:
        self.process.signal(signal.SIGKILL)
        self.process.wait(timeout=5.0)

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()


class PausableProxy:
    """A TCP relay to etcd that can cut a core off (connections dropped, new ones refused)
    and let it back: a real network fault for one core, while the others go on."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_ports(1)[0]
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()

    async def resume(self) -> None:
        self.server = await asyncio.start_server(self._relay, HOST, self.port)

    async def pause(self) -> None:
        self.server.close()
        for writer in list(self.writers):
            writer.transport.abort()
        await self.server.wait_closed()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(HOST, self.target_port)
        self.writers |= {writer, upstream_writer}

        async def pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.transport.abort()

        await asyncio.gather(pump(reader, upstream_writer), pump(upstream_reader, writer))
        self.writers -= {writer, upstream_writer}


@pytest.fixture(scope="module")
def etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdServer]:
    server = EtcdServer(tmp_path_factory.mktemp("etcd"))
    try:
        server.start()
        yield server
    finally:
        server.stop()


_prefixes = itertools.count()


class Stores:
    """Stores a test opened (each one a "core"), with what their on_applied hook saw."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.prefix = f"/test-{os.getpid()}-{next(_prefixes)}"
        self.opened: list[EtcdClusterStore] = []
        self.applied: dict[int, list[int]] = {}

    async def open(self, endpoint: str | None = None) -> EtcdClusterStore:
        applied: list[int] = []
        store = EtcdClusterStore((endpoint or self.endpoint,), self.prefix, applied.append)
        await store.start()
        self.applied[id(store)] = applied
        self.opened.append(store)
        return store

    def applied_by(self, store: EtcdClusterStore) -> list[int]:
        return self.applied[id(store)]

    async def close(self) -> None:
        for store in self.opened:
            await store.stop()


@pytest.fixture
async def stores(etcd: EtcdServer) -> AsyncIterator[Stores]:
    opened = Stores(etcd.endpoint)
    yield opened
    await opened.close()


# ---------------------------------------------------------------- config revisions


async def test_revisions_increase_and_an_equal_config_is_unchanged(stores: Stores) -> None:
    store = await stores.open()
    assert await store.put_config(shared_config("a"), None, NOW, "ann", "") == {
        "ok": True,
        "revision": 1,
    }
    assert await store.put_config(shared_config("b"), None, NOW, "ann", "") == {
        "ok": True,
        "revision": 2,
    }
    assert await store.put_config(shared_config("b"), None, NOW, "ann", "") == {
        "ok": True,
        "revision": 2,
        "unchanged": True,
    }
    # A core reads its own writes, as with Raft.
    assert store.state.revision == 2
    assert store.state.current_config() == shared_config("b")
    assert store.state.history["1"]["author"] == "ann"


async def test_a_stale_expected_revision_is_refused_with_the_current_one(
    stores: Stores,
) -> None:
    store = await stores.open()
    await store.put_config(shared_config("a"), None, NOW, "", "")
    assert (await store.put_config(shared_config("b"), 1, NOW, "", ""))["revision"] == 2
    assert await store.put_config(shared_config("c"), 1, NOW, "", "") == {
        "ok": False,
        "error": "stale revision",
        "revision": 2,
    }
    assert store.state.current_config() == shared_config("b")


async def test_results_are_those_of_the_pure_state_machine(stores: Stores) -> None:
    """Same commands on ClusterState and on etcd: same answers, same state."""
    store, pure = await stores.open(), ClusterState()
    commands = [
        ("put_config", (shared_config("a"), None, NOW, "x", "first")),
        ("put_config", (shared_config("a"), None, NOW, "x", "")),
        ("put_config", (shared_config("b"), 1, NOW, "x", "")),
        ("put_config", (shared_config("c"), 0, NOW, "x", "")),
        ("put_config", ("not a mapping", None, NOW, "x", "")),
        ("rollback_config", (1, None, NOW, "y")),
        ("rollback_config", (99, None, NOW, "y")),
        ("rollback_config", (1, 1, NOW, "y")),
        ("add_member", ("core-1", "127.0.0.1:7001", "127.0.0.1:9911", "eu")),
        ("add_member", ("core-2", "127.0.0.1:7002", "127.0.0.1:9912", "us")),
        ("lease_quota", ("api", "client/1", "core-1", 30, 50, 60.0, NOW)),
        ("lease_quota", ("api", "client/1", "core-2", 30, 50, 60.0, NOW)),
        ("lease_quota", ("api", "client/1", "core-2", 5, 50, 60.0, NOW)),
        ("lease_quota", ("api", "client/1", "core-1", 0, 50, 60.0, NOW)),
        ("return_quota", ("api", "client/1", "core-1", 10, 1_699_999_980.0)),
        ("return_quota", ("api", "client/1", "core-1", 10, 1.0)),
        ("remove_member", ("core-2",)),
        ("remove_member", ("core-9",)),
        ("lease_quota", ("api", "client/1", "core-1", 100, 50, 60.0, NOW)),
        ("put_session", ("app", "s1", "10.0.0.1:80", 0, time.time())),
        ("put_session", ("app", "s/1", "10.0.0.1:80", 30, time.time())),
        ("purge_cache", (["https://a.example/x"], [], NOW)),
        ("purge_cache", ([], [], NOW)),
        ("purge_cache", (["", "https://a.example/y"], ["blog", ""], NOW + 1)),
        ("report_edge", ("edge/1", "eu", "127.0.0.1:9921", 2, 1, NOW)),
        ("report_edge", ("", "eu", "127.0.0.1:9921", 2, 1, NOW)),
        ("report_edge", ("edge/1", "eu", "127.0.0.1:9921", 3, 2, NOW + 5)),
    ]
    for name, args in commands:
        pure_name = "rollback" if name == "rollback_config" else name
        expected = getattr(pure, pure_name)(*args)
        assert await getattr(store, name)(*args) == expected, (name, args)
    mirrored = store.state.to_plain()
    for part in ("revision", "history", "members", "quota", "purges", "purge_seq", "edges"):
        assert mirrored[part] == pure.to_plain()[part], part
    assert store.state.session_endpoint("app", "s/1", time.time()) == "10.0.0.1:80"


async def test_concurrent_writers_without_expected_revision_never_fork(stores: Stores) -> None:
    first, second = await stores.open(), await stores.open()
    # Distinct configs: an equal one would be answered "unchanged" with the same revision.
    writes = [
        store.put_config(shared_config(f"{name}-{index}"), None, NOW, "", "")
        for index in range(6)
        for name, store in (("first", first), ("second", second))
    ]
    results = await asyncio.gather(*writes)
    assert all(result["ok"] for result in results), results
    revisions = sorted(result["revision"] for result in results)
    assert revisions == list(range(1, 13))
    # One history, each config in it once, the same on both cores.
    await async_wait_until(
        lambda: second.state.revision == first.state.revision == 12,
        timeout=5.0,
        what="both mirrors at revision 12",
    )
    assert first.state.history == second.state.history
    bodies = sorted(
        entry["config"]["routes"][0]["direct_response"]["body"]
        for entry in first.state.history.values()
    )
    assert bodies == sorted(f"{name}-{index}" for index in range(6) for name in ("first", "second"))


async def test_history_keeps_the_last_revisions_and_rollback_adds_one(stores: Stores) -> None:
    store = await stores.open()
    total = HISTORY_LIMIT + 3
    for index in range(total):
        await store.put_config(shared_config(f"{index}"), None, NOW, "", "")
    assert sorted(map(int, store.state.history)) == list(range(4, total + 1))
    assert await store.rollback_config(2, None, NOW, "ops") == {
        "ok": False,
        "error": "unknown revision",
        "revision": total,
    }
    assert await store.rollback_config(50, None, NOW, "ops") == {"ok": True, "revision": total + 1}
    entry = store.state.history[str(total + 1)]
    assert entry["config"] == shared_config("49")
    assert entry["note"] == "rollback to revision 50"
    assert len(store.state.history) == HISTORY_LIMIT
    # What etcd holds is what the mirror shows: a fresh core loads the same history.
    fresh = await stores.open()
    assert fresh.state.history == store.state.history


# ---------------------------------------------------------------- two cores


async def test_two_cores_see_each_others_writes_through_the_watch(stores: Stores) -> None:
    first, second = await stores.open(), await stores.open()
    await first.put_config(shared_config("from first"), None, NOW, "", "")
    await async_wait_until(
        lambda: second.state.revision == 1, timeout=5.0, what="the second core to see revision 1"
    )
    assert second.state.current_config() == shared_config("from first")
    await second.put_config(shared_config("from second"), 1, NOW, "", "")
    await async_wait_until(
        lambda: first.state.revision == 2, timeout=5.0, what="the first core to see revision 2"
    )
    assert stores.applied_by(first) == [1, 2]
    assert stores.applied_by(second) == [1, 2]
    await second.add_member("core-2", "127.0.0.1:7002", "127.0.0.1:9912", "us")
    await async_wait_until(
        lambda: "core-2" in first.state.members,
        timeout=5.0,
        what="the first core to see member core-2",
    )


async def test_the_ledger_never_grants_more_than_the_limit_per_window(stores: Stores) -> None:
    first, second = await stores.open(), await stores.open()
    limit, window = 50, 60.0

    def lease(store: EtcdClusterStore, node: str, now: float):
        return store.lease_quota("api", "tenant-1", node, 3, limit, window, now)

    racing = [
        lease(store, node, NOW)
        for _ in range(40)
        for store, node in ((first, "core-1"), (second, "core-2"))
    ]
    results = await asyncio.gather(*racing)
    assert sum(result["granted"] for result in results) == limit
    assert max(result["outstanding"] for result in results) == limit
    # Returned tokens can be leased again, by another core, in the same window. Which core
    # won more of the race varies: the one holding more gives back 4 (it holds at least 25).
    window_start = results[0]["window"]
    held = {
        "core-1": sum(r["granted"] for r in results[0::2]),
        "core-2": sum(r["granted"] for r in results[1::2]),
    }
    giver = max(held, key=held.get)
    giver_store, taker_store = (first, second) if giver == "core-1" else (second, first)
    taker = "core-2" if giver == "core-1" else "core-1"
    returned = await giver_store.return_quota("api", "tenant-1", giver, 4, window_start)
    assert returned == {"ok": True, "returned": 4}
    assert (await lease(taker_store, taker, NOW))["granted"] == 3
    assert (await lease(taker_store, taker, NOW))["granted"] == 1
    assert (await lease(taker_store, taker, NOW))["granted"] == 0
    # The next window starts from zero.
    assert (await lease(first, "core-1", NOW + window))["granted"] == 3


async def test_sessions_expire_through_etcd_leases(stores: Stores) -> None:
    first, second = await stores.open(), await stores.open()
    assert await first.put_session("app", "client-7", "10.0.0.7:80", 2.0, time.time()) == {
        "ok": True
    }
    await async_wait_until(
        lambda: second.state.session_endpoint("app", "client-7", time.time()) == "10.0.0.7:80",
        timeout=5.0,
        what="the second core to see the session",
    )
    assert await second.expire_sessions(time.time()) == {"ok": True, "expired": 0}
    # Gone from etcd, so from every mirror, not just hidden by its expiry time.
    await async_wait_until(
        lambda: not first.state.sessions and not second.state.sessions,
        timeout=10.0,
        what="etcd to expire the session's lease",
    )
    assert (await stores.open()).state.sessions == {}


# ---------------------------------------------------------------- cache purges and edges


async def test_purges_take_increasing_seqs_and_every_mirror_holds_them(stores: Stores) -> None:
    first, second = await stores.open(), await stores.open()
    assert await first.purge_cache(["https://a.example/1"], [], NOW) == {"ok": True, "seq": 1}
    assert await first.purge_cache([], ["blog", "news"], NOW + 1) == {"ok": True, "seq": 2}
    assert await first.purge_cache(("https://a.example/3",), ["x"], NOW + 2) == {
        "ok": True,
        "seq": 3,
    }
    expected = [
        {"seq": 1, "urls": ["https://a.example/1"], "tags": [], "time": NOW},
        {"seq": 2, "urls": [], "tags": ["blog", "news"], "time": NOW + 1},
        {"seq": 3, "urls": ["https://a.example/3"], "tags": ["x"], "time": NOW + 2},
    ]
    # The writer reads its own purges at once; the other core through its watch.
    assert first.state.purges == expected
    assert first.state.purge_seq == 3
    assert first.state.purges_after(1) == expected[1:]
    await async_wait_until(
        lambda: second.state.purge_seq == 3, timeout=5.0, what="the second core to see purge 3"
    )
    assert second.state.purges == expected
    # The hook that wakes the edge watches ran on the other core too (no config: revision 0).
    assert stores.applied_by(second) and set(stores.applied_by(second)) == {0}
    # What etcd holds: a fresh core loads the same purges, and numbers the next one after them.
    fresh = await stores.open()
    assert (fresh.state.purges, fresh.state.purge_seq) == (expected, 3)
    assert await fresh.purge_cache(["https://a.example/4"], [], NOW) == {"ok": True, "seq": 4}


async def test_nothing_to_purge_is_refused_and_writes_nothing(
    stores: Stores, etcd: EtcdServer
) -> None:
    store = await stores.open()
    refusal = {"ok": False, "error": "nothing to purge: give urls or tags"}
    assert await store.purge_cache([], [], NOW) == refusal
    assert await store.purge_cache(["", ""], [""], NOW) == refusal
    assert store.state.purge_seq == 0
    assert store.state.purges == []
    async with aetcd.Client(HOST, etcd.client_port) as client:
        assert list(await client.get_prefix(store.keys.purge_prefix.encode())) == []


async def test_concurrent_purges_from_two_cores_get_distinct_seqs(stores: Stores) -> None:
    first, second = await stores.open(), await stores.open()
    writes = [
        (f"https://a.example/{name}/{index}", store)
        for index in range(15)
        for name, store in (("first", first), ("second", second))
    ]
    results = await asyncio.gather(*(store.purge_cache([url], [], NOW) for url, store in writes))
    assert all(result["ok"] for result in results), results
    assert sorted(result["seq"] for result in results) == list(range(1, 31))
    await async_wait_until(
        lambda: first.state.purge_seq == second.state.purge_seq == 30,
        timeout=5.0,
        what="both mirrors at purge 30",
    )
    assert first.state.purges == second.state.purges
    assert [purge["seq"] for purge in first.state.purges] == list(range(1, 31))
    # Each purge is kept under the seq its writer was told, and none is lost.
    told = {url: result["seq"] for (url, _), result in zip(writes, results, strict=True)}
    assert {purge["urls"][0]: purge["seq"] for purge in first.state.purges} == told


async def test_purges_beyond_the_limit_keep_only_the_newest(
    stores: Stores, etcd: EtcdServer
) -> None:
    first, second = await stores.open(), await stores.open()
    total = PURGE_LIMIT + 5
    pure = ClusterState()
    for index in range(total):
        url = f"https://a.example/{index}"
        assert (await first.purge_cache([url], [], NOW))["seq"] == index + 1
        pure.purge_cache([url], [], NOW)
    assert first.state.purges == pure.purges
    assert [purge["seq"] for purge in first.state.purges] == list(range(6, total + 1))
    assert first.state.purges_after(4) is None  # purge 5 is gone: an edge that far back
    assert len(first.state.purges_after(5)) == PURGE_LIMIT  # empties its cache instead
    await async_wait_until(
        lambda: second.state.purge_seq == total, timeout=10.0, what="the second core to catch up"
    )
    assert second.state.purges == pure.purges
    # Dropped from etcd itself, in the same transactions: the entries and the seq key.
    async with aetcd.Client(HOST, etcd.client_port) as client:
        kept = [kv.key for kv in await client.get_prefix(first.keys.purge_prefix.encode())]
    assert len(kept) == PURGE_LIMIT + 1
    assert first.keys.purge(5).encode() not in kept
    assert first.keys.purge(6).encode() in kept
    assert (await stores.open()).state.purges == pure.purges


def test_the_mirror_keeps_purges_ordered_and_bounded_whatever_order_keys_come_in() -> None:
    keys = KeyLayout("/m")
    mirror = StateMirror(keys, lambda revision: None)
    seqs = list(range(1, PURGE_LIMIT + 3))
    entries = [
        (keys.purge(seq).encode(), json.dumps({"urls": [f"/{seq}"], "tags": [], "time": 1.0}))
        for seq in reversed(seqs)
    ]
    mirror.load([(key, value.encode()) for key, value in entries], revision=10)
    assert [purge["seq"] for purge in mirror.state.purges] == seqs[-PURGE_LIMIT:]
    mirror.apply("DELETE", keys.purge(seqs[-1]).encode(), b"", 11)
    mirror.apply("PUT", keys.purge_seq.encode(), str(seqs[-1]).encode(), 11)
    assert [purge["seq"] for purge in mirror.state.purges] == seqs[-PURGE_LIMIT:-1]
    assert mirror.state.purge_seq == seqs[-1]


async def test_edge_reports_reach_every_core(stores: Stores) -> None:
    first, second = await stores.open(), await stores.open()
    assert await first.report_edge("edge/1", "eu", "127.0.0.1:9921", 4, 2, NOW) == {"ok": True}
    report = {"region": "eu", "admin": "127.0.0.1:9921", "revision": 4, "purge_seq": 2}
    assert first.state.edges == {"edge/1": {**report, "seen": NOW}}
    await async_wait_until(
        lambda: "edge/1" in second.state.edges, timeout=5.0, what="the second core to see edge/1"
    )
    assert second.state.edges == first.state.edges
    # The last report wins, from whichever core.
    assert await second.report_edge("edge/1", "eu", "127.0.0.1:9921", 5, 3, NOW + 10) == {
        "ok": True
    }
    await async_wait_until(
        lambda: first.state.edges["edge/1"]["revision"] == 5,
        timeout=5.0,
        what="the first core to see the new report",
    )
    assert first.state.edges["edge/1"] == {
        **report,
        "revision": 5,
        "purge_seq": 3,
        "seen": NOW + 10,
    }
    assert await first.report_edge("", "eu", "x", 1, 0, NOW) == {
        "ok": False,
        "error": "an edge needs a name",
    }
    # As in Raft: an edge silent for a day is forgotten at the next report.
    later = NOW + 10 + EDGE_FORGET_AFTER + 1
    assert await first.report_edge("edge-2", "us", "127.0.0.1:9922", 5, 3, later) == {"ok": True}
    assert set(first.state.edges) == {"edge-2"}
    await async_wait_until(
        lambda: set(second.state.edges) == {"edge-2"},
        timeout=5.0,
        what="the second core to forget edge/1",
    )
    assert (await stores.open()).state.edges == first.state.edges


async def test_restore_keeps_this_clusters_purges_and_edges(stores: Stores) -> None:
    source = await stores.open()
    await source.put_config(shared_config("backup"), None, NOW, "", "")
    for index in range(5):
        await source.purge_cache([f"https://old.example/{index}"], [], NOW)
    await source.report_edge("old-edge", "eu", "127.0.0.1:9931", 1, 5, NOW)
    backup = source.state.to_plain()

    target = Stores(stores.endpoint)
    try:
        store = await target.open()
        await store.put_config(shared_config("live"), None, NOW, "", "")
        await store.purge_cache(["https://live.example/1"], ["t"], NOW)
        await store.purge_cache(["https://live.example/2"], [], NOW)
        await store.report_edge("live-edge", "us", "127.0.0.1:9932", 1, 2, NOW)
        purges, edges = copy.deepcopy(store.state.purges), copy.deepcopy(store.state.edges)

        assert await store.restore_state(backup) == {"ok": True, "revision": 2}
        assert (store.state.purges, store.state.purge_seq, store.state.edges) == (
            purges,
            2,
            edges,
        )
        assert store.state.current_config() == shared_config("backup")
        # Not rewound: the next purge follows this cluster's, not the backup's.
        assert await store.purge_cache(["https://live.example/3"], [], NOW) == {
            "ok": True,
            "seq": 3,
        }
        assert (await target.open()).state.to_plain() == store.state.to_plain()
    finally:
        await target.close()


async def test_restore_adds_the_backups_config_as_a_new_revision(stores: Stores) -> None:
    source = await stores.open()
    for index in range(3):
        await source.put_config(shared_config(f"old-{index}"), None, NOW, "", "")
    await source.add_member("core-1", "127.0.0.1:7001", "127.0.0.1:9911", "eu")
    backup = source.state.to_plain()

    target = Stores(stores.endpoint)  # another cluster: its own prefix
    try:
        store = await target.open()
        for index in range(5):
            await store.put_config(shared_config(f"new-{index}"), None, NOW, "", "")
        await store.add_member("core-9", "127.0.0.1:7009", "127.0.0.1:9919", "us")
        # As the Raft store does: a new revision after both clusters' latest; this
        # cluster's history and members stay.
        assert await store.restore_state(backup) == {"ok": True, "revision": 6}
        assert sorted(map(int, store.state.history)) == [1, 2, 3, 4, 5, 6]
        assert store.state.current_config() == shared_config("old-2")
        assert store.state.history["6"]["note"] == "restored from a backup at revision 3"
        assert set(store.state.members) == {"core-9"}
        assert (await target.open()).state.to_plain() == store.state.to_plain()
    finally:
        await target.close()


async def test_a_dead_endpoint_is_skipped(stores: Stores) -> None:
    dead = f"http://{HOST}:{free_ports(1)[0]}"
    store = EtcdClusterStore((dead, stores.endpoint), stores.prefix, lambda revision: None)
    await store.start()
    try:
        assert (await store.put_config(shared_config("a"), None, NOW, "", ""))["ok"]
    finally:
        await store.stop()


# ---------------------------------------------------------------- status and failures


async def test_a_core_cut_off_past_a_compaction_reloads_everything(
    stores: Stores, etcd: EtcdServer, caplog: pytest.LogCaptureFixture
) -> None:
    proxy = PausableProxy(etcd.client_port)
    await proxy.resume()
    writer = await stores.open()
    reader = await stores.open(f"http://{HOST}:{proxy.port}")
    try:
        await writer.put_config(shared_config("0"), None, NOW, "", "")
        await async_wait_until(
            lambda: reader.state.revision == 1, timeout=5.0, what="the reader to see revision 1"
        )
        await proxy.pause()
        for index in range(1, 4):
            await writer.put_config(shared_config(f"{index}"), None, NOW, "", "")
        # etcd forgets the revisions the reader missed: its watch cannot resume from them.
        async with aetcd.Client(HOST, etcd.client_port) as client:
            await client.compact((await client.get(writer.keys.revision.encode())).mod_revision)
        await proxy.resume()
        await async_wait_until(
            lambda: reader.state.revision == 4,
            timeout=10.0,
            what="the reader to reload after the compaction",
        )
    finally:
        await proxy.pause()
    assert reader.state.history == writer.state.history
    assert stores.applied_by(reader) == [1, 4]
    assert "compacted" in caplog.text


async def test_status_describes_the_etcd_cluster(stores: Stores) -> None:
    store = await stores.open()
    await store.put_config(shared_config("a"), None, NOW, "", "")
    await async_wait_until(
        lambda: store.status()["leader"] == "t",
        timeout=5.0,
        what="the status poll to name the etcd leader",
    )
    status = store.status()
    assert status["role"] == "etcd-client"
    assert status["term"] >= 1
    assert status["commit_index"] == status["last_applied"] > 0
    assert status["has_quorum"] is True
    with pytest.raises(CommandFailed) as refused:
        await store.change_membership(True, "127.0.0.1:7009")
    assert refused.value.maybe_committed is False


async def test_start_names_the_endpoints_it_could_not_reach() -> None:
    endpoint = f"http://{HOST}:{free_ports(1)[0]}"
    store = EtcdClusterStore(
        (endpoint,), "/dispa", lambda revision: None, EtcdTimeouts(connect=0.5)
    )
    started = time.monotonic()
    with pytest.raises(EtcdUnreachable, match=endpoint):
        await store.start()
    assert time.monotonic() - started < 5.0


async def test_the_store_survives_an_etcd_restart(tmp_path: Path) -> None:
    server = EtcdServer(tmp_path)
    server.start()
    stores = Stores(server.endpoint)
    try:
        writer, reader = await stores.open(), await stores.open()
        await writer.put_config(shared_config("before"), None, NOW, "", "")
        await async_wait_until(
            lambda: reader.state.revision == 1, timeout=5.0, what="the reader to see revision 1"
        )
        server.kill()
        with pytest.raises(CommandFailed) as failed:
            await writer.put_config(shared_config("while down"), None, NOW, "", "")
        assert failed.value.maybe_committed is False  # nothing could connect
        assert writer.status()["has_quorum"] is False

        await asyncio.to_thread(server.start)
        deadline = time.monotonic() + 10.0
        while True:  # what a client does: retry until etcd answers again
            try:
                result = await writer.put_config(shared_config("after"), None, NOW, "", "")
                break
            except CommandFailed:
                assert time.monotonic() < deadline, "etcd did not come back in time"
                await asyncio.sleep(0.2)
        assert result == {"ok": True, "revision": 2}
        await async_wait_until(
            lambda: reader.state.revision == 2,
            timeout=10.0,
            what="the reader's watch to resume and see revision 2",
        )
        assert reader.state.current_config() == shared_config("after")
        assert stores.applied_by(reader) == [1, 2]
        assert writer.status()["has_quorum"] is True
    finally:
        await stores.close()
        server.stop()


# ---------------------------------------------------------------- dispa core on etcd


def test_a_core_on_etcd_applies_a_config_put_through_its_admin_api(
    etcd: EtcdServer, tmp_path: Path
) -> None:
    raft_port, listen_port, admin_port = free_ports(3)
    core_config = {
        "node": {
            "id": "core-1",
            "region": "eu",
            "data_dir": str(tmp_path / "data"),
            "secret": "test-secret",
        },
        "raft": {"address": f"{HOST}:{raft_port}"},
        "cluster": {"store": "etcd", "endpoints": [etcd.endpoint], "prefix": f"/e2e-{os.getpid()}"},
        "listeners": [{"name": "public", "address": f"{HOST}:{listen_port}"}],
        "admin": {"address": f"{HOST}:{admin_port}"},
    }
    config_path = tmp_path / "core.yaml"
    config_path.write_text(yaml.safe_dump(core_config))
    core = Process([PYTHON, "-m", "dispa", "core", "-c", str(config_path)], tmp_path, "core")
    admin = f"http://{HOST}:{admin_port}"
    try:

        def admin_up() -> bool:
            assert core.alive(), f"dispa core exited:\n{core.stderr_text()}"
            return http_get(f"{admin}/api/v1/node", timeout=1.0)[0] == 200

        wait_until(admin_up, timeout=15.0, what="the core's admin API")
        body = yaml.safe_dump(shared_config("served from etcd\n")).encode()
        request = urllib.request.Request(
            f"{admin}/api/v1/config",
            data=body,
            method="PUT",
            headers={"Content-Type": "application/yaml"},
        )
        with urllib.request.urlopen(request, timeout=10.0) as response:
            assert json.loads(response.read()) == {"ok": True, "revision": 1}

        wait_until(
            lambda: http_get(f"http://{HOST}:{listen_port}/") == (200, b"served from etcd\n"),
            timeout=10.0,
            what="the data plane to serve the config",
        )
        status, document = http_get(f"{admin}/api/v1/config")
        assert status == 200
        shown = json.loads(document)
        assert shown["revision"] == 1
        assert shown["applied_revision"] == 1
        node = json.loads(http_get(f"{admin}/api/v1/node")[1])
        assert node["state"] == "etcd-client"
        assert node["revision"] == node["applied_revision"] == 1
    finally:
        core.stop()
