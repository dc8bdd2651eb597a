"""From anomaly scores to balancing weight factors, with hysteresis and gradual recovery.

Per endpoint: the score goes through a ``Hysteresis`` flag (``score_high`` for
``on_after`` samples raises it, below ``score_low`` for ``off_after`` samples lowers it).
While flagged the endpoint's weight factor is ``floor`` (lowered, never 0: taking an
endpoint out is outlier detection's job); once cleared it climbs back by
``recovery_per_second`` to 1. Every change of state is a ``Decision`` that carries its
reason: the scores and the features behind them.

Pure: verdicts and times in, factors and decisions out; the gateway applies them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from dispa.ai.hysteresis import Hysteresis
from dispa.config.ai import Steering

NORMAL, ANOMALOUS, RECOVERING = "normal", "anomalous", "recovering"
# What a decision reports of the endpoint's scores and features.
REASON_FIELDS = (
    "score",
    "peer_score",
    "latency_score",
    "error_score",
    "temporal_score",
    "latency_p50",
    "peer_latency_p50",
    "latency_p99",
    "error_ratio",
    "peer_error_ratio",
    "rate",
    "active",
)


@dataclass(frozen=True)
class Decision:
    t: float
    upstream: str
    endpoint: str
    action: str  # "lowered" | "recovering" | "restored"
    factor: float
    reason: str
    details: dict[str, float | None]

    def document(self) -> dict:
        return {
            "time": self.t,
            "upstream": self.upstream,
            "endpoint": self.endpoint,
            "action": self.action,
            "weight_factor": round(self.factor, 3),
            "reason": self.reason,
            "details": self.details,
        }


class _State:
    __slots__ = ("flag", "last_t", "score", "scored", "state", "weight_factor")

    def __init__(self, settings: Steering) -> None:
        self.flag = Hysteresis(
            settings.score_high, settings.score_low, settings.on_after, settings.off_after
        )
        self.weight_factor = 1.0
        self.state = NORMAL
        self.score = 0.0
        self.scored: dict[str, float] = {}
        self.last_t: float | None = None


class Steerer:
    def __init__(self, settings: Steering) -> None:
        self.settings = settings
        self.endpoints: dict[tuple[str, str], _State] = {}

    def update(
        self, endpoints: dict[tuple[str, str], dict[str, float]], t: float
    ) -> list[Decision]:
        """Fold one verdict's scores in; return the decisions it made."""
        settings = self.settings
        self.endpoints = {key: self.endpoints[key] for key in endpoints if key in self.endpoints}
        decisions = []
        for key, scored in endpoints.items():
            state = self.endpoints.get(key)
            if state is None:
                state = self.endpoints[key] = _State(settings)
            elapsed = 0.0 if state.last_t is None else max(0.0, t - state.last_t)
            state.last_t = t
            state.score = scored["score"]
            state.scored = scored
            flagged = state.flag.update(scored["score"])
            previous = state.state
            if flagged:
                state.weight_factor = settings.floor
                state.state = ANOMALOUS
            else:
                if previous == ANOMALOUS:
                    elapsed = 0.0  # recovery starts now, not at the last sample
                factor = state.weight_factor + settings.recovery_per_second * elapsed
                # 0.2 + 8 x 0.1 is 0.9999999999999999 in floats: that is 1.
                state.weight_factor = 1.0 if factor >= 1.0 - 1e-9 else factor
                state.state = RECOVERING if state.weight_factor < 1.0 else NORMAL
            if not settings.enabled:
                state.weight_factor = 1.0
            if state.state != previous:
                decisions.append(self._decision(key, state, t))
        return decisions

    def _decision(self, key: tuple[str, str], state: _State, t: float) -> Decision:
        upstream, address = key
        action = {ANOMALOUS: "lowered", RECOVERING: "recovering", NORMAL: "restored"}[state.state]
        if not self.settings.enabled:
            action = f"{action} (steering disabled: weight left alone)"
        return Decision(
            t,
            upstream,
            address,
            action,
            state.weight_factor,
            explain(state.scored, state.state),
            {name: _plain(state.scored.get(name)) for name in REASON_FIELDS},
        )

    def factors(self) -> dict[tuple[str, str], float]:
        return {key: state.weight_factor for key, state in self.endpoints.items()}

    def document(self) -> dict[tuple[str, str], dict]:
        return {
            key: {
                "score": round(state.score, 4),
                "state": state.state,
                "weight_factor": round(state.weight_factor, 3),
                "details": {name: _plain(state.scored.get(name)) for name in REASON_FIELDS},
            }
            for key, state in self.endpoints.items()
        }


def explain(scored: dict[str, float], state: str) -> str:
    """One line an operator can read: which score moved, and on what numbers."""
    parts = []
    latency, peer = scored.get("latency_p50", math.nan), scored.get("peer_latency_p50", math.nan)
    if scored.get("latency_score", 0.0) > 0 and not math.isnan(latency) and not math.isnan(peer):
        parts.append(
            f"median latency {latency * 1000:.1f} ms vs peers' {peer * 1000:.1f} ms "
            f"(latency score {scored['latency_score']:.2f})"
        )
    if scored.get("error_score", 0.0) > 0:
        parts.append(
            f"error ratio {scored['error_ratio']:.2f} vs peers' {scored['peer_error_ratio']:.2f}"
            f" (error score {scored['error_score']:.2f})"
        )
    if scored.get("temporal_score", 0.0) > 0:
        parts.append(f"own-history detector score {scored['temporal_score']:.4f}")
    numbers = "; ".join(parts) if parts else "no score above 0"
    lead = {
        ANOMALOUS: "score stayed high",
        RECOVERING: "score fell",
        NORMAL: "weight fully restored",
    }[state]
    return f"{lead}: score {scored.get('score', 0.0):.2f}; {numbers}"


def _plain(value: float | None) -> float | None:
    """JSON has no NaN: a feature with no observation is shown as null."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return round(value, 6)
