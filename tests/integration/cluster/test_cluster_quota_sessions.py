"""Global rate limits with leased quota, and sticky sessions, across three real cores."""

from __future__ import annotations

import asyncio
import time

import aiohttp

from .conftest import Cluster, wait_until

LIMIT = 100
WINDOWS = 24  # seconds of load with 1 s windows; the first and last are partial, and a
# loaded machine may be slow to start the load: 20 whole windows with margin


def _apply(cluster: Cluster, config: dict) -> int:
    reply = cluster.leader().put_config(config)
    assert reply.status == 200, reply.body
    revision = reply.body["revision"]
    cluster.wait_applied(revision)
    return revision


async def _hammer(addresses: list[str], seconds: float) -> dict[int, int]:
    """Requests as fast as 4 clients per core can go; counts of each status."""
    statuses: dict[int, int] = {}
    deadline = time.monotonic() + seconds
    timeout = aiohttp.ClientTimeout(total=5)
    async with aiohttp.ClientSession(timeout=timeout) as session:

        async def client(address: str) -> None:
            while time.monotonic() < deadline:
                async with session.get(f"http://{address}/limited") as reply:
                    await reply.read()
                    statuses[reply.status] = statuses.get(reply.status, 0) + 1

        await asyncio.gather(*(client(a) for a in addresses for _ in range(4)))
    return statuses


def test_admitted_per_window_stays_within_five_percent_of_the_limit(cluster: Cluster) -> None:
    _apply(
        cluster,
        {
            "routes": [
                {
                    "name": "limited",
                    "match": {"path_prefix": "/limited"},
                    "direct_response": {"status": 200, "body": "ok\n"},
                }
            ],
            # Keyed by route: every client on every core shares one limit.
            "rate_limits": [{"name": "shared", "key": "route", "limit": LIMIT, "window": "1s"}],
            "access_log": {"enabled": False},
        },
    )
    addresses = [core.listener_address for core in cluster.cores]
    statuses = asyncio.run(_hammer(addresses, WINDOWS))
    assert statuses.get(429, 0) > 0, f"the load never reached the limit: {statuses}"

    admitted: dict[float, int] = {}
    for core in cluster.cores:
        windows = core.get_json("/api/v1/ratelimits")["windows"]["shared"]
        for window in windows:
            admitted[window["window"]] = admitted.get(window["window"], 0) + window["admitted"]
    # Whole windows only: drop the partial first and last ones.
    whole = sorted(admitted)[1:-1]
    assert len(whole) >= 20, f"only {len(whole)} whole windows measured"
    report = {int(start): admitted[start] for start in whole}
    print(f"\nadmitted per window across 3 cores (limit {LIMIT}): {report}")
    for start in whole:
        assert abs(admitted[start] - LIMIT) <= LIMIT * 0.05, report


def test_a_client_keeps_its_endpoint_through_another_core_when_its_core_dies(
    cluster: Cluster, upstream_a, upstream_b
) -> None:
    _apply(
        cluster,
        {
            "upstreams": [
                {
                    "name": "app",
                    "lb": "round_robin",
                    "endpoints": [{"address": upstream_a.address}, {"address": upstream_b.address}],
                    "session_affinity": {"cookie": "sid", "ttl": "10m"},
                }
            ],
            "routes": [{"match": {"path_prefix": "/"}, "upstream": "app"}],
            "access_log": {"enabled": False},
        },
    )
    first, second, third = cluster.cores

    async def scenario() -> None:
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(cookie_jar=jar) as session:

            async def upstream_via(core) -> str:
                async with session.get(f"http://{core.listener_address}/") as reply:
                    assert reply.status == 200
                    return reply.headers["x-upstream"]

            chosen = await upstream_via(first)
            assert any(cookie.key == "sid" for cookie in jar)
            # The session reaches every core through the Raft log (a heartbeat or two).
            await asyncio.sleep(0.5)
            for _ in range(5):
                assert await upstream_via(second) == chosen
                assert await upstream_via(third) == chosen
            first.kill()
            for _ in range(5):
                assert await upstream_via(second) == chosen
                assert await upstream_via(third) == chosen

    asyncio.run(scenario())
    # With the session's core gone, a new session still works on the survivors.
    wait_until(lambda: second.node_status()["leader"] is not None, timeout=10, what="a leader")


def test_a_core_cut_off_from_the_quorum_falls_back_to_its_share(cluster: Cluster) -> None:
    limit = 30
    _apply(
        cluster,
        {
            "routes": [
                {
                    "name": "limited",
                    "match": {"path_prefix": "/limited"},
                    "direct_response": {"status": 200, "body": "ok\n"},
                }
            ],
            "rate_limits": [{"name": "shared", "key": "route", "limit": limit, "window": "1s"}],
            "access_log": {"enabled": False},
        },
    )
    survivor, *others = cluster.cores
    for core in others:
        core.kill()
    wait_until(
        lambda: survivor.node_status()["has_quorum"] is False, timeout=10, what="quorum lost"
    )
    statuses = asyncio.run(_hammer([survivor.listener_address], 8))
    assert statuses.get(200, 0) > 0 and statuses.get(429, 0) > 0, statuses

    share = limit // 3
    windows = survivor.get_json("/api/v1/ratelimits")["windows"]["shared"]
    whole = [w["admitted"] for w in windows[-5:-1]]  # the last whole windows of the run
    # Alone, the core admits exactly its share of the limit in every window: it stays in
    # fallback while it keeps probing the lost quorum.
    assert whole == [share] * 4, (share, windows[-6:])
    metrics = survivor.call("GET", "/metrics").body
    assert "dispa_rate_limit_fallback 1.0" in metrics
    assert f'dispa_rate_limit_overadmission_bound{{limit="shared"}} {float(share)}' in metrics
