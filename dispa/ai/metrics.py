"""Prometheus metrics of the online-learning module, built at scrape time.

``dispa_ai_forecast_requests_per_second{upstream,horizon}`` (and ``..._region_...`` and
``..._route_...``), per endpoint score, flag and weight factor, capacity alerts, and the
learner's health (samples dropped, model restarts).
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

FORECAST_FAMILIES = {
    "upstreams": ("dispa_ai_forecast_requests_per_second", "upstream"),
    "regions": ("dispa_ai_region_forecast_requests_per_second", "region"),
    "routes": ("dispa_ai_route_forecast_requests_per_second", "route"),
}


def horizon_label(seconds: float) -> str:
    return f"{seconds:g}s"


class AiCollector(Collector):
    def __init__(self, gateway_ai) -> None:
        self.ai = gateway_ai

    def collect(self) -> Iterator[Metric]:
        ai = self.ai
        settings = ai.settings
        if settings is None or not settings.enabled or ai.learner is None:
            return
        horizons = ai.horizons()
        for kind, (name, label) in FORECAST_FAMILIES.items():
            family = GaugeMetricFamily(
                name,
                f"Forecast request rate per {label}, the given time ahead (requests/s).",
                labels=[label, "horizon"],
            )
            for group, values in sorted(ai.forecasts.get(kind, {}).items()):
                for seconds, value in zip(horizons, values, strict=False):
                    family.add_metric([group, horizon_label(seconds)], value)
            yield family
        score = GaugeMetricFamily(
            "dispa_ai_anomaly_score",
            "Endpoint anomaly score in [0, 1].",
            labels=["upstream", "endpoint"],
        )
        anomalous = GaugeMetricFamily(
            "dispa_ai_anomalous",
            "1 while the endpoint is flagged anomalous (hysteresis on its score).",
            labels=["upstream", "endpoint"],
        )
        factor = GaugeMetricFamily(
            "dispa_ai_weight_factor",
            "Factor applied to the endpoint's balancing weight by AI steering.",
            labels=["upstream", "endpoint"],
        )
        for (upstream, address), state in sorted(ai.steerer.document().items()):
            labels = [upstream, address]
            score.add_metric(labels, state["score"])
            anomalous.add_metric(labels, 1.0 if state["state"] == "anomalous" else 0.0)
            factor.add_metric(labels, state["weight_factor"])
        yield score
        yield anomalous
        yield factor
        alert = GaugeMetricFamily(
            "dispa_ai_capacity_alert",
            "1 while the upstream's forecast exceeds its declared capacity_rps.",
            labels=["upstream"],
        )
        for upstream in ai.gateway.snapshot.config.upstreams:
            if upstream.capacity_rps is not None:
                alert.add_metric([upstream.name], 1.0 if upstream.name in ai.alerts else 0.0)
        yield alert
        learner = ai.learner
        for name, value, text in (
            ("dispa_ai_samples", learner.submitted, "Samples handed to the learner."),
            ("dispa_ai_samples_dropped", learner.dropped, "Samples dropped: the learner lagged."),
            ("dispa_ai_samples_learned", learner.processed, "Samples the models learned."),
            ("dispa_ai_model_restarts", learner.restarts, "Models rebuilt after raising."),
            ("dispa_ai_learner_thread_restarts", learner.thread_restarts, "Threads restarted."),
            ("dispa_ai_steering_decisions", ai.decisions_total, "Steering state changes."),
        ):
            counter = CounterMetricFamily(name, text)
            counter.add_metric([], value)
            yield counter
        queued = GaugeMetricFamily("dispa_ai_queue_depth", "Samples waiting for the learner.")
        queued.add_metric([], learner.queued())
        yield queued
