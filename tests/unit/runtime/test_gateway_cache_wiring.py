"""GatewayCache: when a single gateway gets a cache, and what a reload does to it."""

from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from dispa.config.load import build_gateway
from dispa.edge.cache.entry import CachedResponse
from dispa.edge.cache.key import primary_key, url_of
from dispa.edge.edge_cache import EdgeCache
from dispa.proxy.server import ListenError
from dispa.runtime.gateway_cache import GatewayCache

NOW = 1_700_000_000.0

BASE = """
listeners:
  - {name: public, address: "127.0.0.1:8080"}
upstreams:
  - {name: app, endpoints: [{address: "127.0.0.1:9001"}]}
routes:
  - {match: {path_prefix: /}, upstream: app}
"""


def config(cached: bool = True, **cache):
    data = yaml.safe_load(BASE)
    data["routes"][0]["cache"] = cached
    if cache:
        data["cache"] = cache
    return build_gateway(data)


def wired(worker_index=None) -> tuple[GatewayCache, SimpleNamespace]:
    # GatewayCache reads and sets only `gateway.cache`, as an edge node does.
    gateway = SimpleNamespace(cache=None)
    return GatewayCache(gateway, worker_index), gateway


def store_one(cache: EdgeCache, target: str = "/a") -> str:
    url = url_of("http", "shop.example", target)
    entry = CachedResponse.from_response(
        200, b"OK", [(b"Cache-Control", b"max-age=60"), (b"Cache-Tag", b"t")], b"x", NOW, NOW, url
    )
    assert cache.entries.store(primary_key("GET", "http", "shop.example", target), [], entry)
    return url


def test_no_cached_route_no_cache():
    wiring, gateway = wired()
    wiring.apply(config(cached=False))
    assert gateway.cache is None
    assert wiring.statistics() is None
    assert wiring.purge(["http://shop.example/a"], ["t"]) == 0


def test_a_cached_route_gets_the_defaults_or_the_section():
    wiring, gateway = wired()
    wiring.apply(config())
    assert isinstance(gateway.cache, EdgeCache)
    assert gateway.cache.entries.memory_limit == 64 * 1024 * 1024
    other, second = wired()
    other.apply(config(memory="1MiB"))
    assert second.cache.entries.memory_limit == 2**20


def test_a_reload_keeps_the_same_cache_and_its_entries():
    wiring, gateway = wired()
    wiring.apply(config())
    cache = gateway.cache
    url = store_one(cache)
    wiring.apply(config(memory="2MiB", max_entry="1KiB"))
    assert gateway.cache is cache  # exchanges waiting on a fetch hold on to it
    assert len(cache.entries) == 1
    assert (cache.entries.memory_limit, cache.entries.max_entry_bytes) == (2**20 * 2, 1024)
    assert cache.settings.memory == 2 * 2**20  # what the cache answers with, too
    assert wiring.purge([url], []) == 1


def test_a_config_without_cached_routes_empties_it_but_keeps_it():
    wiring, gateway = wired()
    wiring.apply(config())
    cache = gateway.cache
    store_one(cache)
    wiring.apply(config(cached=False))
    assert gateway.cache is cache and len(cache.entries) == 0


def test_another_disk_tier_starts_empty_and_deletes_the_old_files(tmp_path: Path):
    wiring, gateway = wired()
    wiring.apply(config(memory="0", disk_dir=str(tmp_path / "one")))
    store_one(gateway.cache)
    assert len(list((tmp_path / "one").rglob("*.entry"))) == 1
    wiring.apply(config(memory="0", disk_dir=str(tmp_path / "two")))
    assert len(gateway.cache.entries) == 0
    assert list((tmp_path / "one").rglob("*.entry")) == []
    assert gateway.cache.entries.disk_dir == str(tmp_path / "two")


def test_a_disk_tier_that_cannot_be_made_refuses_the_config(tmp_path: Path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    wiring, gateway = wired()
    wiring.apply(config())
    cache = gateway.cache
    refused = config(disk_dir=str(blocker / "cache"))
    with pytest.raises(ListenError, match=r"cache\.disk_dir"):
        wiring.check(refused)  # before the config goes live: it is refused
    assert gateway.cache is cache and cache.entries.disk_dir is None  # as it was
    wiring.check(config(cached=False, disk_dir=str(blocker / "cache")))  # no cache: no check


def test_each_worker_has_its_own_disk_tier(tmp_path: Path):
    wiring, gateway = wired(worker_index=3)
    wiring.apply(config(disk_dir=str(tmp_path)))
    assert gateway.cache.entries.disk_dir == str(tmp_path / "worker-3")
    assert (tmp_path / "worker-3").is_dir()


def test_purge_urls_are_normalised_with_the_listeners_path_rules():
    wiring, gateway = wired()
    wiring.apply(config())
    store_one(gateway.cache, "/x/y")
    assert wiring.purge(["http://shop.example//x/./y"], []) == 1
    store_one(gateway.cache, "/x/y")
    assert wiring.purge([], ["t"]) == 1
