"""Pure parts of the providers: DNS messages, Consul health entries, EndpointSlices, files."""

from __future__ import annotations

import struct

import pytest

from dispa.discovery.consul_provider import endpoints_from_health
from dispa.discovery.dns_provider import lowest_priority
from dispa.discovery.dns_wire import (
    TYPE_A,
    TYPE_SRV,
    DnsError,
    build_query,
    parse_answer,
)
from dispa.discovery.kubernetes_provider import endpoints_from_slices
from dispa.discovery.parse import BadEndpoints, parse_pools
from dispa.discovery.provider import DiscoveredEndpoint, clamp_weight, format_address


def reply(query_id: int, question: bytes, answers: list[bytes], rcode: int = 0) -> bytes:
    header = struct.pack("!HHHHHH", query_id, 0x8180 | rcode, 1, len(answers), 0, 0)
    return header + question + b"".join(answers)


def test_dns_answers_with_compressed_names() -> None:
    query = build_query(7, "_http._tcp.web.test", TYPE_SRV)
    question = query[12:]
    pointer = b"\xc0\x0c"  # the name of the question
    srv = struct.pack("!HHH", 0, 30, 8080) + b"\x01a\xc0\x17"  # "a" + "web.test" by pointer
    answer = pointer + struct.pack("!HHIH", TYPE_SRV, 1, 60, len(srv)) + srv
    a_record = pointer + struct.pack("!HHIH", TYPE_A, 1, 5, 4) + bytes([10, 0, 0, 1])
    parsed = parse_answer(reply(7, question, [answer, a_record]), 7)
    assert parsed.exists
    assert parsed.records[0].value == (0, 30, 8080, "a.web.test")
    assert parsed.records[0].ttl == 60
    assert parsed.records[1].value == "10.0.0.1"


def test_dns_failures_are_errors_and_nxdomain_is_an_answer() -> None:
    question = build_query(9, "x.test", TYPE_A)[12:]
    assert not parse_answer(reply(9, question, [], rcode=3), 9).exists
    with pytest.raises(DnsError, match="SERVFAIL"):
        parse_answer(reply(9, question, [], rcode=2), 9)
    with pytest.raises(DnsError, match="another query"):
        parse_answer(reply(8, question, []), 9)
    cut_short = reply(9, question, [b"\xc0\x0c" + struct.pack("!HHIH", TYPE_A, 1, 5, 4)])
    with pytest.raises(DnsError, match="garbled"):
        parse_answer(cut_short, 9)  # says 4 bytes of address, has none


def test_srv_keeps_the_lowest_priority_group() -> None:
    records = [(10, 5, 1, "c"), (0, 30, 1, "a"), (0, 10, 2, "b")]
    assert lowest_priority(records) == [(0, 30, 1, "a"), (0, 10, 2, "b")]
    assert lowest_priority([]) == []
    assert [clamp_weight(w) for w in (0, 30, 65535)] == [1, 30, 1000]
    assert format_address("::1", 80) == "[::1]:80"


def test_consul_entries_weights_and_checks() -> None:
    def entry(port, status="passing", **service) -> dict:
        return {
            "Node": {"Address": "10.0.0.9"},
            "Service": {"Port": port, **service},
            "Checks": [{"Status": status}],
        }

    endpoints = endpoints_from_health(
        [
            entry(1, Meta={"weight": "7", "region": "eu"}, Tags=["weight=3"]),
            entry(2, Tags=["weight=3"], Address="10.0.0.2"),
            entry(3, Weights={"Passing": 4}),
            entry(4, status="warning"),
        ],
        region="us",
    )
    assert endpoints == [
        DiscoveredEndpoint("10.0.0.9:1", 7, "eu"),
        DiscoveredEndpoint("10.0.0.2:2", 3, "us"),
        DiscoveredEndpoint("10.0.0.9:3", 4, "us"),
    ]


def test_endpoint_slices_ready_endpoints_and_named_ports() -> None:
    slices = {
        "a": {
            "ports": [{"name": "http", "port": 80}, {"name": "metrics", "port": 9}],
            "endpoints": [
                {"addresses": ["10.0.0.1"], "conditions": {"ready": True}},
                {"addresses": ["10.0.0.2"], "conditions": {"ready": False}},
                {"addresses": ["fd00::3"]},
            ],
        },
        "b": {"ports": [{"name": "other", "port": 81}], "endpoints": [{"addresses": ["10.0.0.4"]}]},
    }
    assert endpoints_from_slices(slices, "http") == [
        DiscoveredEndpoint("10.0.0.1:80"),
        DiscoveredEndpoint("[fd00::3]:80"),
    ]
    assert endpoints_from_slices({"b": slices["b"]}, None) == [DiscoveredEndpoint("10.0.0.4:81")]


def test_endpoint_files_are_validated_with_the_path_of_the_bad_field() -> None:
    pools = parse_pools({"web": ["10.0.0.1:80", {"address": "10.0.0.2:80", "weight": 5}]})
    assert pools == {
        "web": [DiscoveredEndpoint("10.0.0.1:80"), DiscoveredEndpoint("10.0.0.2:80", 5)]
    }
    with pytest.raises(BadEndpoints, match=r"web\.1\.weight"):
        parse_pools({"web": ["10.0.0.1:80", {"address": "10.0.0.2:80", "weight": 5000}]})
    with pytest.raises(BadEndpoints, match="mapping"):
        parse_pools(["10.0.0.1:80"])
