"""Geo routing on an edge, with MaxMind's test database: each client goes to the nearest
region with a healthy endpoint, and falls back to the next nearest."""

from __future__ import annotations

from cluster.conftest import REPO, Cluster
from support import wait_until

CITY_DB = str(REPO / "tests" / "data" / "geoip" / "GeoIP2-City-Test.mmdb")
LONDON, MILTON, CHANGCHUN = "81.2.69.142", "216.160.83.56", "175.16.199.0"


def _geo_config(upstreams: dict) -> dict:
    return {
        "regions": [
            {"name": "eu", "latitude": 51.5, "longitude": -0.1},
            {"name": "us", "latitude": 38.9, "longitude": -77.0},
            {"name": "ap", "latitude": 1.35, "longitude": 103.8},
        ],
        "upstreams": [
            {
                "name": "app",
                "endpoints": [
                    {"address": upstream.address, "region": region}
                    for region, upstream in upstreams.items()
                ],
                "health": {"path": "/healthz", "interval": "200ms", "unhealthy_threshold": 1},
            }
        ],
        "routes": [
            {"name": "geo", "match": {"path_prefix": "/"}, "upstream": "app", "geo": "nearest"}
        ],
        "access_log": {"enabled": False},
    }


def _served_by(edge, client_ip: str) -> tuple[str, str]:
    reply = edge.get("/", headers={"X-Forwarded-For": client_ip})
    assert reply.status == 200, reply
    return reply.headers["x-dispa-region"], reply.headers["x-upstream"]


def test_clients_go_to_the_nearest_healthy_region(
    edge_cluster: Cluster, make_edge, processes
) -> None:
    upstreams = {region: processes.demo_upstream(f"{region}-1") for region in ("eu", "us", "ap")}
    reply = edge_cluster.leader().put_config(_geo_config(upstreams))
    assert reply.status == 200, reply
    edge = make_edge(edge_cluster, geo={"database": CITY_DB, "trusted_proxies": ["127.0.0.0/8"]})
    edge.wait_revision(reply.body["revision"])
    assert _served_by(edge, LONDON) == ("eu", "eu-1")
    assert _served_by(edge, MILTON) == ("us", "us-1")
    assert _served_by(edge, CHANGCHUN) == ("ap", "ap-1")

    # London's region fails its health checks: London goes to the next nearest (us).
    upstreams["eu"].set_health(False)
    wait_until(lambda: _served_by(edge, LONDON)[0] == "us", timeout=10, what="fallback to us")
    assert _served_by(edge, MILTON) == ("us", "us-1")
    upstreams["eu"].set_health(True)
    wait_until(lambda: _served_by(edge, LONDON)[0] == "eu", timeout=10, what="back to eu")


def test_an_untrusted_peer_cannot_choose_its_region(
    edge_cluster: Cluster, make_edge, processes
) -> None:
    upstreams = {region: processes.demo_upstream(f"{region}-2") for region in ("eu", "us", "ap")}
    reply = edge_cluster.leader().put_config(_geo_config(upstreams))
    assert reply.status == 200, reply
    # No trusted proxies: X-Forwarded-For is ignored and the peer (127.0.0.1, which the
    # database does not know) gets the configured order, eu first.
    edge = make_edge(edge_cluster, geo={"database": CITY_DB})
    edge.wait_revision(reply.body["revision"])
    assert _served_by(edge, CHANGCHUN) == ("eu", "eu-2")


def test_a_missing_geo_database_stops_the_edge_with_a_plain_error(tmp_path) -> None:
    import yaml
    from cluster.conftest import run_cli

    config = tmp_path / "edge.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "edge": {"name": "e", "data_dir": str(tmp_path / "data")},
                "cores": ["127.0.0.1:1"],
                "listeners": [{"name": "public", "address": "127.0.0.1:0"}],
                "admin": {"address": "127.0.0.1:0"},
                "geo": {"database": str(tmp_path / "missing.mmdb")},
            }
        )
    )
    result = run_cli("edge", "-c", str(config))
    assert result.returncode == 2
    assert "geo.database" in result.stderr and "missing.mmdb" in result.stderr
    assert "Traceback" not in result.stderr
