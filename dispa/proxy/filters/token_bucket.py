"""Token bucket arithmetic, pure: time comes in as an argument."""

from __future__ import annotations


class TokenBucket:
    __slots__ = ("burst", "rate", "tokens", "updated")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.updated = now

    def take(self, now: float) -> float:
        """Spend one token: 0.0 when granted, else the seconds until one is available."""
        tokens = self.tokens + (now - self.updated) * self.rate
        if tokens > self.burst:
            tokens = self.burst
        self.updated = now
        if tokens >= 1.0:
            self.tokens = tokens - 1.0
            return 0.0
        self.tokens = tokens
        return (1.0 - tokens) / self.rate

    def full_at(self, now: float) -> bool:
        """True when idle long enough to be full again, so it can be forgotten."""
        return self.tokens + (now - self.updated) * self.rate >= self.burst
