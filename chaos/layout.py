"""What a drill runs: three regions with one core each, two edges, an upstream per region;
the node files of each and the shared gateway config the drill applies.

Every host has its own address, so every node uses the same well-known ports.
"""

from __future__ import annotations

REGIONS = ("eu", "us", "ap")
EDGE_REGIONS = ("eu", "us")
RAFT_PORT, LISTENER_PORT, CORE_ADMIN_PORT = 7001, 8080, 9911
EDGE_ADMIN_PORT, UPSTREAM_PORT = 9921, 9001
SECRET = "dispa-drill-secret"
COORDINATES = {"eu": (51.5, -0.1), "us": (38.9, -77.0), "ap": (1.35, 103.8)}

# The drill's global limit: requests per second on /limited, counted across every node.
RATE_LIMIT = 20
EDGE_FALLBACK_SHARE = 0.2
SESSION_COOKIE = "drill_session"
MARKER_PATH = "/drill/marker"


def host_specs() -> list[tuple[str, str, str]]:
    """(name, role, region) of every host, in the order their addresses are given."""
    specs = [(f"core-{region}", "core", region) for region in REGIONS]
    specs += [(f"edge-{region}", "edge", region) for region in EDGE_REGIONS]
    specs += [(f"up-{region}", "upstream", region) for region in REGIONS]
    return specs


def core_file(hosts: dict, name: str, data_dir: str, relay_host: str | None = None) -> dict:
    """The core's file; ``relay_host``: where the drill's relays listen, a name the core's
    admin API must answer (an edge behind a relay sends the relay's address as Host)."""
    me = hosts[name]
    peers = [f"{h.address}:{RAFT_PORT}" for h in hosts.values() if h.role == "core" and h != me]
    admin: dict = {"address": f"{me.address}:{CORE_ADMIN_PORT}"}
    if relay_host:
        admin["allowed_hosts"] = [relay_host]
    return {
        "node": {"id": name, "region": me.region, "data_dir": data_dir, "secret": SECRET},
        "raft": {"address": f"{me.address}:{RAFT_PORT}", "peers": peers},
        "listeners": [{"name": "public", "address": f"{me.address}:{LISTENER_PORT}"}],
        "admin": admin,
    }


def edge_file(hosts: dict, name: str, data_dir: str, cores: list[str] | None = None) -> dict:
    """The edge's file; ``cores`` replaces the cores' admin addresses (relays on its links)."""
    me = hosts[name]
    if cores is None:
        cores = [f"{h.address}:{CORE_ADMIN_PORT}" for h in hosts.values() if h.role == "core"]
    return {
        "edge": {"name": name, "region": me.region, "data_dir": data_dir},
        "cores": cores,
        "listeners": [{"name": "public", "address": f"{me.address}:{LISTENER_PORT}"}],
        "admin": {"address": f"{me.address}:{EDGE_ADMIN_PORT}"},
        "rate_limits": {"fallback_share": EDGE_FALLBACK_SHARE},
    }


def shared_config(endpoints: dict[str, str], marker: str) -> dict:
    """The gateway config every node serves. ``endpoints`` maps each region to the address
    its upstream is reached at (a relay's, when the drill puts one on that link);
    ``marker`` is what GET /drill/marker answers: the config writers change only that."""
    pool = [{"address": address, "region": region} for region, address in endpoints.items()]
    health = {"path": "/healthz", "interval": 1.0, "timeout": 0.5}
    # A link that silently drops packets (a partition) would hold a request until the 30 s
    # response timeout; a try that takes over a second is retried on another endpoint, up
    # to one try per region, as an operator would configure a pool spread over regions.
    retry = {"attempts": 3, "per_try_timeout": 1.0}
    return {
        "regions": [
            {"name": region, "latitude": lat, "longitude": lon}
            for region, (lat, lon) in COORDINATES.items()
        ],
        "upstreams": [
            {
                "name": "app",
                "lb": "round_robin",
                "endpoints": pool,
                "health": health,
                "retry": retry,
            },
            {
                "name": "sticky",
                "lb": "round_robin",
                "endpoints": pool,
                "health": health,
                "retry": retry,
                "session_affinity": {"cookie": SESSION_COOKIE, "ttl": 600.0},
            },
        ],
        "routes": [
            {
                "name": "marker",
                "match": {"host": "*", "path_exact": MARKER_PATH},
                "direct_response": {"status": 200, "body": marker},
            },
            {
                "name": "limited",
                "match": {"host": "*", "path_prefix": "/limited"},
                "direct_response": {"status": 200, "body": "admitted\n"},
            },
            {
                "name": "sticky",
                "match": {"host": "*", "path_prefix": "/sticky"},
                "upstream": "sticky",
            },
            {"name": "load", "match": {"host": "*", "path_prefix": "/"}, "upstream": "app"},
        ],
        "rate_limits": [
            {
                "name": "drill_limit",
                "key": "route",
                "limit": RATE_LIMIT,
                "window": 1.0,
                "routes": ["limited"],
            }
        ],
        "access_log": {"enabled": False},
    }


def fallback_share(role: str, cluster_size: int = len(REGIONS)) -> int:
    """What one node admits alone per window of the drill's limit while cut off, as
    docs/cluster.md documents it: limit / cluster size for a core, the configured share for
    an edge (at least 1 either way)."""
    if role == "edge":
        return max(1, int(RATE_LIMIT * EDGE_FALLBACK_SHARE))
    return max(1, RATE_LIMIT // max(1, cluster_size))


def host_specs_names(role: str) -> list[str]:
    return [name for name, host_role, _ in host_specs() if host_role == role]
