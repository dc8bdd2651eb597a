"""Least request by the power of two choices.

Scanning every endpoint for the least loaded one is O(n), and every gateway worker would
pile onto the same idle endpoint at once. Sampling two at random and keeping the less
loaded one is O(1) and, as Mitzenmacher showed, nearly as even (Envoy's default).
"""

from __future__ import annotations

from dispa.proxy.balancer.two_choices import TwoChoices
from dispa.proxy.upstream.endpoint import Endpoint


class LeastRequest(TwoChoices):
    """Pick two distinct endpoints uniformly; keep the one with fewer requests per weight.

    Load is compared as (active_requests + 1) / weight, so with equal weights it is plain
    active_requests, and a weight-2 endpoint settles at twice the in-flight requests of a
    weight-1 one (Envoy's active-request bias of 1.0). Sampling itself ignores weights; an
    AI weight factor is applied to the winner (see two_choices).
    """

    def cost(self, endpoint: Endpoint, other_weight: float) -> float:
        return (endpoint.active_requests + 1) * other_weight
