"""A quota lease takes its limit and window from the replicated config, never from the
request: a peer cannot lease past a global rate limit by naming a bigger one, nor create
ledger entries for limits that do not exist, nor pick a window far from the core's clock."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from admin_client import admin_request
from cluster.conftest import Cluster, probe_config

JSON = {"Content-Type": "application/json"}
LIMIT, WINDOW = 5, 60.0


@pytest.fixture(scope="module")
def cores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    cluster = Cluster(tmp_path_factory.mktemp("admin-quota-lease"))
    try:
        cluster.start()
        config = probe_config("limited\n") | {
            "rate_limits": [{"name": "api", "key": "route", "limit": LIMIT, "window": "60s"}]
        }
        reply = cluster.leader().put_config(config)
        assert reply.status == 200, reply.body
        cluster.wait_applied(reply.body["revision"])
        yield cluster
    finally:
        cluster.stop_all()


def _lease(cluster: Cluster, **fields) -> tuple[int, dict]:
    body = {
        "limit_name": "api",
        "key": "attacker",
        "node": "edge:evil",
        "want": 1000,
        "limit": 1_000_000,
        "window": 0.001,
        "now": time.time(),
    } | fields
    answer = admin_request(
        cluster.cores[1].admin_address, "POST", "/api/v1/quota/lease", body=body, headers=JSON
    )
    return answer.status, answer.body


def _ledger(cluster: Cluster) -> dict:
    leader = cluster.leader()
    return admin_request(leader.admin_address, "GET", "/api/v1/backup").body["state"]["quota"]


def test_a_lease_cannot_choose_its_own_limit_or_window(cores: Cluster) -> None:
    status, first = _lease(cores)
    assert status == 200, first
    assert first["granted"] <= LIMIT, first
    # The window is the configured one (aligned to 60 s), not the 1 ms the request named.
    assert first["window"] % WINDOW == 0, first
    status, second = _lease(cores, node="edge:evil-2", limit=10**9)
    assert status == 200, second
    assert first["granted"] + second["granted"] <= LIMIT, (first, second)
    entry = _ledger(cores)["api\x00attacker"]
    assert entry["limit"] == LIMIT and sum(entry["leases"].values()) <= LIMIT, entry


def test_a_lease_of_an_unknown_limit_is_refused(cores: Cluster) -> None:
    status, body = _lease(cores, limit_name="no-such-limit", key="k2")
    assert status == 404, body
    assert "no-such-limit" in body["error"], body
    assert not any(slot.startswith("no-such-limit\x00") for slot in _ledger(cores))


def test_a_lease_stamped_far_from_the_cores_clock_is_refused(cores: Cluster) -> None:
    """A lease stamped an hour ahead would move the key's ledger to a future window, and
    every honest node's lease for the current one would be granted nothing."""
    status, body = _lease(cores, key="future", now=time.time() + 3600)
    assert status == 400, body
    assert "clock" in body["error"], body
    assert "api\x00future" not in _ledger(cores)
