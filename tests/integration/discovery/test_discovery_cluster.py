"""Discovery on a real 3-core cluster, fed by a real etcd.

The providers run on the Raft leader only; each change of the pool becomes a config
revision that every core applies; an unchanged pool commits nothing. When the leader is
killed (SIGKILL), the new leader's providers take over, and a rolling replacement of the
endpoints through a surviving core fails no request.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import threading
import time
from pathlib import Path

import pytest
from cluster.conftest import Cluster, CoreProcess
from conftest import Processes
from support import wait_until

from discovery.sources import ETCD, EtcdServer

pytestmark = pytest.mark.skipif(not Path(ETCD).exists(), reason="needs etcd")
PREFIX = "/test/cluster-discovery"
MAX_REQUESTS = 20_000
MAX_SECONDS = 60.0


def shared_config(etcd: EtcdServer) -> dict:
    provider = {
        "type": "etcd",
        "name": "etcd",
        "endpoints": [etcd.endpoint],
        "prefix": PREFIX,
        "timeout": 1.0,
        "retry": {"initial": 0.1, "maximum": 0.5},
    }
    return {
        "discovery": {"throttle": 0.1, "providers": [provider]},
        "upstreams": [{"name": "web", "discovery": "web@etcd", "lb": "weighted_round_robin"}],
        "routes": [{"upstream": "web"}],
        "access_log": {"enabled": False},
    }


def endpoints_of(core: CoreProcess) -> dict[str, int]:
    for upstream in core.get_json("/api/v1/upstreams", timeout=2.0)["upstreams"]:
        if upstream["name"] == "web":
            return {e["address"]: e["weight"] for e in upstream["endpoints"]}
    return {}


def wait_endpoints(cores: list[CoreProcess], wanted: dict[str, int], what: str) -> None:
    wait_until(lambda: all(endpoints_of(core) == wanted for core in cores), timeout=20.0, what=what)


def provider_state(core: CoreProcess) -> dict:
    document = core.get_json("/api/v1/providers", timeout=2.0)
    (entry,) = document["providers"]
    return {**entry, "role": document["role"], "leader_admin": document["leader_admin"]}


def publish(etcd: EtcdServer, pool: dict[str, int]) -> None:
    asyncio.run(etcd.publish(PREFIX, pool))


class Traffic(threading.Thread):
    """GET / on one core's listener in a bounded loop, on a keep-alive connection."""

    def __init__(self, address: str) -> None:
        super().__init__(daemon=True)
        self.host, _, port = address.rpartition(":")
        self.port = int(port)
        self.sent = 0
        self.failures: list[str] = []
        self.served: dict[str, int] = {}
        self.stopping = threading.Event()

    def run(self) -> None:
        deadline = time.monotonic() + MAX_SECONDS
        connection = http.client.HTTPConnection(self.host, self.port, timeout=5.0)
        while not self.stopping.is_set() and self.sent < MAX_REQUESTS:
            if time.monotonic() > deadline:
                break
            self.sent += 1
            try:
                connection.request("GET", "/")
                response = connection.getresponse()
                body = response.read().decode().strip()
                if response.status != 200:
                    self.failures.append(f"{response.status} {body}")
                else:
                    name = body.rpartition(" ")[2]
                    self.served[name] = self.served.get(name, 0) + 1
            except (OSError, http.client.HTTPException) as error:
                self.failures.append(repr(error))
                connection.close()
                connection = http.client.HTTPConnection(self.host, self.port, timeout=5.0)
            time.sleep(0.002)
        connection.close()


