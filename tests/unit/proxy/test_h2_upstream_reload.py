"""A reload that changes an upstream's protocol changes its endpoints' pools and probes."""

from __future__ import annotations

from dispa.config.schema import Upstream
from dispa.proxy.http2.upstream_pool import H2EndpointPool
from dispa.proxy.upstream.connection import EndpointPool
from dispa.proxy.upstream.health_checker import probe_status, probe_status_over_h2
from dispa.proxy.upstream.pools import UpstreamSet


def upstream(protocol: str) -> Upstream:
    return Upstream.model_validate(
        {
            "name": "app",
            "protocol": protocol,
            "endpoints": [{"address": "127.0.0.1:1"}],
            "health": {"path": "/healthz", "interval": "60s"},
        }
    )


async def test_the_pool_and_the_probe_follow_the_protocol():
    upstreams = UpstreamSet()
    first = upstreams.prepare((upstream("http1"),))
    await upstreams.commit(first)
    endpoint = first["app"].endpoints[0]
    assert type(endpoint.pool) is EndpointPool
    assert first["app"].health._probe is probe_status

    second = upstreams.prepare((upstream("h2"),))
    await upstreams.commit(second)
    assert second["app"].endpoints[0] is endpoint  # the endpoint and its history stay
    assert type(endpoint.pool) is H2EndpointPool
    assert second["app"].health._probe is probe_status_over_h2
    await upstreams.stop()


def test_http1_is_the_default():
    assert Upstream.model_validate({"name": "a", "endpoints": [{"address": "h:1"}]}).protocol == (
        "http1"
    )
