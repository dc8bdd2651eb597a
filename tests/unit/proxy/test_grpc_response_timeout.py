"""Which wait for a response head a route's gRPC calls get (RouteRuntime, compiled once per
snapshot): never the upstream's `timeouts.response`; the route's `timeout`, else the
upstream's `timeouts.grpc_response`, capped by `retry.per_try_timeout`; None (the upstream's
idle timeout bounds its silence) when none of them is set."""

from __future__ import annotations

import json

import pytest

from dispa.config.load import load_text
from dispa.config.schema import Timeouts
from dispa.proxy.snapshot import RouteRuntime
from dispa.proxy.upstream.pools import UpstreamSet


def route(grpc_response: str = "", per_try: str = "", route_timeout: str = "") -> RouteRuntime:
    timeouts = {"response": "30s", "idle": "300s"}
    if grpc_response:
        timeouts["grpc_response"] = grpc_response
    retry = {"attempts": 2, **({"per_try_timeout": per_try} if per_try else {})}
    upstream = {
        "name": "app",
        "protocol": "h2",
        "endpoints": [{"address": "127.0.0.1:9001"}],
        "timeouts": timeouts,
        "retry": retry,
    }
    routes = [{"match": {"path_prefix": "/"}, "upstream": "app"}]
    if route_timeout:
        routes[0]["timeout"] = route_timeout
    document = {
        "listeners": [{"name": "public", "address": "127.0.0.1:8080"}],
        "upstreams": [upstream],
        "routes": routes,
    }
    config = load_text(json.dumps(document))  # JSON is YAML
    upstreams = UpstreamSet().prepare(config.upstreams)
    return RouteRuntime("all", config.routes[0], upstreams["app"], [])


@pytest.mark.parametrize(
    ("grpc_response", "per_try", "route_timeout", "response", "grpc"),
    [
        ("", "", "", 30.0, None),  # watch-style streams: no wait of their own
        ("10s", "", "", 30.0, 10.0),
        ("", "", "2s", 2.0, 2.0),  # the route's own timeout is for its gRPC calls too
        ("10s", "", "2s", 2.0, 2.0),
        ("", "5s", "", 5.0, 5.0),  # an explicit per-try bound still holds
        ("10s", "5s", "", 5.0, 5.0),
        ("3s", "5s", "", 5.0, 3.0),
    ],
)
def test_grpc_wait(grpc_response, per_try, route_timeout, response, grpc) -> None:
    runtime = route(grpc_response, per_try, route_timeout)
    assert runtime.response_timeout == response
    assert runtime.grpc_response_timeout == grpc


def test_grpc_response_is_unset_by_default_and_takes_durations() -> None:
    assert Timeouts().grpc_response is None
    assert Timeouts.model_validate({"grpc_response": "2m"}).grpc_response == 120.0
