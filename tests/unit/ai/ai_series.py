"""Series shared by the tests of dispa/ai: a daily cycle at 5-minute points, with noise."""

from __future__ import annotations

import math
import random

STEP = 300.0
START = 1_700_006_400.0  # midnight UTC
POINTS_PER_DAY = 288


def daily_series(days: float, noise: float = 0.01, seed: int = 3) -> tuple[list, list]:
    rng = random.Random(seed)
    timestamps = [START + i * STEP for i in range(int(days * POINTS_PER_DAY))]
    values = [
        100.0
        * (1 + 0.5 * math.sin(2 * math.pi * (t % 86_400) / 86_400))
        * (1 + noise * rng.gauss(0, 1))
        for t in timestamps
    ]
    return timestamps, values
