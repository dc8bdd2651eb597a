"""The core's DiscoveryHost: leader-run discovery sees the real replicated state through it,
and a commit the cluster cannot make (CommandFailed) is CommitUnavailable, which the leader
loop retries instead of dying."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from dispa.cluster.bridge import CommandFailed
from dispa.cluster.discovery_host import CoreDiscoveryHost
from dispa.cluster.state import ClusterState
from dispa.config.errors import ConfigError
from dispa.discovery.host import CommitUnavailable
from dispa.discovery.leader import LeaderDiscovery


class FlakyStore:
    """The real state machine behind a store that fails its first ``failures`` writes."""

    def __init__(self, failures: int) -> None:
        self.state = ClusterState()
        self.failures = failures
        self.attempts = 0

    def status(self) -> dict:
        return {"role": "leader", "leader": "127.0.0.1:7001"}

    async def put_config(self, config, expected_revision, now, author, note) -> dict:
        self.attempts += 1
        if self.attempts <= self.failures:
            raise CommandFailed("no quorum", maybe_committed=False)
        return self.state.put_config(config, expected_revision, now, author, note)


class Node:
    def __init__(self, store: FlakyStore) -> None:
        self.store = store

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


async def test_a_failed_command_is_commit_unavailable_with_its_reason() -> None:
    host = CoreDiscoveryHost(Node(FlakyStore(failures=1)))
    with pytest.raises(CommitUnavailable, match="no quorum") as raised:
        await host.commit({"routes": []}, 0, 1.0)
    assert isinstance(raised.value.__cause__, CommandFailed)


async def test_the_host_reads_the_config_in_force_and_validates_like_apply() -> None:
    store = FlakyStore(failures=0)
    host = CoreDiscoveryHost(Node(store))
    assert host.config_in_force() == (0, None)
    config = {"routes": [{"direct_response": {"status": 200}}]}
    result = await host.commit(config, 0, 1.0)
    assert result["ok"] and result["revision"] == 1
    assert host.config_in_force() == (1, config)
    assert store.state.history["1"]["author"] == "discovery"
    with pytest.raises(ConfigError, match="listeners and admin are set per node"):
        host.validate({"listeners": []})


async def test_the_leader_loop_retries_until_the_cluster_can_commit(tmp_path: Path) -> None:
    source = tmp_path / "endpoints.json"
    source.write_text(json.dumps({"web": ["127.0.0.1:9001"]}))
    store = FlakyStore(failures=3)
    store.state.put_config(shared_config(source), None, 1.0, "operator")
    discovery = LeaderDiscovery(CoreDiscoveryHost(Node(store)))
    task = asyncio.create_task(discovery.run())
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5
        while store.state.revision < 2:
            assert not task.done(), task
            assert loop.time() < deadline, f"no commit after {store.attempts} attempts"
            await asyncio.sleep(0.02)
        assert store.attempts == 4  # three refused, the fourth committed
        upstream = store.state.current_config()["upstreams"][0]
        assert upstream["endpoints"] == [{"address": "127.0.0.1:9001", "weight": 1}]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
