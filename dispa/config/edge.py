"""The config model of an edge node (``dispa edge -c edge.yaml``).

An edge's file says who it is and what it has locally: name, region, the cores it
follows, its data directory, its listeners and admin address, its cache and its geo
database. What it serves (routes, upstreams, regions) comes from the cores' shared
config through the watch stream.
"""

from __future__ import annotations

from pydantic import Field, field_validator

from dispa.config.schema import _NAME, Address, Admin, Listener, Strict
from dispa.config.units import Duration, Size


class EdgeSettings(Strict):
    name: str = Field(pattern=_NAME)
    region: str = Field("default", pattern=_NAME)  # its point of presence
    data_dir: str  # the last applied config is persisted here


class CacheSettings(Strict):
    memory: Size = 64 * 1024 * 1024  # bytes of (compressed) responses held in memory
    disk_dir: str | None = None  # an optional disk tier, for what memory evicts
    disk_size: Size = 1024 * 1024 * 1024
    max_entry: Size = 8 * 1024 * 1024  # larger responses are passed through, not stored


class GeoSettings(Strict):
    database: str | None = None  # a MaxMind City or Country database (.mmdb)
    # The client address comes from X-Forwarded-For only when the connection comes from
    # one of these networks (a load balancer in front of the edge).
    trusted_proxies: tuple[str, ...] = ()

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        import ipaddress

        for value in values:
            try:
                ipaddress.ip_network(value, strict=False)
            except ValueError:
                raise ValueError(f"'{value}' is not an IP network (e.g. 10.0.0.0/8)") from None
        return values


class EdgeRateLimits(Strict):
    # Cut off from every core, this edge admits this share of each global limit alone.
    fallback_share: float = Field(0.1, gt=0, le=1)


class FollowSettings(Strict):
    # Reconnect backoff after a core fails: doubled per failure up to the maximum, with
    # random jitter so edges do not reconnect in step.
    backoff_min: Duration = 0.1
    backoff_max: Duration = 5.0
    # No frame (not even a heartbeat) for this long: the core is taken as gone.
    silence_timeout: Duration = 3.5
    report_interval: Duration = 5.0


class EdgeConfig(Strict):
    edge: EdgeSettings
    cores: tuple[Address, ...] = Field(min_length=1)  # admin addresses of the cores
    listeners: tuple[Listener, ...] = Field(min_length=1)
    admin: Admin = Admin()
    cache: CacheSettings = CacheSettings()
    geo: GeoSettings = GeoSettings()
    rate_limits: EdgeRateLimits = EdgeRateLimits()
    follow: FollowSettings = FollowSettings()
