"""The edge cache end to end: a real cluster, two real edges and a real origin (the demo
upstream's /cache/{key}, whose body counts the full answers it gave for each key)."""

from __future__ import annotations

import asyncio
import json
import time
from email.utils import formatdate
from pathlib import Path
from urllib.parse import quote

import aiohttp
import pytest
from cluster.conftest import Cluster, http_call
from conftest import Processes
from support import wait_until

from .conftest import EdgeProcess


@pytest.fixture(scope="module")
def cache_setup(tmp_path_factory: pytest.TempPathFactory):
    workdir: Path = tmp_path_factory.mktemp("edge-cache")
    processes = Processes(workdir / "logs")
    (workdir / "logs").mkdir()
    cluster = Cluster(workdir / "cluster")
    edges: list[EdgeProcess] = []
    try:
        origin = processes.demo_upstream("origin")
        fragile = processes.demo_upstream("fragile")  # killed by the stale-if-error test
        cluster.start()
        reply = cluster.leader().put_config(
            {
                "upstreams": [
                    {"name": "origin", "endpoints": [{"address": origin.address}]},
                    {
                        "name": "fragile",
                        "endpoints": [{"address": fragile.address}],
                        "retry": {"attempts": 1},
                    },
                ],
                "routes": [
                    {
                        "name": "cached",
                        "match": {"path_prefix": "/cache/"},
                        "upstream": "origin",
                        "cache": True,
                    },
                    {
                        "name": "fragile",
                        "match": {"path_prefix": "/fragile/"},
                        "prefix_rewrite": "/cache/",
                        "upstream": "fragile",
                        "cache": True,
                    },
                    {"name": "plain", "match": {"path_prefix": "/"}, "upstream": "origin"},
                ],
                "access_log": {"enabled": False},
            }
        )
        assert reply.status == 200, reply
        cores = [core.admin_address for core in cluster.cores]
        for name in ("edge-eu", "edge-us"):
            edge = EdgeProcess(name, name[5:], workdir / name, cores)
            edges.append(edge)
            edge.start()
            edge.wait_revision(reply.body["revision"])
        yield cluster, origin, edges, fragile
    finally:
        for edge in edges:
            edge.stop()
        cluster.stop_all()
        processes.stop_all()


def _get(edge: EdgeProcess, path: str, **headers: str):
    reply = edge.get(path, headers=headers)
    return reply.status, reply.headers.get("x-cache"), reply.body, reply.headers


def _origin_counts(origin, key: str) -> tuple[int, int]:
    counts = http_call(origin.address, "GET", "/admin/cache-hits").body
    return counts["requests"].get(key, 0), counts["full_answers"].get(key, 0)


def _path(key: str, **params: str) -> str:
    query = "&".join(f"{name}={quote(value)}" for name, value in params.items())
    return f"/cache/{key}" + (f"?{query}" if query else "")


def test_max_age_is_a_hit_with_its_age(cache_setup) -> None:
    _, origin, (edge, _), _ = cache_setup
    path = _path("fresh", cc="max-age=60")
    assert _get(edge, path)[:3] == (200, "MISS", "origin fresh #1\n")
    time.sleep(1.1)
    status, how, body, headers = _get(edge, path)
    assert (status, how, body) == (200, "HIT", "origin fresh #1\n")
    assert int(headers["age"]) >= 1
    assert _origin_counts(origin, "fresh") == (1, 1)


def test_a_core_serves_a_cached_route_without_caching(cache_setup) -> None:
    # Only edges keep a response cache: a core proxies a `cache: true` route every time.
    cluster, origin, _, _ = cache_setup
    core = cluster.leader()
    path = _path("at-core", cc="max-age=60")
    first = http_call(core.listener_address, "GET", path)
    second = http_call(core.listener_address, "GET", path)
    assert (first.status, first.body) == (200, "origin at-core #1\n")
    assert (second.status, second.body) == (200, "origin at-core #2\n")
    assert "x-cache" not in first.headers and "x-cache" not in second.headers
    assert _origin_counts(origin, "at-core") == (2, 2)


