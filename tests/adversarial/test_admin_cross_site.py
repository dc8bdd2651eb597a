"""A core's admin API cannot be driven by a web page: not by a cross-site form or fetch
(simple requests: text/plain bodies, a foreign Origin), not by DNS rebinding (a foreign
Host), and the requests tools send still work.

Every state-changing route is attacked; after each attack the cluster state it would have
changed is compared with what it was.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from admin_client import admin_request, as_browser
from cluster.conftest import Cluster, probe_config

EVIL = "http://evil.example"
CONFIGURED_NAME = "dispa-admin.test"
LIMITED = {
    "routes": probe_config("before any attack\n")["routes"],
    "rate_limits": [{"name": "api", "key": "route", "limit": 5, "window": "60s"}],
    "access_log": {"enabled": False},
}


@pytest.fixture(scope="module")
def cores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    cluster = Cluster(tmp_path_factory.mktemp("admin-cross-site"))
    first = cluster.cores[0]
    first.config["admin"]["allowed_hosts"] = [CONFIGURED_NAME]
    first.config_path.write_text(json.dumps(first.config))
    try:
        cluster.start()
        reply = cluster.leader().put_config(LIMITED)
        assert reply.status == 200, reply.body
        cluster.wait_applied(reply.body["revision"])
        yield cluster
    finally:
        cluster.stop_all()


def _state(cluster: Cluster) -> dict:
    """What the attacks try to change, as the leader holds it."""
    leader = cluster.leader()
    backup = admin_request(leader.admin_address, "GET", "/api/v1/backup").body["state"]
    return {key: backup[key] for key in ("revision", "members", "quota", "purge_seq", "edges")} | {
        "config": backup["history"][str(backup["revision"])]["config"]
    }


def _a_backup_with_another_config(cluster: Cluster) -> dict:
    backup = admin_request(cluster.leader().admin_address, "GET", "/api/v1/backup").body
    state = backup["state"]
    state["history"][str(state["revision"])]["config"] = probe_config("PWNED\n")
    return backup


# Every route that changes state, with a body its handler would accept.
def _writes(cluster: Cluster) -> list[tuple[str, str, dict | None]]:
    return [
        ("PUT", "/api/v1/config", probe_config("PWNED\n")),
        ("POST", "/api/v1/config/dry-run", probe_config("PWNED\n")),
        ("POST", "/api/v1/config/rollback", {"revision": 1}),
        ("POST", "/api/v1/members", {"id": "evil", "raft": "127.0.0.1:1", "admin": "x:1"}),
        ("DELETE", "/api/v1/members/core-3", None),
        ("POST", "/api/v1/restore", _a_backup_with_another_config(cluster)),
        ("POST", "/api/v1/edges/report", {"name": "evil", "revision": 1}),
        (
            "POST",
            "/api/v1/quota/lease",
            {
                "limit_name": "api",
                "key": "k",
                "node": "evil",
                "want": 5,
                "limit": 5,
                "window": 60,
                "now": 0,
            },
        ),
        ("POST", "/api/v1/cache/purge", {"tags": ["everything"]}),
    ]


def test_a_cross_site_page_cannot_replace_the_config_by_restore(cores: Cluster) -> None:
    """The issue's case: text/plain, a foreign Origin and a foreign Host."""
    before = _state(cores)
    target = cores.leader()
    answer = admin_request(
        target.admin_address,
        "POST",
        "/api/v1/restore",
        body=_a_backup_with_another_config(cores),
        headers=as_browser(EVIL, "evil.example"),
    )
    assert answer.status in (403, 415, 421), answer
    assert _state(cores) == before


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
def test_every_write_refuses_a_simple_request_content_type(
    cores: Cluster, content_type: str
) -> None:
    """Right Host, no Origin (as a <form> in some browsers, or a no-cors fetch): the
    content type alone must keep a browser's simple request out."""
    before = _state(cores)
    for method, path, body in _writes(cores):
        target = cores.cores[1]
        answer = admin_request(
            target.admin_address,
            method,
            path,
            body=body,
            headers={"Content-Type": content_type},
        )
        assert answer.status == 415, (method, path, answer)
        assert "application/json" in answer.body["error"], answer.body
        assert _state(cores) == before, (method, path)


