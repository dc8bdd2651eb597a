"""What a rate limit counts by, as written in a config: shared by local and global limits."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator


def check_rate_limit_key(value: str) -> str:
    if value in ("source_ip", "route"):
        return value
    kind, _, name = value.partition(":")
    if kind == "header" and name:
        return value
    raise ValueError(f"'{value}' is not a rate-limit key; use source_ip, route or header:NAME")


RateLimitKey = Annotated[str, AfterValidator(check_rate_limit_key)]
