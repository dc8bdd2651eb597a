"""Global rate limits (``rate_limits:`` in the config): a fixed window per key, counted by
the gateway's ``QuotaAccount`` — alone on a single gateway, or from quota leased from the
cluster on cores and edges. Refused requests get 429 with Retry-After until the window ends.
"""

from __future__ import annotations

import math
import time

from dispa.config.schema import RateLimit
from dispa.proxy.filters.base import Filter
from dispa.proxy.filters.keys import request_key
from dispa.proxy.local_reply import RATE_LIMITED, error_reply
from dispa.proxy.quota import QuotaAccount


class GlobalRateLimit(Filter):
    name = "global_rate_limit"
    # Anonymous (client address, route) or by a header: see LocalRateLimit's stage.
    stage = "admission"

    def __init__(self, config: RateLimit, quota: QuotaAccount, clock=time.time) -> None:
        self.limit_name = config.name
        self.limit = config.limit
        self.window = config.window
        self.quota = quota
        # Wall-clock time: windows are aligned to the epoch so every node agrees on them.
        self.clock = clock
        self._key = request_key(config.key)
        if config.key.startswith("header:"):
            self.stage = "rate_limit"

    def on_request(self, ctx):
        key = self._key(ctx)
        now = self.clock()
        if self.quota.try_spend(self.limit_name, str(key), self.limit, self.window, now):
            return None
        window_ends = (math.floor(now / self.window) + 1) * self.window
        retry_after = str(max(1, math.ceil(window_ends - now))).encode()
        return error_reply(429, RATE_LIMITED, ((b"retry-after", retry_after),))
