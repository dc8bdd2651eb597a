"""Config of the ``local_rate_limit`` filter: a token bucket per key, per gateway process."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from dispa.config.filters import filter_config
from dispa.config.filters._rate_limit_key import RateLimitKey
from dispa.config.strict import Strict


@filter_config
class LocalRateLimitFilter(Strict):
    """A token bucket per key, answered with 429 and Retry-After when empty. Local: each
    gateway process (each worker) keeps its own buckets, so with `--workers N` a client may
    get up to N times the rate. Keyed by `source_ip` or `route` it runs in the `admission`
    stage, first of all; keyed by a header, in `rate_limit`, after authentication."""

    type: Literal["local_rate_limit"]
    key: RateLimitKey = Field(
        "source_ip",
        description="What gets its own bucket: `source_ip` (client address), `route` (the "
        "route's name) or `header:NAME` (requests without the header share one bucket).",
    )
    rate: float = Field(
        gt=0, description="Tokens added per second; each request spends one. Must be above 0."
    )
    burst: int = Field(
        0,
        ge=0,
        description="Bucket size: requests allowed at once after a quiet spell. 0 means the "
        "rate rounded up (at least 1).",
    )
