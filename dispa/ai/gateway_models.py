"""Everything the gateway learns from its samples, in one object the learner thread feeds.

``learn(sample) -> Verdict``, once per sample:

- per endpoint, an anomaly score in [0, 1]: the larger of the peer score (``peer_score``:
  worse than the other endpoints of its upstream) and the temporal score (the streaming
  ``AnomalyDetector`` on the endpoint's own median latency, averaged over each
  ``forecast_step``, near the cadence it was evaluated at (NAB's five-minute points); it
  counts once its warm-up is over, since it needs a day to know the daily shape, and
  holds its last score between steps);
- per upstream, region and route, a request-rate forecast for the next steps
  (``SeasonalForecaster`` on means over ``forecast_step``).

Pure of I/O and of the event loop: it runs in the learner's thread and only returns data.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dispa.ai.detector import AnomalyDetector
from dispa.ai.forecaster import SeasonalForecaster
from dispa.ai.peer_score import PeerScorer
from dispa.ai.resample import Resampler
from dispa.ai.signals import Sample
from dispa.config.ai import Ai

# The own-history detector watches this feature of each endpoint (about 1 MB of history
# per endpoint once a week is seen; errors are left to the peer score and outlier
# detection, which act on them within seconds).
TEMPORAL_FEATURE = "latency_p50"
FORECAST_KINDS = ("upstreams", "regions", "routes")
# A forecaster that has learned fewer steps than this has no history to speak of: its
# forecasts are neither shown nor used (a cold model would raise false capacity alerts).
MIN_FORECAST_STEPS = 5


@dataclass(frozen=True)
class Verdict:
    t: float
    # (upstream, address) -> score, its parts and the features behind them
    endpoints: dict[tuple[str, str], dict[str, float]]
    # kind ("upstreams", "regions", "routes") -> name -> forecast rate per step ahead
    forecasts: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    # kind -> name -> the rate of the latest sample (what a forecast is compared with)
    recent: dict[str, dict[str, float]] = field(default_factory=dict)


class _Temporal:
    __slots__ = ("detector", "resampler", "score")

    def __init__(self, settings: Ai) -> None:
        self.resampler = Resampler(settings.forecast_step)
        self.detector = AnomalyDetector(
            step_seconds=settings.forecast_step, warmup_seconds=settings.detector_warmup
        )
        self.score = 0.0


class _Forecast:
    __slots__ = ("forecaster", "resampler", "steps", "values")

    def __init__(self, settings: Ai) -> None:
        self.resampler = Resampler(settings.forecast_step)
        self.forecaster = SeasonalForecaster(
            step_seconds=settings.forecast_step, tracked_horizons=settings.forecast_horizon
        )
        self.values: list[float] = []
        self.steps = 0


class GatewayModels:
    def __init__(self, settings: Ai) -> None:
        self.settings = settings
        self.peers = PeerScorer(settings.steering)
        self.detectors: dict[tuple[str, str], _Temporal] = {}
        self.forecasts: dict[str, dict[str, _Forecast]] = {kind: {} for kind in FORECAST_KINDS}

    def learn(self, sample: Sample) -> Verdict:
        endpoints = self.peers.score(sample.endpoints, sample.interval)
        for key, features in sample.endpoints.items():
            temporal = self._temporal_score(key, sample.t, features)
            scored = endpoints[key]
            scored["temporal_score"] = temporal
            scored["score"] = max(scored["peer_score"], temporal)
            scored["rate"] = features["rate"]
            scored["latency_p99"] = features["latency_p99"]
            scored["active"] = features["active"]
        live = set(sample.endpoints)
        self.detectors = {k: d for k, d in self.detectors.items() if k in live}
        forecasts, recent = {}, {}
        for kind in FORECAST_KINDS:
            groups = getattr(sample, kind)
            forecasts[kind], recent[kind] = self._forecast(kind, groups, sample.t)
        return Verdict(sample.t, endpoints, forecasts, recent)

    def _temporal_score(self, key: tuple[str, str], t: float, features: dict) -> float:
        if not self.settings.history_detector:
            return 0.0
        temporal = self.detectors.get(key)
        if temporal is None:
            temporal = self.detectors[key] = _Temporal(self.settings)
        # NaN (no response this interval) is skipped by the resampler: nothing to learn.
        closed = temporal.resampler.add(t, features[TEMPORAL_FEATURE])
        if closed is not None:
            temporal.score = temporal.detector.score_one(*closed)
            temporal.detector.learn(*closed)
        return temporal.score

    def _forecast(self, kind: str, groups: dict, t: float):
        models = self.forecasts[kind]
        self.forecasts[kind] = models = {name: models.get(name) for name in groups}
        forecasts, recent = {}, {}
        for name, features in groups.items():
            model = models[name]
            if model is None:
                model = models[name] = _Forecast(self.settings)
            closed = model.resampler.add(t, features["rate"])
            if closed is not None:
                model.forecaster.learn(*closed)
                model.steps += 1
                if model.steps >= MIN_FORECAST_STEPS:
                    # Rates are never negative, whatever a trend extrapolates.
                    horizon = self.settings.forecast_horizon
                    model.values = [max(0.0, v) for v in model.forecaster.forecast(horizon)]
            recent[name] = features["rate"]
            if model.values:
                forecasts[name] = model.values
        return forecasts, recent
