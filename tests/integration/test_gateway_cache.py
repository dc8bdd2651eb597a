"""A single gateway (``dispa run``) caches the routes with ``cache: true``, as an edge does.

The origin is the demo upstream's ``/cache/{key}``: its body counts the full answers it
gave for each key, and ``/admin/cache-hits`` how many requests each key received.
"""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from conftest import (
    PYTHON,
    REPO,
    Gateway,
    Processes,
    Upstream,
    make_config,
    wait_until,
)

CACHED = {
    "name": "cached",
    "match": {"path_prefix": "/cache/"},
    "upstream": "origin",
    "cache": True,
}
PLAIN = {"name": "plain", "match": {"path_prefix": "/"}, "upstream": "origin"}
# The same origin path through a route that does not cache.
UNCACHED = {
    "name": "uncached",
    "match": {"path_prefix": "/nocache/"},
    "prefix_rewrite": "/cache/",
    "upstream": "origin",
}


def gateway_config(origin: Upstream, routes=(CACHED, PLAIN), **top) -> dict:
    return make_config(
        upstreams=[{"name": "origin", "endpoints": [{"address": origin.address}]}],
        routes=list(routes),
        **top,
    )


def get(url: str) -> tuple[int, str | None, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.headers.get("x-cache"), response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("x-cache"), error.read()


def post_json(url: str, document: dict) -> tuple[int, dict]:
    request = urllib.request.Request(
        url,
        data=json.dumps(document).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def origin_requests(origin: Upstream, key: str) -> int:
    with urllib.request.urlopen(origin.url("/admin/cache-hits"), timeout=5) as response:
        return json.loads(response.read())["requests"].get(key, 0)


def admin(gateway: Gateway, path: str) -> str:
    return f"http://127.0.0.1:{gateway.admin_port}{path}"


def run_cli(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PYTHON, "-m", "dispa", *args],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=cwd,
        check=False,
    )


@pytest.fixture(scope="module")
def origin(module_processes: Processes) -> Upstream:
    return module_processes.demo_upstream("origin")


@pytest.fixture(scope="module")
def gateway(
    module_processes: Processes, tmp_path_factory: pytest.TempPathFactory, origin: Upstream
) -> Gateway:
    # No `cache:` section: a route with `cache: true` gets the default memory cache.
    config = gateway_config(origin, routes=(CACHED, UNCACHED, PLAIN))
    return module_processes.gateway(config, tmp_path_factory.mktemp("gateway-cache"))


# ---------------------------------------------------------------- caching


def test_the_second_get_is_a_hit_and_the_origin_saw_one_request(
    gateway: Gateway, origin: Upstream
) -> None:
    first = get(gateway.url("/cache/hit-once?cc=max-age=300"))
    second = get(gateway.url("/cache/hit-once?cc=max-age=300"))
    assert first == (200, "MISS", b"origin hit-once #1\n")
    assert second == (200, "HIT", b"origin hit-once #1\n")
    assert origin_requests(origin, "hit-once") == 1


def test_a_route_without_cache_is_not_cached(gateway: Gateway, origin: Upstream) -> None:
    for _ in range(2):
        status, x_cache, _ = get(gateway.url("/nocache/uncached?cc=max-age=300"))
        assert (status, x_cache) == (200, None)
    assert origin_requests(origin, "uncached") == 2


def test_cache_metrics_and_statistics_on_the_gateways_admin(
    gateway: Gateway, origin: Upstream
) -> None:
    get(gateway.url("/cache/metrics?cc=max-age=300"))
    get(gateway.url("/cache/metrics?cc=max-age=300"))
    assert gateway.metric("dispa_cache_responses_total", result="hit") >= 1
    assert gateway.metric("dispa_cache_responses_total", result="miss") >= 1
    assert gateway.metric("dispa_cache_entries") >= 1
    status, body = get(admin(gateway, "/api/v1/cache"))[::2]
    assert status == 200
    statistics = json.loads(body)
    assert statistics["results"]["hit"] >= 1
    assert statistics["store"]["memory_limit"] == 64 * 1024 * 1024  # the default


# ---------------------------------------------------------------- purges


def test_purge_by_url_and_by_tag_on_the_gateways_admin(gateway: Gateway, origin: Upstream) -> None:
    by_url = "/cache/purge-url?cc=max-age=300"
    by_tag = "/cache/purge-tag?cc=max-age=300&tags=catalog"
    for path in (by_url, by_tag):
        assert get(gateway.url(path))[1] == "MISS"
        assert get(gateway.url(path))[1] == "HIT"
    status, answer = post_json(
        admin(gateway, "/api/v1/cache/purge"), {"urls": [gateway.url(by_url)]}
    )
    assert (status, answer) == (200, {"ok": True, "removed": 1})
    status, answer = post_json(admin(gateway, "/api/v1/cache/purge"), {"tags": ["catalog"]})
    assert (status, answer) == (200, {"ok": True, "removed": 1})
    for path, key in ((by_url, "purge-url"), (by_tag, "purge-tag")):
        assert get(gateway.url(path)) == (200, "MISS", f"origin {key} #2\n".encode())


def test_purge_requests_the_data_plane_cannot_match_are_refused(gateway: Gateway) -> None:
    purge = admin(gateway, "/api/v1/cache/purge")
    assert post_json(purge, {})[0] == 400
    assert post_json(purge, {"urls": "http://x/"})[0] == 400
    status, answer = post_json(purge, {"urls": ["not-a-url"]})
    assert status == 400 and "urls[0]" in answer["error"]
    status, answer = post_json(purge, {"urls": [gateway.url("/cache/a%2Fb")]})
    assert status == 400 and "escaped_slashes" in answer["error"]


def test_dispa_purge_reaches_a_single_gateway(gateway: Gateway, origin: Upstream) -> None:
    path = "/cache/purge-cli?cc=max-age=300"
    get(gateway.url(path))
    assert get(gateway.url(path))[1] == "HIT"
    done = run_cli(
        "purge", "--admin", f"127.0.0.1:{gateway.admin_port}", "--url", gateway.url(path)
    )
    assert done.returncode == 0, done.stderr
    assert "removed 1" in done.stdout
    assert get(gateway.url(path))[1] == "MISS"


# ---------------------------------------------------------------- reload


def test_a_reload_applies_new_sizes_and_keeps_what_fits(
    processes: Processes, tmp_path: Path, origin: Upstream
) -> None:
    config = gateway_config(origin)
    gateway = processes.gateway(config, tmp_path)
    path = "/cache/reload-keep?cc=max-age=300"
    assert get(gateway.url(path))[1] == "MISS"
    assert get(gateway.url(path))[1] == "HIT"
    revision = gateway.revision()
    gateway.reload({**config, "cache": {"memory": "2MiB", "max_entry": "1MiB"}})
    wait_until(lambda: gateway.revision() > revision, timeout=10, what="the reload")
    store = gateway.admin_json("/api/v1/cache")["store"]
    assert store["memory_limit"] == 2 * 1024 * 1024
    assert get(gateway.url(path))[1] == "HIT"  # the entry fits: kept
    assert origin_requests(origin, "reload-keep") == 1
    # Smaller than the entry: it is evicted, and the next request goes to the origin.
    revision = gateway.revision()
    gateway.reload({**config, "cache": {"memory": "64", "max_entry": "1MiB"}})
    wait_until(lambda: gateway.revision() > revision, timeout=10, what="the second reload")
    assert gateway.admin_json("/api/v1/cache")["store"]["entries"] == 0
    assert get(gateway.url(path))[1] == "MISS"


def test_a_reload_whose_disk_tier_cannot_be_made_is_refused(
    processes: Processes, tmp_path: Path, origin: Upstream
) -> None:
    config = gateway_config(origin)
    gateway = processes.gateway(config, tmp_path)
    path = "/cache/refused-reload?cc=max-age=300"
    get(gateway.url(path))
    revision = gateway.revision()
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    gateway.reload({**config, "cache": {"disk_dir": str(blocker / "cache")}})
    wait_until(lambda: "cache.disk_dir" in gateway.stderr(), timeout=10, what="the refusal")
    assert "refused, the previous config keeps serving" in gateway.stderr()
    assert gateway.revision() == revision
    assert get(gateway.url(path))[1] == "HIT"


def test_a_reload_that_adds_the_first_cached_route_starts_the_cache(
    processes: Processes, tmp_path: Path, origin: Upstream
) -> None:
    config = gateway_config(origin, routes=[PLAIN])
    gateway = processes.gateway(config, tmp_path)
    assert gateway.admin_status("/api/v1/cache") == 404  # no route caches: no cache
    assert get(gateway.url("/cache/late?cc=max-age=300"))[1] is None
    revision = gateway.revision()
    gateway.reload({**config, "routes": [CACHED, PLAIN]})
    wait_until(lambda: gateway.revision() > revision, timeout=10, what="the reload")
    assert get(gateway.url("/cache/late?cc=max-age=300"))[1] == "MISS"
    assert get(gateway.url("/cache/late?cc=max-age=300"))[1] == "HIT"


def test_shrinking_memory_moves_entries_to_the_disk_tier_which_outlives_a_restart(
    processes: Processes, tmp_path: Path, origin: Upstream
) -> None:
    disk = tmp_path / "cache"
    config = gateway_config(origin, cache={"memory": "1MiB", "disk_dir": str(disk)})
    gateway = processes.gateway(config, tmp_path / "one")
    path = "/cache/on-disk?cc=max-age=300"
    assert get(gateway.url(path))[1] == "MISS"
    # Shrinking memory below the entry moves it to the disk tier rather than dropping it.
    revision = gateway.revision()
    smaller = {**config, "cache": {"memory": "64", "disk_dir": str(disk)}}
    gateway.reload(smaller)
    wait_until(lambda: gateway.revision() > revision, timeout=10, what="the reload")
    store = gateway.admin_json("/api/v1/cache")["store"]
    assert (store["memory_entries"], store["disk_entries"]) == (0, 1)
    assert get(gateway.url(path))[1] == "HIT"
    gateway.process.stop()
    restarted = processes.gateway(smaller, tmp_path / "two")
    assert get(restarted.url(path))[1] == "HIT"
    assert origin_requests(origin, "on-disk") == 1


# ---------------------------------------------------------------- validate


def test_dispa_validate_accepts_cached_routes_with_and_without_a_cache_section(
    tmp_path: Path, origin: Upstream
) -> None:
    for name, top in (("bare", {}), ("sized", {"cache": {"memory": "16MiB"}})):
        path = tmp_path / f"{name}.yaml"
        path.write_text(json.dumps(gateway_config(origin, **top)))
        result = run_cli("validate", "-c", str(path))
        assert (result.returncode, result.stdout.strip()) == (0, "ok"), result.stderr


def test_dispa_validate_names_a_bad_cache_field(tmp_path: Path, origin: Upstream) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(json.dumps(gateway_config(origin, cache={"memroy": "16MiB"})))
    result = run_cli("validate", "-c", str(path))
    assert result.returncode == 2
    assert "cache.memroy: unknown field" in result.stderr


def test_the_shipped_caching_gateway_example_validates() -> None:
    result = run_cli("validate", "-c", str(REPO / "deploy/examples/cached-gateway.yaml"))
    assert (result.returncode, result.stdout.strip()) == (0, "ok"), result.stderr


# ---------------------------------------------------------------- worker processes


def test_with_workers_each_caches_on_its_own_and_a_purge_reaches_them_all(
    processes: Processes, tmp_path: Path, origin: Upstream
) -> None:
    disk = tmp_path / "cache"
    config = gateway_config(origin, cache={"memory": "1MiB", "disk_dir": str(disk)})
    gateway = processes.gateway(config, tmp_path, args=("--workers", "2"), ready=False)
    gateway.wait_ready(timeout=20.0)
    path = "/cache/workers?cc=max-age=300"
    # Each request on a new connection: the kernel spreads them over both workers.
    answers = [get(gateway.url(path)) for _ in range(30)]
    assert {status for status, _, _ in answers} == {200}
    fetched = origin_requests(origin, "workers")
    assert 1 <= fetched <= 2  # at most one fetch per worker: each has its own cache
    assert [x_cache for _, x_cache, _ in answers].count("HIT") == 30 - fetched
    # Two stores never share a directory.
    assert sorted(p.name for p in disk.iterdir()) == ["worker-0", "worker-1"]

    def hits_published() -> bool:
        return gateway.metric("dispa_cache_responses_total", result="hit") == 30 - fetched

    wait_until(hits_published, timeout=10, what="the workers' cache metrics")
    workers = gateway.admin_json("/api/v1/cache")["workers"]
    assert sum(doc["results"]["miss"] for doc in workers if doc) == fetched

    status, answer = post_json(admin(gateway, "/api/v1/cache/purge"), {"urls": [gateway.url(path)]})
    assert (status, answer) == (200, {"ok": True, "removed": fetched})
    assert get(gateway.url(path))[1] == "MISS"  # whichever worker answers
