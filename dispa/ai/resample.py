"""Per-second samples to one point per bucket (a minute by default), by their mean.

The gateway samples each endpoint once a second, but seasonality is learned per slot of the
day and a second's counts are mostly noise; models learn from bucket means instead.
"""

from __future__ import annotations

import math


class Resampler:
    """`add(t, value)` returns (bucket_start, mean) when `t` opens a new bucket, else None."""

    def __init__(self, bucket_seconds: float = 60.0) -> None:
        if bucket_seconds <= 0:
            raise ValueError("bucket_seconds must be > 0")
        self.bucket_seconds = bucket_seconds
        self._bucket: float | None = None
        self._total = 0.0
        self._count = 0

    def add(self, t: float, value: float) -> tuple[float, float] | None:
        if math.isnan(value):
            return None  # no observation this second (see features.extract_features)
        bucket = math.floor(t / self.bucket_seconds) * self.bucket_seconds
        closed = None
        if self._bucket is not None and bucket > self._bucket and self._count:
            closed = (self._bucket, self._total / self._count)
        if self._bucket is None or bucket > self._bucket:
            self._bucket, self._total, self._count = bucket, 0.0, 0
        # A late sample of an already closed bucket is folded into the current one.
        self._total += value
        self._count += 1
        return closed
