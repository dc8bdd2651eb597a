"""The ``discovery`` section and ``upstreams[].discovery``: what loads, and every mistake
reported with its field path."""

from __future__ import annotations

import pytest

from dispa.cluster.admin_api import validate_shared
from dispa.config.cluster import SharedConfig, gateway_for_node
from dispa.config.discovery import DnsProviderSettings, FileProviderSettings
from dispa.config.errors import ConfigError
from dispa.config.load import load_text

BASE = """
listeners: [{name: p, address: "127.0.0.1:0"}]
routes: [{upstream: web}]
"""

GOOD = """
discovery:
  throttle: 250ms
  providers:
    - {type: file, name: files, path: /etc/dispa/endpoints.yaml, retry: {initial: 1s, maximum: 1m}}
    - type: dns
      name: dns
      pools: {web: {query: web.internal, port: 8080}}
upstreams:
  - {name: web, discovery: web@dns}
  - {name: api, discovery: api@files, endpoints: [{address: "127.0.0.1:9000"}]}
"""


def problems_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_text(BASE + text)
    return caught.value.problems


def test_providers_load_and_a_discovered_upstream_may_list_no_endpoints() -> None:
    gateway = load_text(BASE + GOOD)
    files, dns = gateway.discovery.providers
    assert isinstance(files, FileProviderSettings) and files.retry.maximum == 60.0
    assert isinstance(dns, DnsProviderSettings) and dns.pools["web"].port == 8080
    assert gateway.discovery.throttle == 0.25
    assert gateway.upstreams[0].discovery == "web@dns"
    assert gateway.upstreams[0].endpoints == ()
    assert len(gateway.upstreams[1].endpoints) == 1  # seed endpoints until the pool answers


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            "upstreams: [{name: web}]",
            "upstreams[0].endpoints: an upstream needs endpoints, or discovery: POOL@PROVIDER",
        ),
        (
            "upstreams: [{name: web, discovery: web}]",
            "upstreams[0].discovery: 'web' does not name a discovered pool; write POOL@PROVIDER, "
            "like web@dns",
        ),
        (
            "upstreams: [{name: web, discovery: web@dns}]",
            "upstreams[0].discovery: unknown provider 'dns'; known: none are declared under "
            "discovery.providers",
        ),
        (
            "discovery: {providers: [{type: file, name: f, path: x}]}\n"
            "upstreams: [{name: web, discovery: web@dns}]",
            "upstreams[0].discovery: unknown provider 'dns'; known: f",
        ),
        (
            "discovery: {providers: [{type: dns, name: dns, pools: {api: {query: a, port: 1}}}]}\n"
            "upstreams: [{name: web, discovery: web@dns}]",
            "upstreams[0].discovery: provider 'dns' has no pool 'web'; its pools: api",
        ),
        (
            "discovery: {providers: [{type: dns, name: d, pools: {web: {query: w.x}}}]}\n"
            "upstreams: [{name: web, discovery: web@d}]",
            "discovery.providers[0].pools.web: an A query needs a port (SRV records carry theirs)",
        ),
        (
            "discovery: {providers: [{name: d}]}\nupstreams: [{name: web, discovery: web@d}]",
            "discovery.providers[0]: each entry needs a 'type' (file, dns, etcd, consul, "
            "kubernetes)",
        ),
        (
            "discovery: {providers: [{type: file, name: f, path: x}, {type: file, name: f, "
            "path: y}]}\nupstreams: [{name: web, discovery: web@f}]",
            "discovery.providers[1].name: 'f' is already used by discovery.providers[0]",
        ),
        (
            "discovery: {throttle: soon}\nupstreams: [{name: web, endpoints: ['127.0.0.1:1']}]",
            "discovery.throttle: 'soon' is not a duration; write it like 250ms, 1s, 5m or 1h",
        ),
    ],
)
def test_mistakes_name_their_field(text: str, problem: str) -> None:
    assert problem in problems_of(text)


def test_the_shared_cluster_config_declares_providers_too() -> None:
    import yaml

    data = yaml.safe_load("routes: [{upstream: web}]\n" + GOOD)
    shared = validate_shared(data)
    assert [p.name for p in shared.discovery.providers] == ["files", "dns"]

    class Node:  # a core's own part: listeners and admin
        listeners = load_text(BASE + GOOD).listeners
        admin = load_text(BASE + GOOD).admin

    assert gateway_for_node(Node, shared).discovery == shared.discovery
    bad = {**data, "upstreams": [{"name": "web", "discovery": "web@consul"}]}
    with pytest.raises(ConfigError) as caught:
        validate_shared(bad)
    assert any(
        "upstreams[0].discovery: unknown provider 'consul'" in p for p in caught.value.problems
    )
    assert SharedConfig.model_validate(data).discovery.throttle == 0.25