@pytest.mark.parametrize(
    ("key", "cc"),
    [("nostore", "no-store"), ("private", "private, max-age=60"), ("nocc", "")],
)
def test_responses_a_shared_cache_must_not_reuse(cache_setup, key: str, cc: str) -> None:
    _, origin, (edge, _), _ = cache_setup
    path = _path(key, cc=cc)
    assert _get(edge, path)[1] == "MISS"
    assert _get(edge, path)[1] == "MISS"
    assert _origin_counts(origin, key)[1] == 2


def test_s_maxage_wins_over_max_age_for_a_shared_cache(cache_setup) -> None:
    _, origin, (edge, _), _ = cache_setup
    path = _path("smaxage", cc="max-age=0, s-maxage=60")
    _get(edge, path)
    assert _get(edge, path)[1] == "HIT"
    assert _origin_counts(origin, "smaxage")[1] == 1


def test_expires_in_the_future_and_in_the_past(cache_setup) -> None:
    _, origin, (edge, _), _ = cache_setup
    later = formatdate(time.time() + 300, usegmt=True)
    earlier = formatdate(time.time() - 300, usegmt=True)
    _get(edge, _path("expires-later", cc="", expires=later))
    assert _get(edge, _path("expires-later", cc="", expires=later))[1] == "HIT"
    _get(edge, _path("expires-past", cc="", expires=earlier))
    assert _get(edge, _path("expires-past", cc="", expires=earlier))[1] == "MISS"
    assert _origin_counts(origin, "expires-later")[1] == 1
    assert _origin_counts(origin, "expires-past")[1] == 2


def test_heuristic_freshness_from_last_modified(cache_setup) -> None:
    _, origin, (edge, _), _ = cache_setup
    # Modified ten days ago, no explicit expiry: fresh for a tenth of that (capped at a day).
    modified = formatdate(time.time() - 10 * 86400, usegmt=True)
    path = _path("heuristic", cc="", lm=modified)
    _get(edge, path)
    assert _get(edge, path)[1] == "HIT"
    assert _origin_counts(origin, "heuristic") == (1, 1)


def test_no_cache_revalidates_with_the_etag_and_a_304_refreshes(cache_setup) -> None:
    _, origin, (edge, _), _ = cache_setup
    path = _path("nocache", cc="no-cache", etag='"v1"')
    assert _get(edge, path)[:3] == (200, "MISS", "origin nocache #1\n")
    status, how, body, headers = _get(edge, path)
    assert (status, how, body) == (200, "REVALIDATED", "origin nocache #1\n")
    assert headers["etag"] == '"v1"'
    # Two requests reached the origin, one full answer: the second was a 304.
    assert _origin_counts(origin, "nocache") == (2, 1)


def test_must_revalidate_once_stale_and_last_modified_validation(cache_setup) -> None:
    _, origin, (edge, _), _ = cache_setup
    modified = formatdate(time.time() - 3600, usegmt=True)
    path = _path("mustreval", cc="max-age=1, must-revalidate", lm=modified)
    _get(edge, path)
    assert _get(edge, path)[1] == "HIT"
    time.sleep(1.6)
    assert _get(edge, path)[1] == "REVALIDATED"
    assert _origin_counts(origin, "mustreval") == (2, 1)


def test_proxy_revalidate_is_honoured_by_the_edge(cache_setup) -> None:
    _, origin, (edge, _), _ = cache_setup
    path = _path("proxyreval", cc="max-age=1, proxy-revalidate", etag='"p"')
    _get(edge, path)
    time.sleep(1.6)
    # Stale and proxy-revalidate: never served stale, even to a client that accepts it.
    assert _get(edge, path, **{"Cache-Control": "max-stale=60"})[1] == "REVALIDATED"
    assert _origin_counts(origin, "proxyreval") == (2, 1)


def test_vary_keeps_one_variant_per_header_value(cache_setup) -> None:
    _, origin, (edge, _), _ = cache_setup
    path = _path("vary", cc="max-age=60", vary="Accept-Language")
    assert _get(edge, path, **{"Accept-Language": "en"})[1:3] == ("MISS", "origin vary #1\n")
    assert _get(edge, path, **{"Accept-Language": "fr"})[1:3] == ("MISS", "origin vary #2\n")
    assert _get(edge, path, **{"Accept-Language": "en"})[1:3] == ("HIT", "origin vary #1\n")
    assert _get(edge, path, **{"Accept-Language": "fr"})[1:3] == ("HIT", "origin vary #2\n")
    assert _origin_counts(origin, "vary") == (2, 2)


