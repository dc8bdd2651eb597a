"""Request-rate-like series with known structure, for tests and the evaluation.

Real gateway traffic has a daily cycle, quieter weekends, slow growth, counting noise and
short bursts; a model that only handles one of these is caught out by the others.
"""

from __future__ import annotations

import math

import numpy as np

DAY_SECONDS = 86_400.0


def daily_request_rate(
    days: float = 35.0,
    step_seconds: float = 300.0,
    mean_per_step: float = 300.0,
    daily_amplitude: float = 0.6,
    weekend_factor: float = 0.7,
    growth_per_week: float = 0.03,
    burst_probability: float = 0.01,
    seed: int = 7,
    start: float = 1_700_006_400.0,  # a Wednesday, 00:00 UTC
) -> tuple[list[float], list[float]]:
    """Return (timestamps in seconds, requests per step)."""
    rng = np.random.default_rng(seed)
    count = int(days * DAY_SECONDS / step_seconds)
    timestamps = [start + i * step_seconds for i in range(count)]
    values = []
    for t in timestamps:
        phase = (t % DAY_SECONDS) / DAY_SECONDS
        # Trough at 04:00, peak mid-afternoon, with a second harmonic for a lopsided day.
        shape = math.sin(2 * math.pi * (phase - 0.42)) + 0.3 * math.sin(4 * math.pi * phase)
        weekday = int(((t // DAY_SECONDS) + 3) % 7)  # 1970-01-01 was a Thursday
        week_factor = weekend_factor if weekday >= 5 else 1.0
        growth = 1.0 + growth_per_week * (t - start) / (7 * DAY_SECONDS)
        rate = mean_per_step * max(0.05, 1.0 + daily_amplitude * shape) * week_factor * growth
        if rng.random() < burst_probability:
            rate *= rng.uniform(1.5, 3.0)
        values.append(float(rng.poisson(rate)))
    return timestamps, values
