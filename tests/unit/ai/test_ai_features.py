from __future__ import annotations

import math

import pytest

from dispa.ai.features import (
    EndpointCounters,
    extract_features,
    quantile_of_buckets,
    quantile_of_samples,
)
from dispa.ai.resample import Resampler


def test_rate_error_ratio_and_active_from_one_second():
    features = extract_features(
        EndpointCounters(
            requests=200, errors=10, latency_samples=[0.01] * 200, active_connections=7
        )
    )
    assert features["rate"] == 200.0
    assert features["error_ratio"] == pytest.approx(0.05)
    assert features["active"] == 7.0
    assert features["latency_p50"] == pytest.approx(0.01)


def test_rate_is_per_second_over_a_longer_interval():
    features = extract_features(EndpointCounters(requests=120, interval_seconds=60.0))
    assert features["rate"] == pytest.approx(2.0)


def test_latency_quantiles_from_samples():
    samples = [i / 1000 for i in range(1, 101)]  # 1 ms .. 100 ms
    features = extract_features(EndpointCounters(requests=100, latency_samples=samples))
    assert features["latency_p50"] == pytest.approx(0.0505)
    assert features["latency_p99"] == pytest.approx(0.09901)


def test_latency_quantiles_from_cumulative_buckets_interpolate_inside_the_bucket():
    # 50 requests at or below 10 ms, 100 at or below 20 ms, none above.
    buckets = {0.01: 50, 0.02: 100, math.inf: 100}
    assert quantile_of_buckets(buckets, 0.5) == pytest.approx(0.01)
    assert quantile_of_buckets(buckets, 0.75) == pytest.approx(0.015)
    features = extract_features(EndpointCounters(requests=100, latency_buckets=buckets))
    assert features["latency_p99"] == pytest.approx(0.0198)


def test_quantile_in_the_infinite_bucket_answers_the_highest_finite_bound():
    assert quantile_of_buckets({0.1: 1, math.inf: 10}, 0.99) == pytest.approx(0.1)


def test_no_requests_means_no_error_ratio_and_unknown_latency():
    features = extract_features(EndpointCounters())
    assert features["rate"] == 0.0
    assert features["error_ratio"] == 0.0
    assert math.isnan(features["latency_p50"]) and math.isnan(features["latency_p99"])
    assert math.isnan(quantile_of_samples([], 0.5))


def test_negative_counters_and_empty_intervals_are_rejected():
    with pytest.raises(ValueError):
        extract_features(EndpointCounters(requests=-1))
    with pytest.raises(ValueError):
        extract_features(EndpointCounters(interval_seconds=0))


def test_resampler_emits_the_mean_of_each_closed_minute_and_skips_unknown_seconds():
    resampler = Resampler(60.0)
    emitted = [resampler.add(t, float(t % 60 < 30)) for t in range(0, 120)]
    closed = [item for item in emitted if item is not None]
    assert closed == [(0.0, 0.5)]
    assert resampler.add(130.0, math.nan) is None
    assert resampler.add(180.0, 1.0) == (60.0, 0.5)
