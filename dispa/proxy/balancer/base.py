"""The balancer interface: choose one endpoint of a pool for one request.

A balancer is built for a fixed list of *available* endpoints; the upstream rebuilds it
when the available set changes (health, ejection, config). ``pick`` is on the hot path
and never does I/O.
"""

from __future__ import annotations

from collections.abc import Sequence

from dispa.proxy.upstream.endpoint import Endpoint


class Balancer:
    """Base class; subclasses override ``pick``."""

    def __init__(self, endpoints: Sequence[Endpoint]) -> None:
        self.endpoints = tuple(endpoints)

    def pick(self, hash_key: bytes | None = None) -> Endpoint | None:
        """Return an endpoint, or None when there is none to choose.

        ``hash_key`` is given only to hashing policies (ring_hash, maglev); others ignore it.
        """
        raise NotImplementedError

    def reweigh(self) -> None:
        """Re-read the endpoints' weight factors (``weight_factor.py``) after AI steering
        changed one; called off the per-request path, and only on a change."""
        raise NotImplementedError
