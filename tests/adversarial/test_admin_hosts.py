"""DNS rebinding and cross-origin reads against the admin APIs of a single gateway and of
an edge: only the admin's own addresses, loopback names on loopback, and the names an
operator configured are answered; a page of another origin is refused."""

from __future__ import annotations

import json

import pytest
from admin_client import admin_request
from conftest import HOST, make_config
from edge.conftest import EdgeProcess

PAGES = ("/api/v1/config", "/api/v1/upstreams", "/metrics", "/healthz", "/api/v1/ai")


def _gateway_config(**admin) -> dict:
    config = make_config(
        [],
        [{"name": "all", "match": {"path_prefix": "/"}, "direct_response": {"status": 200}}],
    )
    config["admin"].update(admin)
    return config


def test_a_single_gateway_answers_only_its_own_host(processes, tmp_path) -> None:
    gateway = processes.gateway(_gateway_config(), tmp_path)
    address = f"{HOST}:{gateway.admin_port}"
    for path in PAGES:
        for host in (f"rebind.example:{gateway.admin_port}", "rebind.example", "0.0.0.0"):
            answer = admin_request(address, "GET", path, headers={"Host": host})
            assert answer.status == 421, (path, host, answer)
            assert host.split(":")[0] in answer.body["error"], answer.body
        for host in (address, f"localhost:{gateway.admin_port}"):
            assert admin_request(address, "GET", path, headers={"Host": host}).status == 200
        cross_origin = admin_request(
            address, "GET", path, headers={"Origin": "http://evil.example"}
        )
        assert cross_origin.status == 403, (path, cross_origin)
        own = admin_request(address, "GET", path, headers={"Origin": f"http://{address}"})
        assert own.status == 200, (path, own)


def test_configured_names_and_origins_are_answered(processes, tmp_path) -> None:
    gateway = processes.gateway(
        _gateway_config(
            allowed_hosts=["admin.example.com"],
            allowed_origins=["https://console.example.com"],
        ),
        tmp_path,
    )
    address = f"{HOST}:{gateway.admin_port}"
    for host in (
        "admin.example.com",
        f"admin.example.com:{gateway.admin_port}",
        "ADMIN.example.com",
    ):
        assert admin_request(address, "GET", "/healthz", headers={"Host": host}).status == 200
    console = admin_request(
        address, "GET", "/api/v1/config", headers={"Origin": "https://console.example.com"}
    )
    assert console.status == 200, console
    behind_proxy = admin_request(
        address,
        "GET",
        "/api/v1/config",
        headers={"Host": "admin.example.com", "Origin": "https://admin.example.com"},
    )
    assert behind_proxy.status == 200, behind_proxy
    other = admin_request(address, "GET", "/healthz", headers={"Host": "other.example.com"})
    assert other.status == 421, other


@pytest.fixture
def edge(tmp_path):
    # Its cores need not exist: the admin API serves while it looks for them.
    process = EdgeProcess("edge-x", "eu", tmp_path / "edge", [f"{HOST}:1"])
    process.config["admin"]["allowed_hosts"] = ["edge.example.com"]
    process.config_path.write_text(json.dumps(process.config))
    try:
        process.start()
        yield process
    finally:
        process.stop()


def test_an_edge_answers_only_its_own_and_configured_hosts(edge) -> None:
    port = edge.admin_address.rpartition(":")[2]
    for path in ("/api/v1/node", "/api/v1/cache", "/api/v1/ratelimits", "/api/v1/certificates"):
        rebound = admin_request(
            edge.admin_address, "GET", path, headers={"Host": f"evil.example:{port}"}
        )
        assert rebound.status == 421, (path, rebound)
        named = admin_request(
            edge.admin_address, "GET", path, headers={"Host": f"edge.example.com:{port}"}
        )
        assert named.status in (200, 404), (path, named)  # 404: the cache page, with no cache
