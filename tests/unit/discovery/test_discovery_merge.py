"""apply_discovered and carry_discovered_endpoints: configs with discovered endpoints,
never emptied."""

from __future__ import annotations

import copy

from dispa.discovery.merge import apply_discovered, carry_discovered_endpoints, merge_views
from dispa.discovery.provider import DiscoveredEndpoint

A = DiscoveredEndpoint("10.0.0.1:80", weight=3)
B = DiscoveredEndpoint("10.0.0.2:80", region="eu")

CONFIG = {
    "routes": [{"match": {"host": "*"}, "upstream": "web"}],
    "upstreams": [
        {"name": "web", "lb": "round_robin", "discovery": "web@dns"},
        {"name": "api", "discovery": "api@etcd", "endpoints": [{"address": "127.0.0.1:2"}]},
        {"name": "static", "endpoints": [{"address": "127.0.0.1:4"}]},
    ],
}


def test_discovered_pools_replace_the_endpoints_of_upstreams_bound_to_them() -> None:
    original = copy.deepcopy(CONFIG)
    result = apply_discovered(CONFIG, {"web@dns": [B, A], "api@etcd": [A], "static@dns": [B]})
    assert original == CONFIG  # pure: the input is untouched
    upstreams = {upstream["name"]: upstream for upstream in result["upstreams"]}
    assert upstreams["web"]["endpoints"] == [
        {"address": "10.0.0.1:80", "weight": 3},
        {"address": "10.0.0.2:80", "weight": 1, "region": "eu"},
    ]
    assert upstreams["web"]["lb"] == "round_robin"  # everything else is kept
    assert upstreams["api"]["endpoints"] == [{"address": "10.0.0.1:80", "weight": 3}]
    # Only an upstream's discovery binding counts, never a pool that happens to match its name.
    assert upstreams["static"] == CONFIG["upstreams"][2]
    assert result["routes"] == CONFIG["routes"]


def test_an_empty_or_missing_pool_never_empties_an_upstream() -> None:
    assert apply_discovered(CONFIG, {"web@dns": [], "api@etcd": []}) == CONFIG
    assert apply_discovered(CONFIG, {}) == CONFIG
    assert apply_discovered({}, {"web@dns": [A]}) == {}


def test_merge_views_names_and_sorts() -> None:
    merged = merge_views({"k8s": {"web": [B, A, A]}, "dns": {"web": [A]}})
    assert list(merged) == ["web@dns", "web@k8s"]
    assert merged["web@k8s"] == [A, B]


def test_an_operator_config_keeps_the_endpoints_discovered_so_far() -> None:
    current = apply_discovered(CONFIG, {"web@dns": [A]})
    proposed = copy.deepcopy(CONFIG)
    proposed["upstreams"][0]["lb"] = "random"  # the operator changes something else
    before = copy.deepcopy(proposed)
    carried = carry_discovered_endpoints(current, proposed)
    assert carried["upstreams"][0] == {
        "name": "web",
        "lb": "random",
        "discovery": "web@dns",
        "endpoints": [{"address": "10.0.0.1:80", "weight": 3}],
    }
    # Endpoints the operator wrote win; upstreams without discovery are left alone.
    assert carried["upstreams"][1:] == proposed["upstreams"][1:]
    assert proposed == before  # the input is untouched


def test_carrying_endpoints_never_fails_on_odd_shapes() -> None:
    assert carry_discovered_endpoints(None, CONFIG) == CONFIG
    assert carry_discovered_endpoints(CONFIG, "not a config") == "not a config"
    assert carry_discovered_endpoints({"upstreams": ["x", {"discovery": 3}]}, CONFIG) == CONFIG
    odd = {"upstreams": ["x", {"discovery": "web@dns"}]}
    current = apply_discovered(CONFIG, {"web@dns": [A]})
    assert carry_discovered_endpoints(current, odd)["upstreams"][0] == "x"
    assert carry_discovered_endpoints(current, {"upstreams": "x"}) == {"upstreams": "x"}


def test_the_replicated_state_keeps_discovered_endpoints_across_operator_writes() -> None:
    from dispa.cluster.state import ClusterState

    state = ClusterState()
    assert state.put_config(copy.deepcopy(CONFIG), None, 1.0)["revision"] == 1
    discovered = apply_discovered(state.current_config(), {"web@dns": [A]})
    assert state.put_config(discovered, 1, 2.0, "discovery")["revision"] == 2
    # The operator writes the config again as they keep it, without endpoints: no change.
    assert state.put_config(copy.deepcopy(CONFIG), 2, 3.0) == {
        "ok": True,
        "revision": 2,
        "unchanged": True,
    }
    assert state.current_config()["upstreams"][0]["endpoints"] == [
        {"address": "10.0.0.1:80", "weight": 3}
    ]
