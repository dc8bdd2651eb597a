from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from dispa.observe.metrics import (
    DataPlaneCollector,
    build_registry,
    render,
    sum_snapshots,
)
from dispa.observe.stats import LATENCY_BUCKETS, DataPlaneStats


def worker_snapshot(requests: int, latency: float) -> dict:
    stats = DataPlaneStats()
    for _ in range(requests):
        stats.record_request("api", "backend", 200, latency)
        stats.record_endpoint("backend", "10.0.0.1:80", failed=False)
    stats.record_request("api", "backend", 503, 0.2)
    stats.record_endpoint("backend", "10.0.0.1:80", failed=True)
    stats.record_local_reply("no_route")
    stats.record_retry("backend")
    stats.connections_accepted = requests
    stats.connections_active = 1
    return stats.snapshot()


class FakeView:
    """Implements just what the collector reads of dispa.admin.view.AdminView."""

    def __init__(self, snapshots: list[dict]) -> None:
        self.snapshots = snapshots

    def stats_snapshots(self) -> list[dict]:
        return self.snapshots

    def upstreams_document(self) -> dict:
        endpoint = {
            "address": "10.0.0.1:80",
            "weight": 1,
            "healthy": True,
            "active_health": "healthy",
            "ejected": False,
            "active_requests": 3,
            "idle_connections": 2,
        }
        sick = {**endpoint, "address": "10.0.0.2:80", "healthy": False, "ejected": True}
        return {
            "upstreams": [{"name": "backend", "lb": "round_robin", "endpoints": [endpoint, sick]}]
        }

    def config_document(self) -> dict:
        return {"revision": 7, "applied_at": 0.0, "source": "test", "config": {}}


def scrape(view) -> dict[tuple[str, frozenset], float]:
    text = render(build_registry(view)).decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def labels(**values: str) -> frozenset:
    return frozenset(values.items())


def test_requests_and_counters_of_all_workers_add_up() -> None:
    samples = scrape(FakeView([worker_snapshot(2, 0.003), worker_snapshot(3, 0.003)]))

    ok = labels(route="api", upstream="backend", status_class="2xx")
    failed = labels(route="api", upstream="backend", status_class="5xx")
    assert samples[("dispa_requests_total", ok)] == 5
    assert samples[("dispa_requests_total", failed)] == 2
    assert samples[("dispa_local_replies_total", labels(reason="no_route"))] == 2
    endpoint = labels(upstream="backend", endpoint="10.0.0.1:80")
    assert samples[("dispa_upstream_requests_total", endpoint)] == 7
    assert samples[("dispa_upstream_failures_total", endpoint)] == 2
    assert samples[("dispa_retries_total", labels(upstream="backend"))] == 2
    assert samples[("dispa_connections_accepted_total", labels())] == 5
    assert samples[("dispa_connections_active", labels())] == 2


def test_latency_buckets_become_cumulative_with_sum_and_count() -> None:
    samples = scrape(FakeView([worker_snapshot(2, 0.003), worker_snapshot(3, 0.003)]))

    def bucket(le: str) -> float:
        return samples[("dispa_request_duration_seconds_bucket", labels(route="api", le=le))]

    # Five requests took 3ms (the 0.005 bucket), two took 200ms (the 0.25 bucket).
    assert bucket("0.0025") == 0
    assert bucket("0.005") == 5
    assert bucket("0.1") == 5
    assert bucket("0.25") == 7
    assert bucket("10.0") == 7
    assert bucket("+Inf") == 7
    assert samples[("dispa_request_duration_seconds_count", labels(route="api"))] == 7
    total = samples[("dispa_request_duration_seconds_sum", labels(route="api"))]
    assert abs(total - (5 * 0.003 + 2 * 0.2)) < 1e-9
    le_labels = [
        dict(key[1])["le"] for key in samples if key[0] == "dispa_request_duration_seconds_bucket"
    ]
    assert len(le_labels) == len(LATENCY_BUCKETS) + 1


def test_slow_requests_land_only_in_the_inf_bucket() -> None:
    stats = DataPlaneStats()
    stats.record_request("slow", "backend", 200, 30.0)
    samples = scrape(FakeView([stats.snapshot()]))

    def bucket(le: str) -> float:
        return samples[("dispa_request_duration_seconds_bucket", labels(route="slow", le=le))]

    assert bucket("10.0") == 0
    assert bucket("+Inf") == 1


def test_endpoint_state_and_config_revision() -> None:
    samples = scrape(FakeView([]))

    up = labels(upstream="backend", endpoint="10.0.0.1:80")
    down = labels(upstream="backend", endpoint="10.0.0.2:80")
    assert samples[("dispa_endpoint_healthy", up)] == 1
    assert samples[("dispa_endpoint_healthy", down)] == 0
    assert samples[("dispa_endpoint_ejected", up)] == 0
    assert samples[("dispa_endpoint_ejected", down)] == 1
    assert samples[("dispa_endpoint_active_requests", up)] == 3
    assert samples[("dispa_pool_idle_connections", up)] == 2
    assert samples[("dispa_upstream_endpoints", labels(upstream="backend"))] == 2
    assert samples[("dispa_config_revision", labels())] == 7


def test_no_workers_yet_gives_zeroes_not_errors() -> None:
    samples = scrape(FakeView([]))

    assert samples[("dispa_connections_accepted_total", labels())] == 0
    assert not any(name == "dispa_requests_total" for name, _ in samples)


def test_sum_snapshots_tolerates_missing_keys() -> None:
    totals = sum_snapshots([{}, {"retries": {"backend": 4}}])

    assert totals.retries == {"backend": 4}
    assert totals.requests == {}


def test_registries_are_independent() -> None:
    first = build_registry(FakeView([worker_snapshot(1, 0.001)]))
    second = build_registry(FakeView([]))

    assert b'dispa_requests_total{route="api"' in render(first)
    assert b'dispa_requests_total{route="api"' not in render(second)


def test_describe_does_not_read_the_gateway() -> None:
    class Untouchable:
        def __getattr__(self, name: str):
            raise AssertionError(f"describe read {name}")

    names = {family.name for family in DataPlaneCollector(Untouchable()).describe()}

    assert {"dispa_requests", "dispa_request_duration_seconds", "dispa_config_revision"} <= names