def test_a_body_less_write_needs_its_content_type_too(cores: Cluster) -> None:
    before = _state(cores)
    answer = admin_request(cores.cores[1].admin_address, "DELETE", "/api/v1/members/core-3")
    assert answer.status == 415, answer
    assert _state(cores) == before


def test_every_write_refuses_a_foreign_origin(cores: Cluster) -> None:
    before = _state(cores)
    for method, path, body in _writes(cores):
        target = cores.cores[1]
        answer = admin_request(
            target.admin_address,
            method,
            path,
            body=body,
            headers={"Content-Type": "application/json", "Origin": EVIL},
        )
        assert answer.status == 403, (method, path, answer)
        assert "Origin" in answer.body["error"], answer.body
    assert _state(cores) == before
    null_origin = admin_request(
        cores.cores[1].admin_address,
        "POST",
        "/api/v1/cache/purge",
        body={"tags": ["everything"]},
        headers={"Content-Type": "application/json", "Origin": "null"},
    )
    assert null_origin.status == 403, null_origin
    assert _state(cores) == before


def test_dns_rebinding_cannot_read_the_backup_nor_write(cores: Cluster) -> None:
    target = cores.cores[1]
    port = target.admin_address.rpartition(":")[2]
    for host in (f"rebind.example:{port}", "rebind.example", f"{CONFIGURED_NAME}:{port}"):
        answer = admin_request(
            target.admin_address, "GET", "/api/v1/backup", headers={"Host": host}
        )
        assert answer.status == 421, (host, answer)
        assert "Host" in answer.body["error"] and "state" not in answer.body, answer.body
    before = _state(cores)
    for method, path, body in _writes(cores):
        answer = admin_request(
            target.admin_address,
            method,
            path,
            body=body,
            headers={"Content-Type": "application/json", "Host": f"rebind.example:{port}"},
        )
        assert answer.status == 421, (method, path, answer)
    assert _state(cores) == before


def test_tools_and_the_admins_own_pages_still_work(cores: Cluster) -> None:
    leader = cores.leader()
    port = leader.admin_address.rpartition(":")[2]
    own = f"http://{leader.admin_address}"
    for host in (leader.admin_address, f"localhost:{port}"):
        answer = admin_request(
            leader.admin_address, "GET", "/api/v1/backup", headers={"Host": host}
        )
        assert answer.status == 200, (host, answer)
    purge = admin_request(
        leader.admin_address,
        "POST",
        "/api/v1/cache/purge",
        body={"tags": ["from-the-admin-page"]},
        headers={"Content-Type": "application/json", "Origin": own},
    )
    assert purge.status == 200, purge
    # A name the operator configured (admin.allowed_hosts) on core-1 only.
    first = cores.cores[0]
    first_port = first.admin_address.rpartition(":")[2]
    configured = admin_request(
        first.admin_address,
        "GET",
        "/api/v1/node",
        headers={"Host": f"{CONFIGURED_NAME}:{first_port}"},
    )
    assert configured.status == 200, configured
    yaml_dry_run = admin_request(
        leader.admin_address,
        "POST",
        "/api/v1/config/dry-run",
        body="routes:\n- name: probe\n  match: {path_exact: /probe}\n"
        "  direct_response: {status: 200, body: yaml}\n",
        headers={"Content-Type": "application/yaml"},
    )
    assert yaml_dry_run.status == 200, yaml_dry_run


def test_a_body_larger_than_its_route_takes_is_refused_before_it_is_read(cores: Cluster) -> None:
    target = cores.cores[1]
    # Declares 200 MiB and sends a little: the answer comes at once, from the length.
    answer = admin_request(
        target.admin_address,
        "POST",
        "/api/v1/config/rollback",
        body=b"{" * 1024,
        headers={"Content-Type": "application/json", "Content-Length": str(200 * 1024**2)},
        timeout=5.0,
    )
    assert answer.status == 413, answer
    assert "bytes" in answer.body["error"], answer.body
