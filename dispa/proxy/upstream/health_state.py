"""Up/down state of one endpoint, moved only by runs of agreeing observations.

A single lost probe or a single lucky answer says little; requiring a run of
``unhealthy_threshold`` failures to go down and ``healthy_threshold`` successes to come
back up (HAProxy's ``fall`` / ``rise``, Envoy's thresholds) keeps a flaky endpoint from
flapping in and out of the pool.
"""

from __future__ import annotations


class HealthState:
    __slots__ = ("_streak", "healthy", "healthy_threshold", "unhealthy_threshold")

    def __init__(self, healthy_threshold: int, unhealthy_threshold: int, healthy: bool = True):
        if healthy_threshold < 1 or unhealthy_threshold < 1:
            raise ValueError("health thresholds must be at least 1")
        self.healthy_threshold = healthy_threshold
        self.unhealthy_threshold = unhealthy_threshold
        self.healthy = healthy
        # Observations in a row that disagree with the current state.
        self._streak = 0

    def observe(self, success: bool) -> bool:
        """Record one check result; return True exactly when it flips the state."""
        if success == self.healthy:
            self._streak = 0
            return False
        self._streak += 1
        needed = self.healthy_threshold if success else self.unhealthy_threshold
        if self._streak < needed:
            return False
        self.healthy = success
        self._streak = 0
        return True

    def __repr__(self) -> str:
        state = "healthy" if self.healthy else "unhealthy"
        return f"HealthState({state}, streak={self._streak})"
