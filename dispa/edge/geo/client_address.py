"""Which address a request really comes from, when proxies may stand in front of the edge.

The TCP peer is the only address nobody can forge. When the peer is a proxy the operator
trusts (a load balancer, a CDN), the client is further left in X-Forwarded-For, where
each proxy appends the address it received the request from. Only entries appended by a
trusted proxy can be believed, so the header is read from the right: every trusted hop
vouches for the entry to its left, and the first untrusted address is the client. Anything
left of that was written by the client itself and may say whatever it likes.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_address(text: str) -> IPAddress | None:
    """The address in ``text``, or None if it is not one.

    IPv4-mapped IPv6 (``::ffff:192.0.2.1``, what a dual-stack socket reports for IPv4
    peers) becomes the IPv4 address, so one client has one identity whichever way it came.
    """
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def parse_forwarded_entry(entry: str) -> IPAddress | None:
    """One X-Forwarded-For element; some proxies (Azure, IIS) append a port to it."""
    entry = entry.strip()
    if entry.startswith("["):  # "[2001:db8::1]:443"
        host, bracket, _ = entry[1:].partition("]")
        return parse_address(host) if bracket else None
    if entry.count(":") == 1:  # "192.0.2.1:443"; a bare IPv6 address has at least two
        entry = entry.partition(":")[0]
    return parse_address(entry)


_IPV4_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")


def _unmap_network(network: ipaddress.IPv6Network) -> ipaddress.IPv4Network:
    first = network.network_address.ipv4_mapped
    assert first is not None  # the caller checked the network lies in ::ffff:0:0/96
    return ipaddress.IPv4Network((first, network.prefixlen - 96))


class TrustedProxies:
    """The networks whose X-Forwarded-For entries are believed. Built once per config."""

    __slots__ = ("_v4", "_v6", "cidrs")

    def __init__(self, cidrs: Iterable[str] = ()) -> None:
        self.cidrs = tuple(cidrs)
        self._v4: list[ipaddress.IPv4Network] = []
        self._v6: list[ipaddress.IPv6Network] = []
        for cidr in self.cidrs:
            try:
                # Lenient on host bits: "10.1.2.3/8" is taken to mean 10.0.0.0/8.
                network = ipaddress.ip_network(cidr.strip(), strict=False)
            except ValueError as error:
                raise ValueError(f"invalid trusted proxy network {cidr!r}: {error}") from None
            if isinstance(network, ipaddress.IPv4Network):
                self._v4.append(network)
            elif network.subnet_of(_IPV4_MAPPED):
                # Addresses are compared as IPv4 once unmapped, so must the networks be.
                self._v4.append(_unmap_network(network))
            else:
                self._v6.append(network)

    def __bool__(self) -> bool:
        return bool(self._v4 or self._v6)

    def contains(self, ip: str) -> bool:
        address = parse_address(ip)
        return address is not None and self.contains_address(address)

    def contains_address(self, address: IPAddress) -> bool:
        if isinstance(address, ipaddress.IPv4Address):
            networks: list[ipaddress.IPv4Network] | list[ipaddress.IPv6Network] = self._v4
        else:
            networks = self._v6
        for network in networks:
            if address in network:
                return True
        return False


def client_address(
    peer_ip: str, forwarded_for: list[bytes] | bytes | None, trusted: TrustedProxies
) -> str:
    """The address of the client, as text (IPv4-mapped addresses given as IPv4).

    ``forwarded_for`` holds the raw X-Forwarded-For header lines, in the order received;
    several lines are one list, joined in order (RFC 9110 section 5.3).
    """
    peer = parse_address(peer_ip)
    if peer is None:
        return peer_ip
    if not forwarded_for or not trusted.contains_address(peer):
        return str(peer)
    if isinstance(forwarded_for, bytes):
        forwarded_for = [forwarded_for]
    # latin-1 maps every byte to a character, so odd bytes make an entry malformed
    # instead of raising.
    joined = b",".join(forwarded_for).decode("latin-1")
    last_good = peer
    for entry in reversed(joined.split(",")):
        if not entry.strip():
            # An empty element (a trailing comma, an empty line) names nobody; skipping it
            # believes nothing new.
            continue
        address = parse_forwarded_entry(entry)
        if address is None:
            # Garbage where a trusted hop should have written an address: the chain cannot
            # be followed further, and whatever lies left of it may be forged. Stop at the
            # last hop that was still believable.
            break
        if not trusted.contains_address(address):
            return str(address)
        last_good = address
    return str(last_good)
