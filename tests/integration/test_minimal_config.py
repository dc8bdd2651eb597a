"""The minimal config of the issue, as written, and ``dispa validate``."""

from __future__ import annotations

import itertools
import subprocess
from pathlib import Path

import aiohttp
from conftest import (
    PYTHON,
    REPO,
    Processes,
    Upstream,
    async_wait_until,
    free_ports,
)

# The minimal config (shipped as deploy/examples/gateway.yaml), ports left open.
MINIMAL = """\
# The minimal gateway: one listener, one upstream pool with two endpoints, one route.
listeners:
  - {name: public, address: "127.0.0.1:LISTEN"}
upstreams:
  - name: app
    lb: round_robin
    endpoints: [{address: "127.0.0.1:FIRST", weight: 2}, {address: "127.0.0.1:SECOND"}]
    health: {path: /healthz, interval: 1s}
routes:
  - {match: {host: "*", path_prefix: /}, upstream: app}
admin: {address: "127.0.0.1:ADMIN"}
"""


def minimal_config(first: int, second: int) -> str:
    listen, admin = free_ports(2)
    return (
        MINIMAL.replace("LISTEN", str(listen))
        .replace("ADMIN", str(admin))
        .replace("FIRST", str(first))
        .replace("SECOND", str(second))
    )


async def test_minimal_config_round_robins_over_both_endpoints(
    processes: Processes, tmp_path: Path, upstream_a: Upstream, upstream_b: Upstream
) -> None:
    gateway = processes.gateway(minimal_config(upstream_a.port, upstream_b.port), tmp_path)
    async with aiohttp.ClientSession() as session:
        served = []
        for _ in range(20):
            async with session.get(gateway.url("/")) as response:
                assert response.status == 200
                served.append(response.headers["x-upstream"])
                assert (await response.text()) == f"hello from {served[-1]}\n"
    # round_robin ignores weights: strict alternation between the two endpoints.
    assert served.count("alpha") == served.count("beta") == 10
    assert all(first != second for first, second in itertools.pairwise(served))
    assert gateway.metric("dispa_requests_total", upstream="app", status_class="2xx") == 20
    endpoints = gateway.endpoints("app")
    assert {e["active_health"] for e in endpoints.values()} == {"healthy"}
    assert endpoints[upstream_a.address]["weight"] == 2

    # Health checks (interval 1s) reach the endpoints with no traffic from us: the demo
    # upstream counts every request it gets, our own /admin/stats calls included.
    polls = 0

    def probed() -> bool:
        nonlocal polls
        polls += 1
        return upstream_b.stats()["requests"] - served_by_beta - polls >= 1

    served_by_beta = upstream_b.stats()["requests"]
    await async_wait_until(probed, timeout=5.0, interval=0.2, what="a health probe")


async def test_minimal_config_with_weighted_round_robin(
    processes: Processes, tmp_path: Path, upstream_a: Upstream, upstream_b: Upstream
) -> None:
    config = minimal_config(upstream_a.port, upstream_b.port).replace(
        "lb: round_robin", "lb: weighted_round_robin"
    )
    gateway = processes.gateway(config, tmp_path)
    async with aiohttp.ClientSession() as session:
        served = []
        for _ in range(30):
            async with session.get(gateway.url("/")) as response:
                served.append(response.headers["x-upstream"])
    # weight 2 against 1, spread out (smooth): never three of the heavy one in a row.
    assert (served.count("alpha"), served.count("beta")) == (20, 10)
    assert "alpha,alpha,alpha" not in ",".join(served)


def run_validate(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PYTHON, "-m", "dispa", "validate", "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=REPO,
        check=False,
    )


def test_validate_accepts_the_shipped_example() -> None:
    result = run_validate(REPO / "deploy/examples/gateway.yaml")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_validate_reports_every_problem_with_its_path(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        MINIMAL.replace("upstream: app}", "upstream: ap}")
        .replace("LISTEN", "notaport")
        .replace("ADMIN", "9901")
        .replace("FIRST", "9001")
        .replace("SECOND", "9002")
        .replace("lb: round_robin", "lb: round_robin\n    retries: 3")
    )
    result = run_validate(path)
    assert result.returncode == 2
    output = result.stdout + result.stderr
    assert "ok" not in result.stdout
    assert "routes[0].upstream: unknown upstream 'ap'" in output
    assert "listeners[0].address:" in output and "notaport" in output
    assert "upstreams[0].retries: unknown field" in output
    assert "3 problems" in output


def test_validate_reports_a_single_cross_reference_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        MINIMAL.replace("upstream: app}", "upstream: ap}")
        .replace("LISTEN", "8080")
        .replace("ADMIN", "9901")
        .replace("FIRST", "9001")
        .replace("SECOND", "9002")
    )
    result = run_validate(path)
    assert result.returncode == 2
    assert "routes[0].upstream: unknown upstream 'ap'; known: app" in result.stderr
    assert result.stdout == ""
