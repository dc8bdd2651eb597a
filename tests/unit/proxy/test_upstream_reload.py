"""A reload that changes an upstream keeps what is known about its endpoints."""

from __future__ import annotations

import time

from dispa.config.schema import Upstream
from dispa.proxy.upstream.pools import UpstreamSet


def upstream(lb: str) -> Upstream:
    return Upstream.model_validate(
        {
            "name": "app",
            "lb": lb,
            "endpoints": [{"address": "127.0.0.1:1"}, {"address": "127.0.0.1:2"}],
            "health": {"path": "/healthz", "interval": "60s"},
            "outlier": {"consecutive_5xx": 2, "max_ejected_percent": 50},
        }
    )


async def test_ejections_and_health_checkers_survive_a_changed_upstream():
    upstreams = UpstreamSet()
    first = upstreams.prepare((upstream("round_robin"),))
    await upstreams.commit(first)
    runtime = first["app"]
    failing = runtime.endpoints[0]
    now = time.monotonic()
    runtime.report_status(failing, 500, now)
    runtime.report_status(failing, 500, now)
    assert not failing.healthy
    checker = runtime.health

    second = upstreams.prepare((upstream("random"),))
    await upstreams.commit(second)
    replaced = second["app"]
    assert replaced is not runtime
    assert replaced.endpoints[0] is failing
    assert not failing.healthy, "a reload made an ejected endpoint healthy again"
    assert replaced.available == [replaced.endpoints[1]]
    assert replaced.health is checker and runtime.health is None
    await upstreams.stop()


async def test_a_removed_endpoint_does_not_take_back_connections():
    upstreams = UpstreamSet()
    await upstreams.commit(upstreams.prepare((upstream("round_robin"),)))
    removed = upstreams.by_name["app"].endpoints[1]
    narrower = Upstream.model_validate({"name": "app", "endpoints": [{"address": "127.0.0.1:1"}]})
    await upstreams.commit(upstreams.prepare((narrower,)))
    assert removed.pool.retired

    class Connection:
        closed = False
        exchange = None
        reading_paused = False

        def close(self):
            self.closed = True

        def resume_reading(self):
            pass

    returned = Connection()
    removed.pool.put(returned, time.monotonic())
    assert returned.closed and not removed.pool.idle
    await upstreams.stop()
