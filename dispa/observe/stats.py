"""Data-plane counters kept as plain numbers: cheap to bump on every request.

Prometheus metrics are built from ``snapshot()`` at scrape time (``observe/metrics.py``),
so the hot path never takes a lock or touches the client library. With several worker
processes each writes its snapshot to a file and the admin sums them.
"""

from __future__ import annotations

from bisect import bisect_left

# Latency bucket bounds in seconds, as Prometheus "le" labels.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")
# Status -> its class, looked up once per request; anything outside 100-599 counts as 5xx.
_CLASS_OF = {status: STATUS_CLASSES[status // 100 - 1] for status in range(100, 600)}


class Histogram:
    __slots__ = ("buckets", "count", "total")

    def __init__(self) -> None:
        self.buckets = [0] * (len(LATENCY_BUCKETS) + 1)  # last one is +Inf
        self.count = 0
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        self.buckets[bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.count += 1
        self.total += seconds


class DataPlaneStats:
    def __init__(self) -> None:
        # (route, upstream, status class) -> count
        self.requests: dict[tuple[str, str, str], int] = {}
        # route -> latency histogram of whole exchanges
        self.latency: dict[str, Histogram] = {}
        # reason -> local replies made for it
        self.local_replies: dict[str, int] = {}
        # (upstream, endpoint address) -> [requests, failures]
        self.endpoint_requests: dict[tuple[str, str], list[int]] = {}
        self.retries: dict[str, int] = {}
        self.connections_accepted = 0
        self.connections_active = 0
        # Exchanges begun and not yet ended (a leak shows as a level that never comes down).
        self.requests_active = 0
        # The gateway's filter executor (filters/executor.py), read at scrape time.
        self.filter_executor = None

    def record_request(self, route: str, upstream: str, status: int, seconds: float) -> None:
        self.requests_active -= 1
        key = (route, upstream, _CLASS_OF.get(status, "5xx"))
        requests = self.requests
        requests[key] = requests.get(key, 0) + 1
        histogram = self.latency.get(route)
        if histogram is None:
            histogram = self.latency[route] = Histogram()
        # Histogram.observe, inlined: this runs once per request.
        histogram.buckets[bisect_left(LATENCY_BUCKETS, seconds)] += 1
        histogram.count += 1
        histogram.total += seconds

    def record_local_reply(self, reason: str) -> None:
        self.local_replies[reason] = self.local_replies.get(reason, 0) + 1

    def record_endpoint(self, upstream: str, address: str, failed: bool) -> None:
        counters = self.endpoint_requests.get((upstream, address))
        if counters is None:
            counters = self.endpoint_requests[(upstream, address)] = [0, 0]
        counters[0] += 1
        if failed:
            counters[1] += 1

    def record_retry(self, upstream: str) -> None:
        self.retries[upstream] = self.retries.get(upstream, 0) + 1

    def snapshot(self) -> dict:
        """Plain data (msgpack/JSON friendly) for the metrics endpoint."""
        return {
            "requests": [[*key, count] for key, count in self.requests.items()],
            "latency": {
                route: {"buckets": list(h.buckets), "count": h.count, "sum": h.total}
                for route, h in self.latency.items()
            },
            "local_replies": dict(self.local_replies),
            "endpoint_requests": [
                [*key, *counts] for key, counts in self.endpoint_requests.items()
            ],
            "retries": dict(self.retries),
            "connections_accepted": self.connections_accepted,
            "connections_active": self.connections_active,
            "requests_active": self.requests_active,
            "filter_executor": (
                self.filter_executor.statistics() if self.filter_executor is not None else {}
            ),
        }
