"""GatewayAI on a real in-process gateway with real upstreams on loopback: the learner
never blocks traffic (a model that raises, a model too slow for the samples), steering
reweighs balancers only when a factor changes, and the admin API shows it all."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter

import aiohttp
import pytest
from aiohttp import web

from dispa.admin.app import start_admin
from dispa.admin.gateway_view import LocalGatewayView
from dispa.ai.admin_api import workers_ai_routes
from dispa.ai.gateway_ai import GatewayAI, admin_extras
from dispa.ai.gateway_models import GatewayModels, Verdict
from dispa.cluster.quota_client import LeasedQuota
from dispa.config.load import build_gateway
from dispa.proxy.server import Gateway


class Upstreams:
    """Three aiohttp upstreams in this loop, counting the requests each answers."""

    def __init__(self) -> None:
        self.served: Counter = Counter()
        self.runners: list[web.AppRunner] = []
        self.ports: list[int] = []

    async def start(self, count: int = 3) -> None:
        for index in range(count):
            name = "abc"[index]

            async def hello(request, name=name):
                self.served[name] += 1
                return web.Response(text=f"hello from {name}\n")

            app = web.Application()
            app.router.add_get("/{tail:.*}", hello)
            runner = web.AppRunner(app)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            self.runners.append(runner)
            self.ports.append(site._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        for runner in self.runners:
            await runner.cleanup()


def gateway_config(ports: list[int], upstream=None, top=None, **ai) -> object:
    return build_gateway(
        {
            "listeners": [{"name": "public", "address": "127.0.0.1:0"}],
            "upstreams": [
                {
                    "name": "app",
                    "lb": "round_robin",
                    "endpoints": [{"address": f"127.0.0.1:{port}"} for port in ports],
                    **(upstream or {}),
                }
            ],
            "routes": [{"name": "all", "match": {"path_prefix": "/"}, "upstream": "app"}],
            **(top or {}),
            "access_log": {"enabled": False},
            "ai": {
                "sample_interval": "50ms",
                "forecast_step": "50ms",
                "steering": {"recovery_per_second": 0.5},
                **ai,
            },
        }
    )


@pytest.fixture
async def upstreams():
    servers = Upstreams()
    await servers.start()
    yield servers
    await servers.stop()


@pytest.fixture
async def gateway(upstreams):
    gateway = Gateway()
    await gateway.apply(gateway_config(upstreams.ports))
    yield gateway
    await gateway.drain(1.0)


async def traffic(gateway: Gateway, count: int, pause: float = 0.0) -> list[float]:
    """``count`` requests through the gateway, each must succeed; their latencies."""
    url = f"http://127.0.0.1:{gateway.listener_port('public')}/"
    latencies = []
    async with aiohttp.ClientSession() as session:
        for _ in range(count):
            started = time.monotonic()
            async with session.get(url) as response:
                assert response.status == 200
                await response.read()
            latencies.append(time.monotonic() - started)
            if pause:
                await asyncio.sleep(pause)
    return latencies


async def test_a_model_that_raises_is_restarted_and_traffic_never_notices(gateway):
    class Broken:
        def __init__(self, settings) -> None:
            pass

        def learn(self, sample):
            raise ValueError("broken model")

    ai = GatewayAI(gateway, build_models=Broken)
    ai.start()
    try:
        await traffic(gateway, 60, pause=0.01)
        stats = ai.learner.statistics()
        assert stats["model_restarts"] >= 5 and stats["running"]
        assert stats["last_error"] == "ValueError: broken model"
        assert ai.document()["learner"]["model_restarts"] == stats["model_restarts"]
    finally:
        ai.stop()


async def test_a_slow_model_overflows_the_queue_while_requests_keep_flowing(gateway):
    class Slow:
        def __init__(self, settings) -> None:
            pass

        def learn(self, sample):
            time.sleep(0.3)  # far slower than the 50 ms samples
            return None

    await gateway.apply(gateway_config([e.port for e in _endpoints(gateway)], queue_size=2))
    ai = GatewayAI(gateway, build_models=Slow)
    ai.start()
    try:
        latencies = await traffic(gateway, 150, pause=0.005)
        stats = ai.learner.statistics()
        assert stats["samples_dropped"] > 5 and stats["queued"] <= 2
        latencies.sort()
        # The event loop never waited for learning: requests stay fast.
        assert latencies[len(latencies) // 2] < 0.02, latencies[len(latencies) // 2]
    finally:
        ai.stop()


def _endpoints(gateway: Gateway):
    return gateway.upstreams.by_name["app"].endpoints


class Scripted:
    """A model whose verdict gives the third endpoint the score the test sets, and the
    forecast the test sets."""

    score = 0.0
    forecast = [5.0, 6.0]

    def __init__(self, settings) -> None:
        pass

    def learn(self, sample):
        endpoints = {}
        for index, key in enumerate(sorted(sample.endpoints)):
            value = Scripted.score if index == 2 else 0.0
            endpoints[key] = {"score": value, "peer_score": value, "latency_score": value}
        forecasts = {"upstreams": {"app": Scripted.forecast}, "routes": {"all": [9.0]}}
        return Verdict(sample.t, endpoints, forecasts, {"routes": {"all": 7.0}})


async def test_steering_lowers_a_flagged_endpoint_and_reweighs_only_on_change(
    gateway, upstreams, caplog
):
    caplog.set_level(logging.INFO, logger="dispa.ai")
    Scripted.score = 0.0
    ai = GatewayAI(gateway, build_models=Scripted)
    ai.start()
    try:
        await asyncio.sleep(0.3)
        assert ai.reweighs_total == 0
        third = sorted(_endpoints(gateway), key=lambda e: e.address)[2]
        name = "abc"[upstreams.ports.index(third.port)]
        Scripted.score = 1.0
        await _wait(lambda: third.weight_factor == 0.2)
        assert ai.reweighs_total == 1  # once, though many verdicts came since
        upstreams.served.clear()
        await traffic(gateway, 300)
        assert upstreams.served[name] < 300 * 0.16, upstreams.served
        entry = next(e for e in ai.document()["endpoints"] if e["address"] == third.address)
        assert entry["state"] == "anomalous" and entry["weight_factor"] == 0.2

        Scripted.score = 0.0
        await _wait(lambda: third.weight_factor == 1.0)
        # Recovery climbs in steps of 1/20 at most: each step is one reweigh.
        assert 2 <= ai.reweighs_total <= 18
        actions = [d["action"] for d in ai.document()["decisions"]]
        assert actions == ["lowered", "recovering", "restored"]
        # Lowering an endpoint is a warning; its recovery is news, said at info.
        levels = {
            action: record.levelname
            for record in caplog.records
            for action in actions
            if record.getMessage().startswith("AI steering:")
            and f" {action}, " in record.getMessage()
        }
        assert levels == {"lowered": "WARNING", "recovering": "INFO", "restored": "INFO"}
    finally:
        ai.stop()


async def test_a_reload_that_changes_ai_settings_starts_the_models_afresh(gateway, caplog):
    caplog.set_level(logging.INFO, logger="dispa.ai")
    ai = GatewayAI(gateway, build_models=GatewayModels)
    ai.start()
    try:
        await _wait(lambda: ai.learner is not None and ai.learner.processed > 2)
        first = ai.learner
        ports = [e.port for e in _endpoints(gateway)]
        await gateway.apply(gateway_config(ports, forecast_horizon=3))
        await _wait(lambda: ai.settings.forecast_horizon == 3)
        assert ai.learner is first  # same thread and queue, fresh models
        await gateway.apply(gateway_config(ports, queue_size=7))
        await _wait(lambda: ai.learner.queue_size == 7)
        assert ai.learner is not first and not first.statistics()["running"]
        assert "AI settings changed: models start afresh" in caplog.text
    finally:
        ai.stop()


async def test_disabling_ai_by_reload_restores_weights_and_stops_learning(gateway):
    Scripted.score = 1.0
    ai = GatewayAI(gateway, build_models=Scripted)
    ai.start()
    try:
        await _wait(lambda: min(e.weight_factor for e in _endpoints(gateway)) == 0.2)
        ports = [e.port for e in _endpoints(gateway)]
        await gateway.apply(gateway_config(ports, enabled=False))
        await _wait(lambda: all(e.weight_factor == 1.0 for e in _endpoints(gateway)))
        assert ai.document() == {"enabled": False}
        assert ai.learner is None
    finally:
        ai.stop()


async def test_admin_api_serves_the_ai_document_and_metrics(gateway):
    ai = GatewayAI(gateway, build_models=GatewayModels)
    ai.start()
    routes, collectors = admin_extras(ai)
    admin = await start_admin(LocalGatewayView(gateway), "127.0.0.1", 0, routes, collectors)
    try:
        await traffic(gateway, 40, pause=0.01)
        await _wait(lambda: ai.forecasts.get("upstreams"), timeout=10.0)
        base = f"http://127.0.0.1:{admin.port}"
        async with aiohttp.ClientSession() as session:
            async with session.get(base + "/api/v1/ai") as response:
                document = await response.json()
            async with session.get(base + "/metrics") as response:
                metrics = await response.text()
        assert document["enabled"] and len(document["endpoints"]) == 3
        assert document["learner"]["samples_learned"] > 0
        assert "app" in document["forecasts"]["upstreams"]
        assert 'dispa_ai_forecast_requests_per_second{horizon="0.05s",upstream="app"}' in metrics
        assert "dispa_ai_weight_factor{" in metrics
        assert "dispa_ai_samples_dropped_total 0.0" in metrics
    finally:
        await admin.close()
        ai.stop()


async def _wait(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_capacity_alerts_are_raised_and_cleared_and_route_limits_get_demand_hints(
    gateway, caplog
):
    caplog.set_level(logging.INFO, logger="dispa.ai")
    Scripted.score, Scripted.forecast = 0.0, [5.0, 6.0]
    ports = [e.port for e in _endpoints(gateway)]
    limits = {"rate_limits": [{"name": "per-route", "key": "route", "limit": 100}]}
    await gateway.apply(gateway_config(ports, upstream={"capacity_rps": 5.5}, top=limits))
    gateway.quota = LeasedQuota(None, "n1", lambda: 1)  # only its demand hints are read
    ai = GatewayAI(gateway, build_models=Scripted)
    ai.start()
    try:
        await _wait(lambda: ai.alerts)
        assert ai.document()["alerts"] == [
            {"upstream": "app", "capacity_rps": 5.5, "forecast_rps": 6.0, "in_seconds": 0.1}
        ]
        assert "AI capacity alert: upstream app is forecast at 6.0 requests/s" in caplog.text
        assert gateway.quota.demand_hints == {("per-route", "all"): 9.0}
        Scripted.forecast = [5.0, 5.0]
        await _wait(lambda: not ai.alerts)
        assert [a["state"] for a in ai.document()["alert_history"]] == ["raised", "cleared"]
        [cleared] = [r for r in caplog.records if "AI capacity alert cleared" in r.getMessage()]
        assert cleared.levelname == "INFO"  # back to normal: not a warning
        [raised] = [r for r in caplog.records if "AI capacity alert: " in r.getMessage()]
        assert raised.levelname == "WARNING"
    finally:
        ai.stop()


async def test_a_tick_that_fails_is_logged_and_sampling_goes_on(gateway, caplog):
    class Malformed:
        def __init__(self, settings) -> None:
            pass

        def learn(self, sample):
            return Verdict(sample.t, {("app", "x"): {}}, {}, {})  # no score: steering fails

    ai = GatewayAI(gateway, build_models=Malformed)
    ai.start()
    try:
        await _wait(lambda: ai.ticks_failed >= 3)
        assert "AI sampling tick failed" in caplog.text
    finally:
        ai.stop()


async def test_the_supervisor_route_lists_what_each_worker_published():
    published = [{"ai": {"enabled": True, "endpoints": []}}, {"stats": {}}, {"ai": None}]
    app = web.Application()
    app.router.add_routes(workers_ai_routes(lambda: published))
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    try:
        url = f"http://127.0.0.1:{port}/api/v1/ai"
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            document = await response.json()
        assert document == {"enabled": True, "workers": [{"enabled": True, "endpoints": []}]}
    finally:
        await runner.cleanup()