def test_the_edge_answers_a_clients_conditional_request_itself(cache_setup) -> None:
    _, origin, (edge, _), _ = cache_setup
    path = _path("conditional", cc="max-age=60", etag='"c1"')
    _get(edge, path)
    status, how, body, _ = _get(edge, path, **{"If-None-Match": '"c1"'})
    assert (status, how, body) == (304, "HIT", "")
    assert _origin_counts(origin, "conditional") == (1, 1)


def test_only_if_cached_without_an_entry_is_504(cache_setup) -> None:
    _, _, (edge, _), _ = cache_setup
    status, _, _, _ = _get(edge, _path("never"), **{"Cache-Control": "only-if-cached"})
    assert status == 504


def test_stale_while_revalidate_serves_stale_and_refreshes_behind(cache_setup) -> None:
    _, origin, (edge, _), _ = cache_setup
    path = _path("swr", cc="max-age=1, stale-while-revalidate=30")
    assert _get(edge, path)[2] == "origin swr #1\n"
    time.sleep(1.6)
    assert _get(edge, path)[1:3] == ("STALE", "origin swr #1\n")
    wait_until(lambda: _origin_counts(origin, "swr")[1] == 2, timeout=5, what="the refresh")
    assert _get(edge, path)[1:3] == ("HIT", "origin swr #2\n")


def test_a_hundred_concurrent_misses_make_one_origin_request(cache_setup) -> None:
    _, origin, (edge, _), _ = cache_setup
    url = f"http://{edge.listener_address}" + _path("coalesce", cc="max-age=60", delay_ms="500")

    async def burst() -> list[str]:
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=200), timeout=aiohttp.ClientTimeout(total=20)
        ) as session:

            async def one() -> str:
                async with session.get(url) as reply:
                    assert reply.status == 200
                    return await reply.text()

            return await asyncio.gather(*(one() for _ in range(100)))

    bodies = asyncio.run(burst())
    assert set(bodies) == {"origin coalesce #1\n"}
    assert _origin_counts(origin, "coalesce") == (1, 1)


def test_purges_by_url_and_by_tag_reach_both_edges(cache_setup) -> None:
    cluster, origin, edges, _ = cache_setup
    by_url = _path("purge-url", cc="max-age=300")
    by_tag = _path("purge-tag", cc="max-age=300", tags="catalog, promo")
    for edge in edges:
        _get(edge, by_url)
        _get(edge, by_tag)
        assert _get(edge, by_url)[1] == "HIT" and _get(edge, by_tag)[1] == "HIT"
    leader = cluster.leader()
    for body in (
        {
            "urls": [
                f"http://{edges[0].listener_address}{by_url}",
                f"http://{edges[1].listener_address}{by_url}",
            ]
        },
        {"tags": ["promo"]},
    ):
        reply = http_call(
            leader.admin_address,
            "POST",
            "/api/v1/cache/purge",
            body=json.dumps(body),
            headers={"Content-Type": "application/json"},
        )
        assert reply.status == 200, reply
    last_seq = reply.body["seq"]
    for edge in edges:
        wait_until(
            lambda e=edge: e.status()["purge_seq"] >= last_seq,
            timeout=5,
            what=f"the purges on {edge.name}",
        )
        assert _get(edge, by_url)[1] == "MISS" and _get(edge, by_tag)[1] == "MISS"
    # Each edge fetched each key once before the purges and once after.
    assert _origin_counts(origin, "purge-url")[1] == 4
    assert _origin_counts(origin, "purge-tag")[1] == 4
    bad = http_call(
        leader.admin_address,
        "POST",
        "/api/v1/cache/purge",
        body=json.dumps({"urls": ["x"]}),
        headers={"Content-Type": "application/json"},
    )
    assert bad.status == 400 and "urls[0]" in bad.body["error"]


def test_cache_results_and_hit_ratio_in_metrics(cache_setup) -> None:
    _, _, (edge, _), _ = cache_setup
    path = _path("metrics", cc="max-age=60")
    _get(edge, path)
    _get(edge, path)
    assert edge.metric('dispa_cache_responses_total{result="hit"}') >= 1
    assert edge.metric('dispa_cache_responses_total{result="miss"}') >= 1
    assert 0 < edge.metric("dispa_cache_hit_ratio") < 1
    assert edge.metric('dispa_cache_stored_bytes{tier="memory"}') > 0
    stats = edge.call("GET", "/api/v1/cache").body
    assert stats["results"]["hit"] >= 1 and stats["store"]["entries"] >= 1


