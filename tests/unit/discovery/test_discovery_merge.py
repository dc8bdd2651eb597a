"""apply_discovered: the shared config with discovered endpoints, never emptied."""

from __future__ import annotations

import copy

from dispa.discovery.merge import apply_discovered, merge_views
from dispa.discovery.provider import DiscoveredEndpoint

A = DiscoveredEndpoint("10.0.0.1:80", weight=3)
B = DiscoveredEndpoint("10.0.0.2:80", region="eu")

CONFIG = {
    "routes": [{"match": {"host": "*"}, "upstream": "web@dns"}],
    "upstreams": [
        {"name": "web@dns", "lb": "round_robin", "endpoints": [{"address": "127.0.0.1:1"}]},
        {"name": "api", "discovery": "api@etcd", "endpoints": [{"address": "127.0.0.1:2"}]},
        {
            "name": "admin",
            "discovery": {"pool": "admin", "provider": "consul"},
            "endpoints": [{"address": "127.0.0.1:3"}],
        },
        {"name": "static", "endpoints": [{"address": "127.0.0.1:4"}]},
    ],
}


def test_discovered_pools_replace_endpoints_by_name_or_binding() -> None:
    original = copy.deepcopy(CONFIG)
    result = apply_discovered(
        CONFIG, {"web@dns": [B, A], "api@etcd": [A], "admin@consul": [B], "other@dns": [A]}
    )
    assert original == CONFIG  # pure: the input is untouched
    upstreams = {upstream["name"]: upstream for upstream in result["upstreams"]}
    assert upstreams["web@dns"]["endpoints"] == [
        {"address": "10.0.0.1:80", "weight": 3},
        {"address": "10.0.0.2:80", "weight": 1, "region": "eu"},
    ]
    assert upstreams["web@dns"]["lb"] == "round_robin"  # everything else is kept
    assert upstreams["api"]["endpoints"] == [{"address": "10.0.0.1:80", "weight": 3}]
    assert upstreams["admin"]["endpoints"] == [
        {"address": "10.0.0.2:80", "weight": 1, "region": "eu"}
    ]
    assert upstreams["static"] == CONFIG["upstreams"][3]
    assert result["routes"] == CONFIG["routes"]


def test_an_empty_or_missing_pool_never_empties_an_upstream() -> None:
    assert apply_discovered(CONFIG, {"web@dns": []}) == CONFIG
    assert apply_discovered(CONFIG, {}) == CONFIG
    assert apply_discovered({}, {"web@dns": [A]}) == {}


def test_merge_views_names_and_sorts() -> None:
    merged = merge_views({"k8s": {"web": [B, A, A]}, "dns": {"web": [A]}})
    assert list(merged) == ["web@dns", "web@k8s"]
    assert merged["web@k8s"] == [A, B]
