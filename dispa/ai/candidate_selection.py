"""Pick, per forecast horizon, the candidate model with the lowest recent error.

No single model wins on every series: a smooth seasonal model wins on noisy traffic, the
memory of yesterday wins where the same burst recurs at the same minute, and which one wins
also depends on how far ahead one looks. Each candidate's forecasts are scored when their
target arrives; per horizon the one with the lowest exponential mean absolute error is
used. Measured on the evaluation series, choosing beat weighting candidates by inverse
error (even squared or to the fourth power): a blend drags the winner toward the losers.
"""

from __future__ import annotations


class CandidateSelector:
    """Tracks per-candidate, per-horizon error and picks the best forecast for each horizon."""

    def __init__(self, candidates: int, horizons: int, error_rate: float) -> None:
        if candidates < 1 or horizons < 1 or not 0 < error_rate <= 1:
            raise ValueError("candidates >= 1, horizons >= 1 and 0 < error_rate <= 1 required")
        self.candidates = candidates
        self.horizons = horizons
        self.error_rate = error_rate
        # errors[h - 1][c]: exponential mean absolute error of candidate c at horizon h.
        self.errors: list[list[float | None]] = [[None] * candidates for _ in range(horizons)]
        # Forecasts waiting for their target, keyed by the target's step number.
        self._pending: dict[int, list[tuple[int, list[float | None]]]] = {}

    def best(self, horizon: int, forecasts: list[float | None]) -> float:
        """The forecast of the candidate with the lowest error at `horizon` that has one."""
        row = self.errors[min(horizon, self.horizons) - 1]
        chosen: float | None = None
        chosen_error = float("inf")
        for error, forecast in zip(row, forecasts, strict=True):
            if forecast is None:
                continue
            # Unscored candidates rank last, so the first one with a forecast is the default.
            rank = float("inf") if error is None else error
            if chosen is None or rank < chosen_error:
                chosen, chosen_error = forecast, rank
        return 0.0 if chosen is None else chosen

    def expect(self, target_step: int, horizon: int, forecasts: list[float | None]) -> None:
        """Remember the candidates' forecasts for step `target_step`, made `horizon` ahead."""
        if horizon <= self.horizons:
            self._pending.setdefault(target_step, []).append((horizon, forecasts))

    def observe(self, target_step: int, value: float) -> None:
        """Score every forecast made for `target_step`; drop those whose target never came."""
        for step in [step for step in self._pending if step <= target_step]:
            entries = self._pending.pop(step)
            if step != target_step:
                continue
            for horizon, forecasts in entries:
                row = self.errors[horizon - 1]
                for candidate, forecast in enumerate(forecasts):
                    if forecast is None:
                        continue
                    error = abs(forecast - value)
                    previous = row[candidate]
                    if previous is None:
                        row[candidate] = error
                    else:
                        row[candidate] = previous + self.error_rate * (error - previous)
