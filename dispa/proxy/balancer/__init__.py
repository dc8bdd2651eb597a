"""Load-balancing policies: choose one endpoint of a pool for one request."""

from dispa.proxy.balancer.base import Balancer
from dispa.proxy.balancer.factory import HASHING_POLICIES, POLICIES, build_balancer

__all__ = ["HASHING_POLICIES", "POLICIES", "Balancer", "build_balancer"]
