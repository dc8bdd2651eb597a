"""The ``local_rate_limit`` filter: a token bucket per key, answered with 429 and Retry-After.

Local means per gateway process; the cluster-wide limit with leased quota is a separate
feature of the core nodes.
"""

from __future__ import annotations

import math
import time

from dispa.config.schema import LocalRateLimitFilter
from dispa.proxy.filters.base import Filter
from dispa.proxy.filters.keys import request_key
from dispa.proxy.filters.registry import filter_type
from dispa.proxy.filters.token_bucket import TokenBucket
from dispa.proxy.local_reply import RATE_LIMITED, error_reply

# Buckets of keys not seen for a while are swept once the table grows past this, so a
# flood of distinct client addresses cannot grow memory without bound.
_SWEEP_AT = 100_000


@filter_type(LocalRateLimitFilter, stage="rate_limit")
class LocalRateLimit(Filter):
    name = "local_rate_limit"

    def __init__(self, config: LocalRateLimitFilter, clock=time.monotonic) -> None:
        self.rate = config.rate
        self.burst = float(config.burst or max(1, math.ceil(config.rate)))
        self.clock = clock
        self.buckets: dict[object, TokenBucket] = {}
        self.limited = 0
        self._key = request_key(config.key)
        # Keyed by client address or route, the limit needs nobody's identity: it runs
        # first (admission), so a refused request costs no other filter any work. Keyed by
        # a header, it may count per consumer: after authn and authz.
        if config.key in ("source_ip", "route"):
            self.stage = "admission"

    def on_request(self, ctx):
        now = self.clock()
        key = self._key(ctx)
        bucket = self.buckets.get(key)
        if bucket is None:
            if len(self.buckets) >= _SWEEP_AT:
                self._sweep(now)
            bucket = self.buckets[key] = TokenBucket(self.rate, self.burst, now)
        wait = bucket.take(now)
        if wait == 0.0:
            return None
        self.limited += 1
        retry_after = str(max(1, math.ceil(wait))).encode()
        return error_reply(429, RATE_LIMITED, ((b"retry-after", retry_after),))

    def _sweep(self, now: float) -> None:
        buckets = {k: b for k, b in self.buckets.items() if not b.full_at(now)}
        # A flood of distinct keys faster than buckets refill leaves none full: forget the
        # least recently used half too. Else the table grows without bound and every new key
        # pays for a sweep of all of it. A forgotten key starts again with a full bucket.
        if len(buckets) > _SWEEP_AT // 2:
            recent = sorted(buckets.items(), key=lambda item: item[1].updated)
            buckets = dict(recent[len(buckets) - _SWEEP_AT // 2 :])
        self.buckets = buckets
