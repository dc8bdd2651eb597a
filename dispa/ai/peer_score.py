"""How much worse an endpoint is than its peers in the same upstream, as a score in [0, 1].

Steering moves traffic between the endpoints of one pool, so what matters is whether one
endpoint is worse than the others: a load ramp that slows every endpoint alike scores 0,
one endpoint turning slow or failing scores up to 1. Per endpoint, moving averages
(half-life ``smoothing_samples``) of requests, errors and median latency; then

- latency: r = own latency / median of the peers' (both at least ``latency_floor``);
  score log(r) / log(slow_ratio), so ``slow_ratio`` times slower scores 1;
- errors: (own error ratio - the peers' median) / ``error_excess``;

each clipped to [0, 1]; the endpoint's score is the larger. An endpoint with no peer that
has data scores 0: there is nothing to compare it with.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping

from dispa.config.ai import Steering

# Below this many requests per sample (moving average) an error ratio is mostly noise.
MIN_REQUESTS_FOR_ERRORS = 1.0
# Pools up to this size compare each endpoint with the median of the others exactly.
EXACT_PEERS_UP_TO = 16


class _Smoothed:
    __slots__ = ("errors", "latency", "requests")

    def __init__(self) -> None:
        self.requests = 0.0
        self.errors = 0.0
        self.latency = math.nan

    def error_ratio(self) -> float | None:
        if self.requests < MIN_REQUESTS_FOR_ERRORS:
            return None
        return min(1.0, self.errors / self.requests)


class PeerScorer:
    def __init__(self, settings: Steering) -> None:
        self.settings = settings
        self._alpha = 1.0 - 0.5 ** (1.0 / settings.smoothing_samples)
        self._state: dict[tuple[str, str], _Smoothed] = {}

    def _learn(self, key: tuple[str, str], features: Mapping[str, float], interval: float):
        state = self._state.get(key)
        if state is None:
            state = self._state[key] = _Smoothed()
        alpha = self._alpha
        requests = features["rate"] * interval
        state.requests += alpha * (requests - state.requests)
        state.errors += alpha * (features["error_ratio"] * requests - state.errors)
        latency = features["latency_p50"]
        if not math.isnan(latency):
            if math.isnan(state.latency):
                state.latency = latency
            else:
                state.latency += alpha * (latency - state.latency)
        return state

    def score(
        self, endpoints: Mapping[tuple[str, str], Mapping[str, float]], interval: float
    ) -> dict[tuple[str, str], dict[str, float]]:
        """Learn one sample of every endpoint; return each one's score and its reasons."""
        self._state = {key: self._state[key] for key in endpoints if key in self._state}
        states = {key: self._learn(key, f, interval) for key, f in endpoints.items()}
        pools: dict[str, list[tuple[str, str]]] = {}
        for key in states:
            pools.setdefault(key[0], []).append(key)
        scores = {}
        for members in pools.values():
            if len(members) > EXACT_PEERS_UP_TO:
                # One median for the whole pool: leaving one endpoint out of hundreds moves
                # it by next to nothing, and this keeps a sample O(n log n), not O(n^2).
                medians = _medians([states[key] for key in members])
                for key in members:
                    scores[key] = self._score_one(states[key], *medians)
                continue
            for key in members:
                peers = [states[other] for other in members if other != key]
                scores[key] = self._score_one(states[key], *_medians(peers))
        return scores

    def _score_one(
        self, own: _Smoothed, peer_latency: float, peer_error_ratio: float
    ) -> dict[str, float]:
        settings = self.settings
        floor = settings.latency_floor
        latency_score = 0.0
        if not math.isnan(own.latency) and not math.isnan(peer_latency):
            ratio = max(own.latency, floor) / max(peer_latency, floor)
            latency_score = _clip(math.log(ratio) / math.log(settings.slow_ratio))
        error_score = 0.0
        own_errors = own.error_ratio()
        if own_errors is not None and not math.isnan(peer_error_ratio):
            error_score = _clip((own_errors - peer_error_ratio) / settings.error_excess)
        return {
            "peer_score": max(latency_score, error_score),
            "latency_score": latency_score,
            "error_score": error_score,
            "latency_p50": own.latency,
            "peer_latency_p50": peer_latency,
            "error_ratio": own_errors if own_errors is not None else math.nan,
            "peer_error_ratio": peer_error_ratio,
        }


def _medians(peers: list[_Smoothed]) -> tuple[float, float]:
    """The peers' median latency and error ratio; NaN where no peer has one."""
    latencies = [p.latency for p in peers if not math.isnan(p.latency)]
    errors = [r for p in peers if (r := p.error_ratio()) is not None]
    return (
        statistics.median(latencies) if latencies else math.nan,
        statistics.median(errors) if errors else math.nan,
    )


def _clip(value: float) -> float:
    return min(1.0, max(0.0, value))
