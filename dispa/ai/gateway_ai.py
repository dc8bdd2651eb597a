"""Online learning wired into a running gateway: sample, learn, steer, forecast, alert.

Once per ``ai.sample_interval``, on an event-loop timer (never on the request path):

1. read the data plane's counters and turn the last interval into features (``sampler``,
   ``signals``), and hand them to the learner thread (bounded queue, drop-oldest);
2. take the learner's latest verdict, if new: fold its scores into the steering state
   (``steering``), set each endpoint's ``weight_factor`` and reweigh the balancers of an
   upstream only when one of its factors changed by at least one step; log every decision
   with its reason;
3. keep the forecasts for metrics and the admin API, raise or clear capacity alerts, and
   hand route-keyed rate limits their expected demand (``forecast_uses``).

The settings are read from the live snapshot at every tick, so a reload that changes the
``ai`` section takes effect at the next one (with fresh models).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque

from dispa.ai.forecast_uses import capacity_alerts, demand_hints
from dispa.ai.gateway_models import GatewayModels, Verdict
from dispa.ai.learner import Learner
from dispa.ai.sampler import read_gateway
from dispa.ai.signals import Reading, build_sample
from dispa.ai.steering import Steerer
from dispa.config.ai import Ai
from dispa.proxy.balancer.weight_factor import factor_steps

log = logging.getLogger("dispa.ai")

RECENT_DECISIONS = 100
RECENT_ALERTS = 50


class GatewayAI:
    def __init__(self, gateway, build_models=GatewayModels) -> None:
        self.gateway = gateway
        # Builds the models from the settings; tests hand in failing or slow ones.
        self._build_models = build_models
        self.settings: Ai | None = None
        self.learner: Learner | None = None
        self.steerer: Steerer | None = None
        self._previous: Reading | None = None
        self._applied: Verdict | None = None
        self.forecasts: dict[str, dict[str, list[float]]] = {}
        self.recent: dict[str, dict[str, float]] = {}
        self.alerts: dict[str, dict] = {}
        self.alert_log: deque[dict] = deque(maxlen=RECENT_ALERTS)
        self.decisions: deque[dict] = deque(maxlen=RECENT_DECISIONS)
        self.decisions_total = 0
        self.reweighs_total = 0
        self.ticks_failed = 0
        self._timer: asyncio.TimerHandle | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self._schedule(0.0)

    def _schedule(self, delay: float) -> None:
        self._timer = asyncio.get_running_loop().call_later(delay, self._tick)

    def _tick(self) -> None:
        try:
            self.step()
        except Exception:  # the sampler must keep running, whatever one tick did
            self.ticks_failed += 1
            log.exception("AI sampling tick failed; the next one runs as usual")
        settings = self.settings
        self._schedule(settings.sample_interval if settings is not None else 1.0)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.learner is not None:
            self.learner.stop()

    # ------------------------------------------------------------------ one tick

    def step(self, now: float | None = None) -> None:
        snapshot = self.gateway.snapshot
        if snapshot is None:
            return
        settings = snapshot.config.ai
        if settings != self.settings:
            self._configure(settings)
        if not settings.enabled:
            return
        reading = read_gateway(self.gateway, now)
        sample = build_sample(self._previous, reading)
        self._previous = reading
        learner = self.learner
        if sample is not None:
            learner.submit(sample)
        learner.ensure_running()
        verdict = learner.latest
        if verdict is not None and verdict is not self._applied:
            self._applied = verdict
            self._apply(verdict, snapshot.config)

    def _configure(self, settings: Ai) -> None:
        first = self.settings is None
        self.settings = settings
        self.steerer = Steerer(settings.steering)
        self._previous = None
        self._applied = None
        self._set_factors({})  # fresh steering starts from full weights
        if not settings.enabled:
            if self.learner is not None:
                self.learner.stop()
                self.learner = None
            self.forecasts, self.alerts = {}, {}
            return
        build = self._build_models
        learner = self.learner
        if learner is not None and learner.queue_size == settings.queue_size:
            learner.replace_model(lambda: build(settings))
        else:
            if learner is not None:
                learner.stop()
            self.learner = Learner(lambda: build(settings), settings.queue_size)
        if not first:
            log.info("AI settings changed: models start afresh")

    def _apply(self, verdict: Verdict, config) -> None:
        for decision in self.steerer.update(verdict.endpoints, verdict.t):
            self.decisions_total += 1
            self.decisions.append(decision.document())
            # Lowering a weight is a warning; recovering and restoring it are info.
            log.log(
                logging.WARNING if decision.action.startswith("lowered") else logging.INFO,
                "AI steering: endpoint %s of upstream %s %s, weight factor %.2f: %s",
                decision.endpoint,
                decision.upstream,
                decision.action,
                decision.factor,
                decision.reason,
            )
        self._set_factors(self.steerer.factors())
        self.forecasts = verdict.forecasts
        self.recent = verdict.recent
        self._update_alerts(config)
        quota = self.gateway.quota
        if hasattr(quota, "demand_hints"):
            quota.demand_hints = demand_hints(
                config, verdict.recent.get("routes", {}), verdict.forecasts.get("routes", {})
            )

    def _set_factors(self, factors: dict[tuple[str, str], float]) -> None:
        """Set every endpoint's factor; reweigh an upstream's balancers only when one of its
        factors moved by a whole step (see weight_factor.py)."""
        for runtime in self.gateway.upstreams.by_name.values():
            changed = False
            for endpoint in runtime.endpoints:
                factor = factors.get((runtime.name, endpoint.address), 1.0)
                if factor_steps(factor) != factor_steps(endpoint.weight_factor):
                    changed = True
                endpoint.weight_factor = factor
            if changed:
                self.reweighs_total += 1
                if runtime.balancer is not None:
                    runtime.balancer.reweigh()
                for _members, balancer in runtime.regional.values():
                    balancer.reweigh()

    def _update_alerts(self, config) -> None:
        step = self.settings.forecast_step
        alerts = capacity_alerts(config, self.forecasts.get("upstreams", {}), step)
        now = time.time()
        for name, alert in alerts.items():
            if name not in self.alerts:
                log.warning(
                    "AI capacity alert: upstream %s is forecast at %.1f requests/s within %.0f s,"
                    " above its declared capacity_rps %.1f",
                    name,
                    alert["forecast_rps"],
                    alert["in_seconds"],
                    alert["capacity_rps"],
                )
                self.alert_log.append({"time": now, "state": "raised", **alert})
        for name in self.alerts.keys() - alerts.keys():
            log.info("AI capacity alert cleared: upstream %s forecast is within capacity", name)
            self.alert_log.append({"time": now, "state": "cleared", "upstream": name})
        self.alerts = alerts

    # ------------------------------------------------------------------ reporting

    def horizons(self) -> list[float]:
        """Seconds ahead of each forecast step."""
        settings = self.settings
        if settings is None:
            return []
        return [settings.forecast_step * h for h in range(1, settings.forecast_horizon + 1)]

    def document(self) -> dict:
        """GET /api/v1/ai: per endpoint score, state, weight factor; forecasts; alerts;
        recent decisions; learner health."""
        settings = self.settings
        if settings is None or not settings.enabled:
            return {"enabled": False}
        steering = self.steerer.document()
        horizons = self.horizons()
        return {
            "enabled": True,
            "steering_enabled": settings.steering.enabled,
            "sample_interval": settings.sample_interval,
            "endpoints": [
                {"upstream": upstream, "address": address, **state}
                for (upstream, address), state in sorted(steering.items())
            ],
            "forecasts": {
                kind: {
                    name: {
                        "recent_rps": round(self.recent.get(kind, {}).get(name, 0.0), 3),
                        "forecast_rps": [
                            {"in_seconds": h, "rps": round(v, 3)}
                            for h, v in zip(horizons, values, strict=False)
                        ],
                    }
                    for name, values in sorted(per_kind.items())
                }
                for kind, per_kind in self.forecasts.items()
            },
            "alerts": list(self.alerts.values()),
            "alert_history": list(self.alert_log),
            "decisions": list(self.decisions),
            "decisions_total": self.decisions_total,
            "reweighs_total": self.reweighs_total,
            "learner": self.learner.statistics() if self.learner is not None else None,
        }


def start_gateway_ai(gateway) -> GatewayAI:
    """Start sampling ``gateway`` (on the running loop); the caller stops it at shutdown."""
    gateway_ai = GatewayAI(gateway)
    gateway_ai.start()
    return gateway_ai


def admin_extras(gateway_ai: GatewayAI) -> tuple[list, list]:
    """(routes, Prometheus collectors) the admin API serves for the AI module."""
    from dispa.ai.admin_api import ai_routes
    from dispa.ai.metrics import AiCollector

    return ai_routes(gateway_ai), [AiCollector(gateway_ai)]
