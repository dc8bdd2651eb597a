from __future__ import annotations

import ipaddress

import pytest

from dispa.edge.geo import TrustedProxies, client_address
from dispa.edge.geo.client_address import parse_address, parse_forwarded_entry

# A load balancer in 10.0.0.0/8, a CDN edge in 198.51.100.0/24, an IPv6 proxy range.
TRUSTED = TrustedProxies(["10.0.0.0/8", "198.51.100.0/24", "2001:db8:f::/48"])
CLIENT = "203.0.113.7"
FORGED = "192.0.2.66"


def test_untrusted_peer_is_the_client_whatever_it_forwards() -> None:
    assert client_address(CLIENT, b"81.2.69.142", TRUSTED) == CLIENT
    assert client_address(CLIENT, [b"81.2.69.142", b"10.0.0.1"], TRUSTED) == CLIENT


def test_trusted_peer_without_header_is_the_client() -> None:
    assert client_address("10.0.0.1", None, TRUSTED) == "10.0.0.1"
    assert client_address("10.0.0.1", [], TRUSTED) == "10.0.0.1"
    assert client_address("10.0.0.1", b"", TRUSTED) == "10.0.0.1"


def test_trusted_peer_hands_over_to_the_rightmost_entry() -> None:
    assert client_address("10.0.0.1", CLIENT.encode(), TRUSTED) == CLIENT


def test_trusted_hops_are_skipped_and_the_forged_left_part_ignored() -> None:
    # The client sent "X-Forwarded-For: 192.0.2.66" itself; the CDN and the load balancer
    # appended what they saw. Only the part they wrote counts.
    header = f"{FORGED}, {CLIENT}, 198.51.100.4, 10.1.2.3".encode()
    assert client_address("10.0.0.1", header, TRUSTED) == CLIENT


def test_chain_of_only_trusted_hops_gives_the_leftmost() -> None:
    assert client_address("10.0.0.1", b"10.9.9.9, 198.51.100.4", TRUSTED) == "10.9.9.9"


def test_several_header_lines_are_one_list_in_order() -> None:
    lines = [f"{FORGED}, {CLIENT}".encode(), b"198.51.100.4", b"10.1.2.3"]
    assert client_address("10.0.0.1", lines, TRUSTED) == CLIENT
    # Order matters: the last line is the one the peer appended.
    assert client_address("10.0.0.1", [CLIENT.encode(), FORGED.encode()], TRUSTED) == FORGED


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        # Garbage right after the peer: the peer is the last address we can vouch for.
        (f"{CLIENT}, unknown".encode(), "10.0.0.1"),
        # Garbage behind a trusted hop: stop at that hop, never read past the garbage.
        (f"{FORGED}, not-an-ip, 198.51.100.4".encode(), "198.51.100.4"),
        (f"{FORGED}, 300.1.1.1, 10.2.2.2".encode(), "10.2.2.2"),
        (b"\xff\xfe, 10.2.2.2", "10.2.2.2"),
        (b"[2001:db8::1, 10.2.2.2", "10.2.2.2"),
    ],
)
def test_malformed_entry_stops_the_walk_at_the_last_good_address(
    header: bytes, expected: str
) -> None:
    assert client_address("10.0.0.1", header, TRUSTED) == expected


def test_empty_elements_are_skipped() -> None:
    assert client_address("10.0.0.1", [f"{CLIENT},".encode(), b"", b" "], TRUSTED) == CLIENT


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ("203.0.113.7:51234", "203.0.113.7"),
        ("[2001:db8::7]:443", "2001:db8::7"),
        ("[2001:db8::7]", "2001:db8::7"),
        (" 2001:db8::7 ", "2001:db8::7"),
    ],
)
def test_entries_with_ports_or_brackets_are_understood(entry: str, expected: str) -> None:
    assert str(parse_forwarded_entry(entry)) == expected
    assert client_address("10.0.0.1", entry.encode(), TRUSTED) == expected


def test_ipv6_chain() -> None:
    header = f"{FORGED}, 2001:db8:1::7, 2001:db8:f::2".encode()
    assert client_address("2001:db8:f::1", header, TRUSTED) == "2001:db8:1::7"
    # An IPv6 peer outside the trusted range is the client.
    assert client_address("2001:db8:1::9", header, TRUSTED) == "2001:db8:1::9"


def test_ipv4_mapped_peer_is_matched_and_reported_as_ipv4() -> None:
    assert TRUSTED.contains("::ffff:10.0.0.1")
    assert client_address("::ffff:10.0.0.1", CLIENT.encode(), TRUSTED) == CLIENT
    assert client_address("::ffff:203.0.113.7", None, TRUSTED) == CLIENT
    assert client_address("10.0.0.1", b"::ffff:203.0.113.7", TRUSTED) == CLIENT


def test_ipv4_mapped_network_in_configuration_matches_ipv4_peers() -> None:
    trusted = TrustedProxies(["::ffff:172.16.0.0/108"])
    assert trusted.contains("172.16.5.5")
    assert trusted.contains("::ffff:172.16.5.5")
    assert not trusted.contains("172.32.0.1")


def test_malformed_peer_is_returned_unchanged() -> None:
    assert client_address("garbage", CLIENT.encode(), TRUSTED) == "garbage"


def test_contains_covers_both_families_and_rejects_garbage() -> None:
    assert TRUSTED.contains("10.255.255.255")
    assert TRUSTED.contains("2001:db8:f:ffff::1")
    assert not TRUSTED.contains("11.0.0.0")
    assert not TRUSTED.contains("2001:db8:e::1")
    assert not TRUSTED.contains("not an address")
    assert not TRUSTED.contains("")


def test_host_bits_and_bare_addresses_are_accepted() -> None:
    trusted = TrustedProxies(["10.1.2.3/8", " 192.0.2.10 "])
    assert trusted.contains("10.200.0.1")
    assert trusted.contains("192.0.2.10")
    assert not trusted.contains("192.0.2.11")
    assert trusted.cidrs == ("10.1.2.3/8", " 192.0.2.10 ")


def test_no_trusted_proxies_trusts_nobody() -> None:
    nobody = TrustedProxies([])
    assert not nobody
    assert bool(TRUSTED)
    assert client_address("10.0.0.1", CLIENT.encode(), nobody) == "10.0.0.1"


def test_invalid_network_is_refused_with_its_text() -> None:
    with pytest.raises(ValueError, match=r"invalid trusted proxy network '10\.0\.0\.0/33'"):
        TrustedProxies(["10.0.0.0/33"])


def test_parse_address_unmaps_ipv4_mapped() -> None:
    assert parse_address("::ffff:192.0.2.1") == ipaddress.IPv4Address("192.0.2.1")
    assert parse_address("2001:db8::1") == ipaddress.IPv6Address("2001:db8::1")
    assert parse_address("nope") is None
