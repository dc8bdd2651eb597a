"""A spread estimate that a burst cannot blow up.

The median of absolute errors is tracked by multiplicative steps: each sample moves the
estimate up or down by the same small factor whatever its size, so a 1000x outlier counts as
much as a 1.1x one. An exponential average of squared errors, by contrast, ratchets up with
every burst and then lets the next burst through as "normal".
"""

from __future__ import annotations

import math

# Median absolute deviation of a normal distribution, in standard deviations.
MAD_PER_SIGMA = 0.6744897501960817
SMALLEST = 1e-12


class RobustScale:
    """Standard deviation estimated from the running median of absolute errors."""

    def __init__(self, step_factor: float = 0.03) -> None:
        if not 0 < step_factor < 1:
            raise ValueError("step_factor must be in (0, 1)")
        self.step_factor = step_factor
        self._median_abs: float | None = None

    @property
    def ready(self) -> bool:
        return self._median_abs is not None

    @property
    def sigma(self) -> float:
        if self._median_abs is None:
            return 0.0
        return max(SMALLEST, self._median_abs / MAD_PER_SIGMA)

    def update(self, error: float, step_factor: float | None = None) -> None:
        size = abs(error)
        if self._median_abs is None:
            if size > 0:
                self._median_abs = size
            return
        factor = self.step_factor if step_factor is None else step_factor
        if size > self._median_abs:
            self._median_abs *= math.exp(factor)
        elif size < self._median_abs:
            self._median_abs = max(SMALLEST, self._median_abs * math.exp(-factor))
