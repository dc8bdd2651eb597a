"""Health checks of kind grpc: only on h2 upstreams, with an error naming the field."""

from __future__ import annotations

import pytest
import yaml

from dispa.config.errors import ConfigError
from dispa.config.load import build_gateway

CONFIG = """
listeners:
  - {name: public, address: "127.0.0.1:8080"}
upstreams:
  - name: app
    endpoints: [{address: "127.0.0.1:9001"}]
    health: {kind: grpc, service: my.Service, interval: 1s}
routes:
  - {match: {path_prefix: /}, upstream: app}
admin: {address: "127.0.0.1:9901"}
"""


def test_grpc_health_check_on_an_h2_upstream() -> None:
    data = yaml.safe_load(CONFIG)
    data["upstreams"][0]["protocol"] = "h2"
    (upstream,) = build_gateway(data, "test.yaml").upstreams
    assert (upstream.health.kind, upstream.health.service) == ("grpc", "my.Service")


def test_grpc_health_check_needs_protocol_h2() -> None:
    with pytest.raises(ConfigError) as caught:
        build_gateway(yaml.safe_load(CONFIG), "test.yaml")
    (problem,) = caught.value.problems
    assert problem.startswith("upstreams[0].health:")
    assert "protocol: h2" in problem


def test_http_is_the_default_kind() -> None:
    data = yaml.safe_load(CONFIG)
    del data["upstreams"][0]["health"]["kind"]
    del data["upstreams"][0]["health"]["service"]
    (upstream,) = build_gateway(data, "test.yaml").upstreams
    assert upstream.health.kind == "http"
