"""Filter type name -> how to build it from its config."""

from __future__ import annotations

from dispa.proxy.filters.base import Filter
from dispa.proxy.filters.headers import HeadersEdit
from dispa.proxy.filters.local_rate_limit import LocalRateLimit

FILTER_TYPES = {"headers": HeadersEdit, "local_rate_limit": LocalRateLimit}


def build_filter(config) -> Filter:
    return FILTER_TYPES[config.type](config)
