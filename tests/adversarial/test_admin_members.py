"""Membership changes cannot cost the cluster its quorum: a member add whose Raft address
nobody answers on is refused, as is one (or a removal) that would leave fewer reachable
members than a majority; the cluster keeps its leader and keeps committing."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
from admin_client import admin_request
from cluster.conftest import Cluster, probe_config
from conftest import free_ports, wait_until

JSON = {"Content-Type": "application/json"}


def _reachable(cluster: Cluster, node_id: str) -> bool:
    status = cluster.leader().get_json("/api/v1/cluster")
    return any(c["id"] == node_id and c.get("reachable") for c in status["cores"])


@pytest.fixture
def cores(tmp_path) -> Iterator[Cluster]:
    cluster = Cluster(tmp_path / "cluster")
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop_all()


def test_three_bogus_members_are_refused_and_the_cluster_keeps_its_leader(cores: Cluster) -> None:
    target = cores.cores[0]
    members_before = {c["id"] for c in cores.cluster_status()["cores"]}
    for index, port in enumerate(free_ports(3)):
        answer = admin_request(
            target.admin_address,
            "POST",
            "/api/v1/members",
            body={
                "id": f"bogus-{index}",
                "raft": f"127.0.0.1:{port}",  # nothing listens there
                "admin": f"127.0.0.1:{port}",
                "region": "nowhere",
            },
            headers=JSON,
        )
        assert answer.status == 409, answer
        assert "quorum" in answer.body["error"] or "Raft address" in answer.body["error"], answer
    status = cores.wait_ready(timeout=10)
    assert status["has_quorum"] and status["leader"], status
    assert {c["id"] for c in status["cores"]} == members_before
    reply = cores.leader().put_config(probe_config("still committing\n"))
    assert reply.status == 200, reply.body


def test_an_add_is_refused_when_the_reachable_members_are_no_majority(cores: Cluster) -> None:
    """Two of three cores down: adding even a live fourth would need 3 of 4."""
    survivor = cores.cores[0]
    cores.cores[1].kill()
    cores.cores[2].kill()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)  # something answers there, so only the quorum rule can refuse
    try:
        address = f"127.0.0.1:{listener.getsockname()[1]}"
        answer = admin_request(
            survivor.admin_address,
            "POST",
            "/api/v1/members",
            body={"id": "fourth", "raft": address, "admin": address},
            headers=JSON,
        )
    finally:
        listener.close()
    assert answer.status == 409, answer
    assert "quorum" in answer.body["error"], answer.body


def test_a_removal_that_would_leave_no_reachable_majority_is_refused(cores: Cluster) -> None:
    """One core down: removing a live one would leave two members, one reachable."""
    leader = cores.leader()
    down, live = [core for core in cores.cores if core is not leader]
    down.kill()
    # The leader sees the link drop at once (the kernel closes a killed process's sockets);
    # wait until its admin is gone too, and a little longer.
    wait_until(
        lambda: not _reachable(cores, down.node_id), timeout=10, what="the core to be seen down"
    )
    time.sleep(1.0)
    answer = admin_request(
        leader.admin_address, "DELETE", f"/api/v1/members/{live.node_id}", headers=JSON
    )
    assert answer.status == 409, answer
    assert "quorum" in answer.body["error"], answer.body
    # Removing the dead one is what an operator should do first, and is allowed.
    removed = admin_request(
        leader.admin_address, "DELETE", f"/api/v1/members/{down.node_id}", headers=JSON
    )
    assert removed.status == 200, removed
