"""The config model of an edge node (``dispa edge -c edge.yaml``).

An edge's file says who it is and what it has locally: name, region, the cores it
follows, its data directory, its listeners and admin address, its cache and its geo
database. What it serves (routes, upstreams, regions) comes from the cores' shared
config through the watch stream.
"""

from __future__ import annotations

from pydantic import Field, field_validator

# CacheSettings is the gateway file's `cache` section too (a single gateway caches alike).
from dispa.config.file_paths import FilePath
from dispa.config.schema import _NAME, Address, Admin, CacheSettings, Listener, Strict
from dispa.config.units import Duration


class EdgeSettings(Strict):
    name: str = Field(pattern=_NAME)
    region: str = Field("default", pattern=_NAME)  # its point of presence
    data_dir: FilePath  # the last applied config is persisted here


class GeoSettings(Strict):
    database: FilePath | None = None  # a MaxMind City or Country database (.mmdb)
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
