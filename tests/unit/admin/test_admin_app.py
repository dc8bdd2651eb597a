from __future__ import annotations

import logging

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from dispa.admin.app import start_admin
from dispa.admin.view import AdminView
from dispa.observe.stats import DataPlaneStats

SECRET = "secret-internal-detail"


class FakeView:
    """A gateway as the admin sees it, with state the tests set directly."""

    def __init__(self) -> None:
        self.ready = True
        self.failing: set[str] = set()  # names of methods that raise
        first, second = DataPlaneStats(), DataPlaneStats()
        first.record_request("api", "backend", 200, 0.003)
        second.record_request("api", "backend", 200, 0.003)
        second.record_request("api", "backend", 200, 0.2)
        self.snapshots = [first.snapshot(), second.snapshot()]

    def _maybe_fail(self, name: str) -> None:
        if name in self.failing:
            raise RuntimeError(SECRET)

    def is_ready(self) -> bool:
        self._maybe_fail("is_ready")
        return self.ready

    def config_document(self) -> dict:
        self._maybe_fail("config_document")
        return {
            "revision": 3,
            "applied_at": 1714560000.5,
            "source": "file:/etc/dispa/gateway.yaml",
            "config": {"listeners": [{"name": "web", "address": "0.0.0.0:8080"}]},
        }

    def upstreams_document(self) -> dict:
        self._maybe_fail("upstreams_document")
        endpoint = {
            "address": "10.0.0.1:80",
            "weight": 1,
            "healthy": True,
            "active_health": "unchecked",
            "ejected": False,
            "active_requests": 0,
            "idle_connections": 4,
        }
        return {"upstreams": [{"name": "backend", "lb": "round_robin", "endpoints": [endpoint]}]}

    def stats_snapshots(self) -> list[dict]:
        self._maybe_fail("stats_snapshots")
        return self.snapshots


def as_admin_view(view: FakeView) -> AdminView:
    return view  # type-checks that the fake matches the protocol


@pytest.fixture
def view() -> FakeView:
    return FakeView()


@pytest.fixture
async def admin(view):
    server = await start_admin(as_admin_view(view), "127.0.0.1", 0)
    base_url = f"http://127.0.0.1:{server.port}"
    async with aiohttp.ClientSession(base_url) as session:
        yield session
    await server.close()


async def test_healthz_answers_ok(admin) -> None:
    async with admin.get("/healthz") as response:
        assert response.status == 200
        assert await response.text() == "ok"


async def test_readyz_follows_the_gateway(admin, view) -> None:
    async with admin.get("/readyz") as response:
        assert response.status == 200
        assert await response.text() == "ready"

    view.ready = False
    async with admin.get("/readyz") as response:
        assert response.status == 503
        assert await response.text() == "not ready"


async def test_config_is_served_as_json(admin, view) -> None:
    async with admin.get("/api/v1/config") as response:
        assert response.status == 200
        assert response.content_type == "application/json"
        document = await response.json()
    assert document == view.config_document()
    assert document["revision"] == 3


async def test_upstreams_are_served_as_json(admin) -> None:
    async with admin.get("/api/v1/upstreams") as response:
        assert response.status == 200
        document = await response.json()
    [upstream] = document["upstreams"]
    assert upstream["name"] == "backend"
    assert upstream["endpoints"][0]["idle_connections"] == 4


async def test_metrics_sum_all_workers(admin) -> None:
    async with admin.get("/metrics") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = await response.text()

    families = {family.name: family for family in text_string_to_metric_families(text)}
    [requests] = families["dispa_requests"].samples
    assert requests.labels == {"route": "api", "upstream": "backend", "status_class": "2xx"}
    assert requests.value == 3  # one from the first worker, two from the second
    buckets = {
        sample.labels["le"]: sample.value
        for sample in families["dispa_request_duration_seconds"].samples
        if sample.name.endswith("_bucket")
    }
    assert buckets["0.005"] == 2
    assert buckets["0.25"] == 3
    assert buckets["+Inf"] == 3
    assert families["dispa_config_revision"].samples[0].value == 3


async def test_unknown_path_is_a_json_404(admin) -> None:
    async with admin.get("/nope") as response:
        assert response.status == 404
        assert "error" in await response.json()


async def test_wrong_method_is_a_json_405(admin) -> None:
    async with admin.post("/healthz") as response:
        assert response.status == 405
        assert "GET" in response.headers["Allow"]
        assert "error" in await response.json()


@pytest.mark.parametrize(
    ("path", "failing"),
    [
        ("/readyz", "is_ready"),
        ("/api/v1/config", "config_document"),
        ("/api/v1/upstreams", "upstreams_document"),
        ("/metrics", "stats_snapshots"),
    ],
)
async def test_a_failing_view_gives_500_without_internals(
    admin, view, caplog, path, failing
) -> None:
    view.failing.add(failing)
    with caplog.at_level(logging.ERROR, logger="dispa.admin.app"):
        async with admin.get(path) as response:
            assert response.status == 500
            body = await response.text()

    assert response.content_type == "application/json"
    assert body == '{"error": "internal error"}'
    assert SECRET not in body and "Traceback" not in body
    # The operator still gets the whole story in the log.
    assert any(record.exc_info and SECRET in str(record.exc_info[1]) for record in caplog.records)


async def test_close_releases_the_port(view) -> None:
    server = await start_admin(view, "127.0.0.1", 0)
    port = server.port
    assert port > 0
    await server.close()

    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientConnectionError):
            await session.get(f"http://127.0.0.1:{port}/healthz")
