"""LeaderDiscovery on one core's view: providers run while it leads, and each change of
their view is one compare-and-set config revision (an equal view commits nothing).

The store is the real replicated state machine (``ClusterState``) applied in process, as a
one-node cluster would; only the Raft role is set by the test. Three real cores are in
tests/integration/discovery/test_discovery_cluster.py.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from dispa.cluster.discovery_host import CoreDiscoveryHost
from dispa.cluster.state import ClusterState
from dispa.discovery.leader import LeaderDiscovery


async def async_wait_until(predicate, *, timeout: float, what: str = "") -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, f"timed out after {timeout}s waiting for {what}"
        await asyncio.sleep(0.02)


class OneNodeStore:
    def __init__(self) -> None:
        self.state = ClusterState()
        self.role = "leader"
        self.commits: list[dict] = []

    def status(self) -> dict:
        return {"role": self.role, "leader": "127.0.0.1:7001"}

    async def put_config(self, config, expected_revision, now, author, note) -> dict:
        result = self.state.put_config(config, expected_revision, now, author, note)
        self.commits.append({"author": author, **result})
        return result


class Node:
    def __init__(self) -> None:
        self.store = OneNodeStore()
        self.store.state.members["core-1"] = {"raft": "127.0.0.1:7001", "admin": "127.0.0.1:9911"}

    async def wait_changed(self, timeout: float) -> None:
        await asyncio.sleep(min(timeout, 0.02))


def shared_config(endpoints_file: Path) -> dict:
    return {
        "discovery": {
            "throttle": 0.0,
            "providers": [
                {"type": "file", "name": "files", "path": str(endpoints_file), "interval": 0.05}
            ],
        },
        "upstreams": [{"name": "web", "discovery": "web@files"}],
        "routes": [{"upstream": "web"}],
    }


def endpoints(node: Node) -> list[dict]:
    return node.store.state.current_config()["upstreams"][0].get("endpoints", [])


async def test_the_leader_commits_each_change_and_stops_when_it_loses_leadership(
    tmp_path: Path,
) -> None:
    source = tmp_path / "endpoints.json"
    source.write_text(json.dumps({"web": [{"address": "127.0.0.1:9001", "weight": 2}]}))
    node = Node()
    node.store.state.put_config(shared_config(source), None, 1.0, "operator")
    discovery = LeaderDiscovery(CoreDiscoveryHost(node), clock=lambda: 100.0)
    task = asyncio.create_task(discovery.run())
    try:
        await async_wait_until(lambda: endpoints(node), timeout=5, what="the first commit")
        assert endpoints(node) == [{"address": "127.0.0.1:9001", "weight": 2}]
        assert node.store.state.history["2"]["author"] == "discovery"
        document = discovery.providers_document()
        assert document["role"] == "leader" and document["leader_admin"] == "127.0.0.1:9911"
        assert document["providers"][0]["pools"] == {"web@files": 1}

        # Nothing changes: nothing is committed, however often the loop looks.
        await asyncio.sleep(0.3)
        assert node.store.state.revision == 2

        source.write_text(json.dumps({"web": ["127.0.0.1:9001", "127.0.0.1:9002"]}))
        await async_wait_until(lambda: len(endpoints(node)) == 2, timeout=5, what="a change")
        assert node.store.state.revision == 3

        node.store.role = "follower"
        await async_wait_until(lambda: not discovery.providers.running, timeout=5)
        assert discovery.providers_document()["providers"][0]["state"] == "standby"
        source.write_text(json.dumps({"web": ["127.0.0.1:9003"]}))
        await asyncio.sleep(0.3)
        assert node.store.state.revision == 3  # a follower commits nothing

        node.store.role = "leader"  # leadership comes back: the providers start again
        await async_wait_until(
            lambda: endpoints(node) == [{"address": "127.0.0.1:9003", "weight": 1}], timeout=5
        )
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert not discovery.providers.running


async def test_a_view_that_fails_validation_is_refused_once_and_logged(
    tmp_path: Path, caplog
) -> None:
    source = tmp_path / "endpoints.json"
    # A region the config does not define: the config would not validate.
    source.write_text(json.dumps({"web": [{"address": "127.0.0.1:9001", "region": "mars"}]}))
    node = Node()
    node.store.state.put_config(shared_config(source), None, 1.0, "operator")
    discovery = LeaderDiscovery(CoreDiscoveryHost(node))
    task = asyncio.create_task(discovery.run())
    try:
        await async_wait_until(
            lambda: "unknown region 'mars'" in caplog.text, timeout=5, what="the refusal"
        )
        await asyncio.sleep(0.2)
        assert node.store.state.revision == 1
        assert caplog.text.count("unknown region 'mars'") == 1
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_no_providers_declared_means_nothing_runs(tmp_path: Path) -> None:
    node = Node()
    node.store.state.put_config({"routes": [{"direct_response": {"status": 200}}]}, None, 1.0)
    discovery = LeaderDiscovery(CoreDiscoveryHost(node))
    await discovery.step()
    assert not discovery.providers.running
    assert discovery.providers_document()["providers"] == []
    await discovery.stop()


async def test_cores_on_an_etcd_store_say_once_that_providers_do_not_run(
    tmp_path: Path, caplog
) -> None:
    node = Node()
    node.store.role = "etcd-client"
    node.store.state.put_config(shared_config(tmp_path / "endpoints.json"), None, 1.0)
    discovery = LeaderDiscovery(CoreDiscoveryHost(node))
    await discovery.step()
    await discovery.step()
    assert not discovery.providers.running
    assert caplog.text.count("do not run on cores whose store is etcd") == 1
    assert discovery.providers_document()["providers"][0]["state"] == "standby"