def test_stale_if_error_answers_when_the_origin_is_gone(cache_setup) -> None:
    _, _, (edge, _), fragile = cache_setup
    allowed = "/fragile/sie?cc=" + quote("max-age=1, stale-if-error=60")
    refused = "/fragile/strict?cc=" + quote("max-age=1, must-revalidate")
    assert _get(edge, allowed)[1:3] == ("MISS", "fragile sie #1\n")
    assert _get(edge, refused)[1:3] == ("MISS", "fragile strict #1\n")
    time.sleep(1.6)
    fragile.process.stop()
    assert _get(edge, allowed)[:3] == (200, "STALE", "fragile sie #1\n")
    # must-revalidate: a stale copy may not stand in for the origin.
    assert _get(edge, refused)[0] == 502


def test_dispa_purge_and_status_from_the_command_line(cache_setup) -> None:
    from cluster.conftest import run_cli

    cluster, _, edges, _ = cache_setup
    admin = cluster.cores[1].admin_address
    done = run_cli("purge", "--admin", admin, "--tag", "catalog")
    assert done.returncode == 0, done.stderr
    assert "committed (0 urls, 1 tags)" in done.stdout
    refused = run_cli("purge", "--admin", admin, "--url", "not-a-url")
    assert refused.returncode == 2 and "urls[0]" in refused.stderr
    assert "Traceback" not in refused.stderr
    nothing = run_cli("purge", "--admin", admin)
    assert nothing.returncode == 2 and "--url or --tag" in nothing.stderr
    status = run_cli("status", "--admin", admin)
    assert status.returncode == 0
    for edge in edges:
        wait_until(
            lambda e=edge: e.name in run_cli("status", "--admin", admin).stdout,
            timeout=10,
            what=f"{edge.name} in dispa status",
        )


def test_the_cache_key_is_the_normalised_target(cache_setup) -> None:
    """One meaning per request: however a client spells a path, the edge stores and finds
    it under its normal form, the one the origin was sent (no second copy to poison)."""
    _, origin, (edge, _), _ = cache_setup
    assert _get(edge, "/cache/spelled?cc=max-age%3D60")[:3] == (200, "MISS", "origin spelled #1\n")
    for spelling in ("/cache/%73pelled", "//cache/./spelled", "/x/../cache/spelle%64"):
        status, how, body, _ = _get(edge, spelling + "?cc=max-age%3D60")
        assert (status, how, body) == (200, "HIT", "origin spelled #1\n"), spelling
    assert _origin_counts(origin, "spelled") == (1, 1)


def test_a_purge_url_is_normalised_as_request_targets_are(cache_setup) -> None:
    """A purge spelled differently from the request (an encoded unreserved character,
    merged slashes, a dot segment) names the same entry; a URL whose target the data
    plane refuses can match nothing, so the core answers 400 rather than commit it."""
    cluster, origin, (edge, _), _ = cache_setup
    path = _path("purge-spelled", cc="max-age=300")
    _get(edge, path)
    assert _get(edge, path)[1] == "HIT"
    leader = cluster.leader()
    spelled = path.replace("/cache/purge-spelled", "//cache/./purge%2Dspelled")

    def purge(*urls: str):
        return http_call(
            leader.admin_address,
            "POST",
            "/api/v1/cache/purge",
            body=json.dumps({"urls": list(urls)}),
            headers={"Content-Type": "application/json"},
        )

    reply = purge(f"http://{edge.listener_address}{spelled}")
    assert reply.status == 200, reply
    wait_until(
        lambda: edge.status()["purge_seq"] >= reply.body["seq"],
        timeout=5,
        what="the purge on the edge",
    )
    assert _get(edge, path)[1] == "MISS"
    assert _origin_counts(origin, "purge-spelled")[1] == 2
    for bad, said in (("/cache/a%2Fb", "encoded '/'"), ("/cache/a#b", "fragment")):
        refused = purge(f"http://{edge.listener_address}/cache/ok", f"http://x{bad}")
        assert refused.status == 400, refused
        assert "urls[1]" in refused.body["error"] and said in refused.body["error"], refused