def test_providers_follow_the_leader_and_every_core_serves_the_same_endpoints(
    processes: Processes, tmp_path: Path
) -> None:
    etcd = EtcdServer(tmp_path / "etcd-data")
    etcd.start()
    a, b, c = (processes.demo_upstream(name) for name in "abc")
    cluster = Cluster(tmp_path / "cluster")
    try:
        publish(etcd, {a.address: 1})
        cluster.start()
        leader = cluster.leader()
        reply = leader.put_config(shared_config(etcd))
        assert reply.status == 200, reply.body
        wait_endpoints(cluster.cores, {a.address: 1}, "a on every core")

        # The providers run on the leader only; the followers say where.
        assert provider_state(leader)["state"] == "ok"
        for follower in cluster.followers():
            state = provider_state(follower)
            assert state["state"] == "standby", state
            assert state["leader_admin"] == leader.admin_address

        # Each change is one revision, written by discovery; an unchanged pool writes none.
        history = leader.get_json("/api/v1/config/history")["history"]
        assert [entry["author"] for entry in history][-1] == "discovery"
        revision = cluster.cluster_status()["revision"]
        time.sleep(1.5)
        assert cluster.cluster_status()["revision"] == revision

        # The operator applies the config as written (no endpoints): nothing changes, and
        # the dry run says so rather than showing the discovered endpoints removed.
        dry = leader.call(
            "POST",
            "/api/v1/config/dry-run",
            body=json.dumps(shared_config(etcd)),
            headers={"Content-Type": "application/json"},
        )
        assert dry.status == 200 and dry.body["unchanged"] is True, dry.body
        changed = {**shared_config(etcd), "drain_timeout": 7.0}
        assert leader.put_config(changed).status == 200
        wait_until(lambda: cluster.cluster_status()["revision"] == revision + 1, timeout=10.0)
        wait_endpoints(cluster.cores, {a.address: 1}, "a kept across the operator's apply")
        # Kept in the operator's own revision, not written back by discovery after it.
        applied = leader.revision_config(revision + 1)
        assert applied["upstreams"][0]["endpoints"] == [{"address": a.address, "weight": 1}]
        assert applied["drain_timeout"] == 7.0
        time.sleep(0.5)
        assert cluster.cluster_status()["revision"] == revision + 1

        publish(etcd, {a.address: 1, b.address: 5})
        wait_endpoints(cluster.cores, {a.address: 1, b.address: 5}, "b on every core")

        # The leader dies: the new one's providers take over.
        leader.kill()
        survivors = [core for core in cluster.cores if core is not leader]
        new_leader = cluster.leader()
        assert new_leader is not leader
        wait_until(
            lambda: provider_state(new_leader)["state"] == "ok",
            timeout=10.0,
            what="the new leader's providers",
        )
        publish(etcd, {a.address: 2, b.address: 5})
        wait_endpoints(survivors, {a.address: 2, b.address: 5}, "a's new weight after failover")

        # Rolling replacement through a surviving core: c joins, a leaves, then a stops.
        traffic = Traffic(survivors[0].listener_address)
        traffic.start()
        try:
            publish(etcd, {a.address: 2, b.address: 5, c.address: 1})
            wait_endpoints(survivors, {a.address: 2, b.address: 5, c.address: 1}, "c joins")
            publish(etcd, {b.address: 5, c.address: 1})
            wait_endpoints(survivors, {b.address: 5, c.address: 1}, "a leaves")
            time.sleep(0.5)  # requests already sent to a finish there
            a.process.stop()
            sent = traffic.sent
            wait_until(lambda: traffic.sent - sent >= 200, timeout=20.0, what="traffic after a")
        finally:
            traffic.stopping.set()
            traffic.join(timeout=10.0)
        assert traffic.failures == [], traffic.failures[:5]
        assert traffic.served.get("c", 0) > 0

        # etcd goes away: the leader's provider fails, every core keeps the last good set.
        etcd.stop()
        wait_until(
            lambda: provider_state(new_leader)["state"] == "failing",
            timeout=10.0,
            what="the provider to report failing",
        )
        time.sleep(0.5)
        for core in survivors:
            assert endpoints_of(core) == {b.address: 5, c.address: 1}
    finally:
        cluster.kill_all()
        etcd.stop()
