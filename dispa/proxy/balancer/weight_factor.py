"""An endpoint's effective weight: its configured weight times its AI weight factor.

AI steering lowers ``Endpoint.weight_factor`` of an endpoint that looks anomalous (never
to 0) and raises it back gradually. Balancers read factors only when built or reweighed
(``Balancer.reweigh``), so a pick costs what it did.

Factors are quantized to steps of 1/``FACTOR_STEPS``: integer weights stay integers
(smooth weighted round robin needs them), and a factor creeping back from 0.2 to 1.0
changes the balancer at most 16 times instead of at every sample.
"""

from __future__ import annotations

from collections.abc import Sequence

from dispa.proxy.upstream.endpoint import Endpoint

FACTOR_STEPS = 20


def factor_steps(factor: float) -> int:
    """The factor in whole steps: 1..FACTOR_STEPS (a factor is never rounded down to 0)."""
    return min(FACTOR_STEPS, max(1, round(factor * FACTOR_STEPS)))


def quantized_factor(factor: float) -> float:
    return factor_steps(factor) / FACTOR_STEPS


def integer_weights(endpoints: Sequence[Endpoint]) -> list[int]:
    """weight x factor, in units of 1/FACTOR_STEPS: exact integers for weighted policies."""
    return [endpoint.weight * factor_steps(endpoint.weight_factor) for endpoint in endpoints]


def effective_weights(endpoints: Sequence[Endpoint]) -> list[float]:
    return [endpoint.weight * quantized_factor(endpoint.weight_factor) for endpoint in endpoints]


def damped_factors(endpoints: Sequence[Endpoint]) -> dict[Endpoint, float]:
    """Endpoints to pass over at random, each with the chance of keeping its turn.

    For policies that do not draw by weight (round robin, hashing): each factor relative
    to the highest one, so only relative changes count (every endpoint at 0.2 is the same
    as every endpoint at 1) and the highest is never passed over, which bounds any walk
    to the next endpoint it lands on. Empty when no endpoint is lowered.
    """
    factors = {endpoint: quantized_factor(endpoint.weight_factor) for endpoint in endpoints}
    highest = max(factors.values(), default=1.0)
    return {endpoint: f / highest for endpoint, f in factors.items() if f < highest}


def keeps_turn(factor: float | None, draw: float) -> bool:
    """Whether an endpoint with this relative factor (None: not damped) keeps a request
    whose uniform draw in [0, 1) is ``draw``."""
    return factor is None or draw < factor
