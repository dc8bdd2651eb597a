"""Which Host and Origin an admin API answers: pure decisions, fed the headers and the
address a connection arrived on.

A browser can be made to send a request to an admin API two ways. A page of another site
sends it with that site's ``Origin``; a page whose own domain was rebound to the admin's
address (DNS rebinding) sends it with that domain in ``Host``, and may read the answer as
its own. So the Host must be one of the admin's own names, and an Origin, when present,
the admin's own origin or one the operator listed.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from dispa.config.authority import DEFAULT_PORTS, parse_authority, parse_origin

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")
_WILDCARDS = ("", "0.0.0.0", "[::]")  # a bind to every address names no host


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _local_ip(ip: str) -> str:
    """The address a connection arrived on as a Host would name it (``::ffff:10.0.0.1``,
    an IPv4 client on a dual-stack socket, is ``10.0.0.1``)."""
    try:
        address = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return ip.lower()
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return _bracketed(str(address))


def _is_loopback(ip: str) -> bool:
    try:
        address = ipaddress.ip_address(ip.strip("[]"))
    except ValueError:
        return False
    return address.is_loopback


@dataclass(frozen=True)
class AdminAccess:
    """The names and origins one admin API answers, from its config."""

    address_host: str  # the host of admin.address, lowercased, IPv6 bracketed
    allowed_hosts: tuple[tuple[str, int | None], ...] = ()
    allowed_origins: frozenset[str] = frozenset()  # "scheme://host:port"
    any_host: bool = False  # allowed_hosts has "*"

    @classmethod
    def for_address(cls, address: str, allowed_hosts=(), allowed_origins=()) -> AdminAccess:
        host = address.rpartition(":")[0].lower()
        named = [h for h in allowed_hosts if h != "*"]
        return cls(
            address_host=_bracketed(host),
            allowed_hosts=tuple(parse_authority(h) for h in named if parse_authority(h)),
            allowed_origins=frozenset(allowed_origins),
            any_host="*" in allowed_hosts,
        )

    @classmethod
    def from_config(cls, admin) -> AdminAccess:
        """From an ``Admin`` config section (gateway, core or edge file)."""
        return cls.for_address(admin.address, admin.allowed_hosts, admin.allowed_origins)

    def host_problem(self, host_header: str | None, local_ip: str, local_port: int) -> str | None:
        """Why this Host is not answered, or None when it is."""
        if host_header is None:
            return "a Host header is required"
        parsed = parse_authority(host_header)
        if parsed is None:
            return f"Host '{host_header[:100]}' is not a host name"
        if self.any_host:
            return None
        host, port = parsed
        effective_port = port if port is not None else DEFAULT_PORTS["http"]
        own = {self.address_host, _local_ip(local_ip)}
        if _is_loopback(_local_ip(local_ip)):
            own.update(LOOPBACK_NAMES)
        if host in own and host not in _WILDCARDS and effective_port == local_port:
            return None
        for name, allowed_port in self.allowed_hosts:
            if host == name and (allowed_port is None or allowed_port == effective_port):
                return None
        return (
            f"Host '{host_header[:100]}' is not a name of this admin API; "
            "add it to admin.allowed_hosts to answer it"
        )

    def origin_problem(self, origin_header: str, host_header: str) -> str | None:
        """Why a request with this Origin is refused, or None when the Origin is the
        admin's own (same host and port as the Host it was sent to) or a listed one.
        ``host_header`` has passed ``host_problem``."""
        origin = parse_origin(origin_header)
        if origin is not None:
            scheme, host, port = origin
            if f"{scheme}://{host}:{port}" in self.allowed_origins:
                return None
            own = parse_authority(host_header)
            if own is not None:
                own_host, own_port = own
                if host == own_host and port == (
                    own_port if own_port is not None else DEFAULT_PORTS[scheme]
                ):
                    return None
        return (
            f"Origin '{origin_header[:100]}' may not call this admin API; "
            "add it to admin.allowed_origins to allow its pages"
        )

    def is_listed_origin(self, origin_header: str) -> bool:
        origin = parse_origin(origin_header)
        return (
            origin is not None and f"{origin[0]}://{origin[1]}:{origin[2]}" in self.allowed_origins
        )
