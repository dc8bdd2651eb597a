"""Retry delays for a failing provider: exponential, capped, with jitter.

Jitter spreads the retries of many gateways that lost the same source at the same moment,
so they do not hit it together when it comes back.
"""

from __future__ import annotations

import random
from collections.abc import Callable


class RetryBackoff:
    """``next_delay()`` after each failure, ``reset()`` after a success."""

    def __init__(
        self,
        initial: float = 0.5,
        maximum: float = 30.0,
        factor: float = 2.0,
        jitter: float = 0.2,
        random_fraction: Callable[[], float] = random.random,
    ) -> None:
        self.initial = initial
        self.maximum = maximum
        self.factor = factor
        self.jitter = jitter  # each delay is within +/- this fraction of the nominal one
        self._random_fraction = random_fraction
        self.failures = 0

    def next_delay(self) -> float:
        nominal = min(self.maximum, self.initial * self.factor**self.failures)
        self.failures += 1
        spread = nominal * self.jitter * (2 * self._random_fraction() - 1)
        return max(0.0, min(self.maximum, nominal + spread))

    def reset(self) -> None:
        self.failures = 0
