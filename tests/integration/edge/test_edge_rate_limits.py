"""An edge leases rate-limit quota from the cores, and falls back to its share alone."""

from __future__ import annotations

import asyncio

from cluster.conftest import Cluster
from cluster.test_cluster_quota_sessions import _hammer
from support import wait_until

LIMIT = 40


def _limited_config() -> dict:
    return {
        "routes": [
            {
                "name": "limited",
                "match": {"path_prefix": "/limited"},
                "direct_response": {"status": 200, "body": "ok\n"},
            }
        ],
        "rate_limits": [{"name": "shared", "key": "route", "limit": LIMIT, "window": "1s"}],
        "access_log": {"enabled": False},
    }


def _whole_windows(edge) -> list[int]:
    windows = edge.call("GET", "/api/v1/ratelimits").body["windows"]["shared"]
    return [w["admitted"] for w in windows[-5:-1]]


def test_edge_and_cores_share_one_limit_then_the_edge_falls_back_to_its_share(
    edge_cluster: Cluster, make_edge
) -> None:
    reply = edge_cluster.leader().put_config(_limited_config())
    assert reply.status == 200, reply
    revision = reply.body["revision"]
    edge_cluster.wait_applied(revision)
    edge = make_edge(edge_cluster, rate_limits={"fallback_share": 0.25})
    edge.wait_revision(revision)

    # Edge and one core take load together: one ledger, one limit per window.
    core = edge_cluster.cores[0]
    statuses = asyncio.run(_hammer([edge.listener_address, core.listener_address], 6))
    assert statuses.get(429, 0) > 0, statuses
    edge_windows = edge.call("GET", "/api/v1/ratelimits").body["windows"]["shared"]
    core_windows = core.get_json("/api/v1/ratelimits")["windows"]["shared"]
    by_window: dict[float, int] = {}
    for window in edge_windows + core_windows:
        by_window[window["window"]] = by_window.get(window["window"], 0) + window["admitted"]
    whole = [by_window[w] for w in sorted(by_window)[1:-1]]
    # The ledger grants at most the limit; each node may add its one request on credit.
    assert whole and all(admitted <= LIMIT + 2 for admitted in whole), whole
    assert edge.metric("dispa_rate_limit_fallback") == 0.0
    assert edge.call("GET", "/api/v1/ratelimits").body["mode"] == "leased"

    # Every core gone: the edge counts its configured share alone, and says so.
    edge_cluster.kill_all()
    statuses = asyncio.run(_hammer([edge.listener_address], 7))
    assert statuses.get(200, 0) > 0 and statuses.get(429, 0) > 0, statuses
    share = int(LIMIT * 0.25)
    assert _whole_windows(edge) == [share] * 4
    wait_until(
        lambda: edge.metric("dispa_rate_limit_fallback") == 1.0,
        timeout=5,
        what="the fallback metric",
    )
    assert edge.metric('dispa_rate_limit_overadmission_bound{limit="shared"}') == float(share)
