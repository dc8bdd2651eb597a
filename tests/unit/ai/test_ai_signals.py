"""Readings of the data plane's counters -> per-interval features (pure)."""

from __future__ import annotations

import math

import pytest

from dispa.ai.signals import (
    BUCKET_BOUNDS,
    Counts,
    Reading,
    build_sample,
    combine,
    cumulative_buckets,
    delta,
)


def latency(**by_bound: int) -> tuple[int, ...]:
    """Per-bucket counts, e.g. latency(b0_005=3) puts 3 in the 5 ms bucket."""
    counts = [0] * len(BUCKET_BOUNDS)
    for name, count in by_bound.items():
        counts[BUCKET_BOUNDS.index(float(name[1:].replace("_", ".")))] += count
    return tuple(counts)


def test_delta_subtracts_counters_and_keeps_the_gauge():
    before = Counts(10, 1, latency(b0_005=10), active=4)
    after = Counts(30, 3, latency(b0_005=25, b0_05=5), active=2)
    assert delta(before, after) == Counts(20, 2, latency(b0_005=15, b0_05=5), 2)


def test_delta_of_a_reset_counter_is_the_current_value():
    before = Counts(100, 5, latency(b0_005=100), 0)
    after = Counts(7, 0, latency(b0_005=7), 1)
    assert delta(before, after) == after


def test_delta_of_a_first_reading_is_empty():
    assert delta(None, Counts(9, 1, latency(b0_005=9), 3)) == Counts(0, 0, latency(), 3)


def test_cumulative_buckets_end_at_inf_with_the_total():
    buckets = cumulative_buckets(latency(b0_001=2, b0_01=3, b10_0=1))
    assert buckets[0.001] == 2 and buckets[0.01] == 5 and buckets[math.inf] == 6


def test_combine_sums_counts_bucket_by_bucket():
    total = combine([Counts(1, 0, latency(b0_005=1), 1), Counts(2, 1, latency(b0_05=2), 0)])
    assert total == Counts(3, 1, latency(b0_005=1, b0_05=2), 1)


def test_sample_has_endpoint_upstream_region_and_route_features():
    key_a, key_b = ("app", "10.0.0.1:80"), ("app", "10.0.0.2:80")
    first = Reading(
        t=100.0,
        endpoints={key_a: Counts(0, 0, latency(), 0), key_b: Counts(0, 0, latency(), 0)},
        routes={"web": Counts(0, 0, latency(), 0)},
        regions={key_a: "eu", key_b: "us"},
    )
    second = Reading(
        t=102.0,
        endpoints={
            key_a: Counts(20, 2, latency(b0_005=20), 1),
            key_b: Counts(10, 0, latency(b0_05=10), 0),
        },
        routes={"web": Counts(30, 2, latency(b0_005=20, b0_05=10), 0)},
        regions={key_a: "eu", key_b: "us"},
    )
    assert build_sample(None, first) is None
    sample = build_sample(first, second)
    assert sample.interval == 2.0 and sample.t == 102.0
    a = sample.endpoints[key_a]
    assert a["rate"] == 10.0 and a["error_ratio"] == 0.1 and a["active"] == 1.0
    assert 0.0025 < a["latency_p50"] <= 0.005
    assert 0.025 < sample.endpoints[key_b]["latency_p50"] <= 0.05
    assert sample.upstreams["app"]["rate"] == 15.0
    assert sample.upstreams["app"]["error_ratio"] == pytest.approx(2 / 30)
    assert sample.regions["eu"]["rate"] == 10.0 and sample.regions["us"]["rate"] == 5.0
    assert sample.routes["web"]["rate"] == 15.0


def test_an_interval_without_answers_has_no_latency_and_a_clock_step_back_no_sample():
    key = ("app", "10.0.0.1:80")
    quiet = Reading(t=10.0, endpoints={key: Counts(5, 0, latency(b0_005=5), 0)})
    later = Reading(t=11.0, endpoints={key: Counts(5, 0, latency(b0_005=5), 0)})
    features = build_sample(quiet, later).endpoints[key]
    assert features["rate"] == 0.0 and math.isnan(features["latency_p50"])
    assert build_sample(later, quiet) is None


def test_more_errors_than_answers_in_an_interval_caps_the_ratio_at_one():
    key = ("app", "10.0.0.1:80")
    before = Reading(t=0.0, endpoints={key: Counts(0, 0, latency(), 0)})
    after = Reading(t=1.0, endpoints={key: Counts(2, 3, latency(b0_005=2), 0)})
    assert build_sample(before, after).endpoints[key]["error_ratio"] == 1.0
