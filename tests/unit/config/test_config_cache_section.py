"""The `cache` section: one model for a single gateway's file and an edge's, per node only."""

import pytest
import yaml

from dispa.cluster.admin_api import validate_shared
from dispa.config import edge, schema
from dispa.config.cluster import SharedConfig, gateway_for_node
from dispa.config.errors import ConfigError
from dispa.config.load import build_gateway

GATEWAY = """
listeners:
  - {name: public, address: "127.0.0.1:8080"}
upstreams:
  - {name: app, endpoints: [{address: "127.0.0.1:9001"}]}
routes:
  - {match: {path_prefix: /static/}, upstream: app, cache: true}
  - {match: {path_prefix: /}, upstream: app}
"""


def test_a_cached_route_without_a_cache_section_gets_a_bounded_memory_cache():
    config = build_gateway(yaml.safe_load(GATEWAY))
    assert config.cache == schema.CacheSettings()
    assert config.cache.memory == 64 * 1024 * 1024
    assert config.cache.disk_dir is None


def test_the_cache_section_takes_sizes_with_units():
    data = yaml.safe_load(GATEWAY)
    data["cache"] = {"memory": "16MiB", "max_entry": "1MiB", "disk_dir": "/var/cache/x"}
    cache = build_gateway(data).cache
    assert (cache.memory, cache.max_entry, cache.disk_dir) == (16 * 2**20, 2**20, "/var/cache/x")


def test_a_misspelt_cache_field_is_named():
    data = yaml.safe_load(GATEWAY)
    data["cache"] = {"memroy": "16MiB"}
    with pytest.raises(ConfigError) as caught:
        build_gateway(data)
    assert caught.value.problems == ["cache.memroy: unknown field (check the spelling)"]


def test_the_edge_file_reuses_the_same_model():
    assert edge.CacheSettings is schema.CacheSettings
    assert edge.EdgeConfig.model_fields["cache"].annotation is schema.CacheSettings


def test_the_shared_config_has_no_cache_and_says_where_it_goes():
    assert "cache" not in SharedConfig.model_fields
    shared = yaml.safe_load(GATEWAY)
    del shared["listeners"]
    shared["cache"] = {"memory": "16MiB"}
    with pytest.raises(ConfigError) as caught:
        validate_shared(shared)
    assert "cache is set per node" in caught.value.problems[0]


def test_an_edges_gateway_config_shows_its_own_cache_and_a_cores_the_default():
    shared = yaml.safe_load(GATEWAY)
    del shared["listeners"]
    shared = validate_shared(shared)
    edge_file = edge.EdgeConfig.model_validate(
        {
            "edge": {"name": "e", "data_dir": "/tmp/e"},
            "cores": ["127.0.0.1:9911"],
            "listeners": [{"name": "public", "address": "127.0.0.1:8181"}],
            "cache": {"memory": "1MiB"},
        }
    )
    assert gateway_for_node(edge_file, shared).cache.memory == 2**20

    class Core:  # what gateway_for_node reads of a core's file
        listeners = edge_file.listeners
        admin = edge_file.admin

    assert gateway_for_node(Core(), shared).cache == schema.CacheSettings()
