"""Prometheus metrics of ACME on a core: when the certificate expires, whether an order is
under way, and how many orders failed in a row (alert on expiry minus now, or on failures)."""

from __future__ import annotations

from prometheus_client.core import GaugeMetricFamily


class AcmeCollector:
    def __init__(self, node) -> None:
        self.node = node

    def describe(self):
        return []

    def collect(self):
        state = self.node.store.state.acme
        expiry = GaugeMetricFamily(
            "dispa_acme_certificate_expiry_timestamp_seconds",
            "When the certificate obtained by ACME expires (Unix time); absent before one.",
        )
        if state.certificate is not None:
            expiry.add_metric([], float(state.certificate["not_after"]))
        yield expiry
        in_progress = GaugeMetricFamily(
            "dispa_acme_order_in_progress", "1 while an ACME order is under way."
        )
        in_progress.add_metric([], 1.0 if state.order is not None else 0.0)
        yield in_progress
        failures = GaugeMetricFamily(
            "dispa_acme_order_failures_in_a_row", "ACME orders failed since the last success."
        )
        failures.add_metric([], float(state.failures))
        yield failures
