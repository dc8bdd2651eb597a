"""The default retry policy: a 5xx answer is the origin's own and is passed on, not retried.

Only failures that never reached the upstream's application (a refused connection) or
whose answer never started (a reset before the response head) are retried by default,
as nginx's ``proxy_next_upstream error timeout``; Envoy retries nothing without a
policy. 502, 503 and 504 are retried only when ``retry_on`` lists them. The origin is the
demo upstream's ``/cache/{key}``, which counts the requests it gets for each key.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from conftest import Gateway, Processes, Upstream, free_port, http_get, make_config

NO_OUTLIER = {"consecutive_5xx": 0, "consecutive_failures": 0}


@pytest.fixture(scope="module")
def origin(module_processes: Processes) -> Upstream:
    return module_processes.demo_upstream("origin")


@pytest.fixture(scope="module")
def gateway(
    module_processes: Processes, tmp_path_factory: pytest.TempPathFactory, origin: Upstream
) -> Gateway:
    refused = f"127.0.0.1:{free_port()}"  # nothing listens: connections are refused
    endpoints = [{"address": origin.address}]
    config = make_config(
        upstreams=[
            {"name": "default", "endpoints": endpoints, "outlier": NO_OUTLIER},
            {
                "name": "opt-in",
                "endpoints": endpoints,
                "outlier": NO_OUTLIER,
                "retry": {"retry_on": [503]},
            },
            {
                "name": "half-refused",
                "endpoints": [{"address": refused}, *endpoints],
                "outlier": NO_OUTLIER,
            },
        ],
        routes=[
            # The case of the issue: a cached route's GET answered 503.
            {"match": {"host": "cached.test"}, "upstream": "default", "cache": True},
            {"match": {"host": "plain.test"}, "upstream": "default"},
            {"match": {"host": "opt-in.test"}, "upstream": "opt-in"},
            {"match": {"host": "refused.test"}, "upstream": "half-refused"},
        ],
    )
    return module_processes.gateway(config, tmp_path_factory.mktemp("retry-defaults"))


def requests_seen(origin: Upstream, key: str) -> int:
    status, body = http_get(origin.url("/admin/cache-hits"))
    assert status == 200
    return json.loads(body)["requests"].get(key, 0)


def get(gateway: Gateway, host: str, path: str) -> int:
    request = urllib.request.Request(gateway.url(path), headers={"Host": host})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


@pytest.mark.parametrize("host", ["cached.test", "plain.test"])
def test_a_503_is_not_retried_by_default(gateway: Gateway, origin: Upstream, host: str) -> None:
    key = f"default-{host}"
    before = gateway.metric("dispa_retries_total", upstream="default")
    assert get(gateway, host, f"/cache/{key}?status=503&cc=no-store") == 503
    assert requests_seen(origin, key) == 1  # one client request, one origin request
    assert gateway.metric("dispa_retries_total", upstream="default") == before


@pytest.mark.parametrize("status", [502, 504])
def test_502_and_504_answers_are_not_retried_by_default(
    gateway: Gateway, origin: Upstream, status: int
) -> None:
    key = f"default-{status}"
    assert get(gateway, "plain.test", f"/cache/{key}?status={status}&cc=no-store") == status
    assert requests_seen(origin, key) == 1


def test_a_503_is_retried_when_retry_on_lists_it(gateway: Gateway, origin: Upstream) -> None:
    before = gateway.metric("dispa_retries_total", upstream="opt-in")
    assert get(gateway, "opt-in.test", "/cache/opt-in?status=503&cc=no-store") == 503
    assert requests_seen(origin, "opt-in") == 2  # attempts: 2 (the default)
    assert gateway.metric("dispa_retries_total", upstream="opt-in") - before == 1


def test_a_refused_connection_is_still_retried_by_default(gateway: Gateway) -> None:
    before = gateway.metric("dispa_retries_total", upstream="half-refused")
    # Round robin sends about every other first try to the refusing endpoint.
    assert [get(gateway, "refused.test", "/cache/refused") for _ in range(10)] == [200] * 10
    assert gateway.metric("dispa_retries_total", upstream="half-refused") - before >= 4
