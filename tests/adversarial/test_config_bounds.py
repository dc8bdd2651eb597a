"""Config documents built to break the loader: nested 100,000 deep (or 900 through the API),
a 5,000-digit integer, a billion laughs. ``dispa validate`` exits 2 with a problem naming
the path (never a traceback, exit 1); the admin API answers 400 with the same lines (never
a 500), and keeps answering everyone else."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from admin_client import admin_request
from cluster.conftest import Cluster
from conftest import PYTHON, REPO
from harness import Probe

DEEP_FLOW = "listeners: " + "[" * 100_000 + "]" * 100_000 + "\n"
HUGE_INTEGER = (
    "listeners:\n"
    "  - name: public\n"
    "    address: 127.0.0.1:0\n"
    "    limits: {max_header_bytes: " + "9" * 5000 + "}\n"
    "routes: [{direct_response: {status: 200}}]\n"
)
BILLION_LAUGHS = "\n".join(
    ['a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    + [f"a{n}: &a{n} [{', '.join([f'*a{n - 1}'] * 10)}]" for n in range(1, 10)]
    + ["routes: *a9"]
)
SELF_ALIAS = "routes: &r [{direct_response: {status: 200}}, *r]\n"


def validate(tmp_path: Path, text: str) -> subprocess.CompletedProcess:
    path = tmp_path / "gateway.yaml"
    path.write_text(text)
    return subprocess.run(
        [PYTHON, "-m", "dispa", "validate", "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (DEEP_FLOW, "listeners" + "[0]" * 64 + ": nested more than 64 levels deep"),
        (HUGE_INTEGER, "listeners[0].limits.max_header_bytes: an integer of more than 32 digits"),
        (BILLION_LAUGHS, "the config holds more than 250000 values"),
        (SELF_ALIAS, "routes[1]: an alias inside the value it names"),
    ],
    ids=["deep", "huge-integer", "billion-laughs", "self-alias"],
)
def test_validate_names_the_path_and_exits_2(tmp_path, text, problem):
    started = time.monotonic()
    result = validate(tmp_path, text)
    assert time.monotonic() - started < 30
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    assert result.returncode == 2, result.stderr[-2000:]
    assert problem in result.stderr, result.stderr[-2000:]


# ---------------------------------------------------------------- the admin API


def _good(body: str) -> str:
    return json.dumps({"routes": [{"direct_response": {"status": 200, "body": body}}]})


@pytest.fixture(scope="module")
def core(tmp_path_factory) -> Iterator:
    cluster = Cluster(tmp_path_factory.mktemp("config-bounds"), count=1)
    try:
        cluster.start()
        core = cluster.cores[0]
        assert _put(core, _good("first"), "application/json")[0] == 200
        yield core
    finally:
        cluster.stop_all()


def _put(core, body: str, content_type: str) -> tuple[int, object]:
    answer = admin_request(
        core.admin_address,
        "PUT",
        "/api/v1/config",
        body=body,
        headers={"Content-Type": content_type},
    )
    return answer.status, answer.body


def _deep_json(depth: int) -> str:
    return _good("deep")[:-1] + ', "regions": ' + "[" * depth + "]" * depth + "}"


@pytest.mark.parametrize(
    ("body", "content_type", "problem"),
    [
        (_deep_json(900), "application/json", "nested more than 64 levels deep"),
        (_deep_json(20_000), "application/json", "nested more than 64 levels deep"),
        (
            '{"routes": [{"direct_response": {"status": ' + "7" * 5000 + "}}]}",
            "application/json",
            "routes[0].direct_response.status: an integer of more than 32 digits",
        ),
        (BILLION_LAUGHS, "application/yaml", "the config holds more than 250000 values"),
        (SELF_ALIAS, "application/yaml", "routes[1]: an alias inside the value it names"),
    ],
    ids=["deep-900", "deep-20000", "huge-integer", "billion-laughs", "self-alias"],
)
def test_admin_put_answers_400_naming_the_path(core, body, content_type, problem):
    listener_port = int(core.listener_address.rpartition(":")[2])
    with Probe(listener_port, "/") as probe:
        started = time.monotonic()
        status, answer = _put(core, body, content_type)
        elapsed = time.monotonic() - started
        time.sleep(0.5)
    assert status == 400, answer
    assert any(problem in line for line in answer["errors"]), answer
    assert elapsed < 10
    assert probe.ratio >= 0.95, probe.summary()
    # And a good config is still taken afterwards.
    assert _put(core, _good(f"after {problem}"), "application/json")[0] == 200


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/restore",
        "/api/v1/config/rollback",
        "/api/v1/members",
        "/api/v1/quota/lease",
        "/api/v1/edges/report",
        "/api/v1/cache/purge",
    ],
)
def test_deep_json_bodies_are_a_400_on_every_json_route(core, path):
    """The siblings of the PUT: each JSON route read its body with json.loads, whose
    RecursionError on a deep document was a 500."""
    body = '{"state": ' + "[" * 5000 + "]" * 5000 + "}"
    answer = admin_request(
        core.admin_address, "POST", path, body=body, headers={"Content-Type": "application/json"}
    )
    assert answer.status == 400, answer.body
