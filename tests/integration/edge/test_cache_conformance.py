"""The edge cache against RFC 9111's finer rules, end to end: a real core, real edges and
a scripted raw origin (scripted_origin.py) that sends exactly the header bytes a test
wants.

- An invalid Expires means already expired (RFC 9111 section 5.3): never a hit.
- A successful unsafe request invalidates its target URI, and the same-origin Location
  and Content-Location URIs (RFC 9111 section 4.4).
- CDN-Cache-Control (RFC 9213) rules the edge's own storing and freshness over
  Cache-Control and Expires, and both reach the client unchanged.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from email.utils import formatdate
from pathlib import Path

import pytest
from cluster.conftest import Cluster, http_call

from .conftest import EdgeProcess
from .scripted_origin import ScriptedOrigin


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple]:
    workdir: Path = tmp_path_factory.mktemp("cache-conformance")
    cluster = Cluster(workdir / "cluster", count=1)  # one core: enough to feed edges
    edges: list[EdgeProcess] = []
    with ScriptedOrigin() as origin:
        try:
            cluster.start()
            reply = cluster.leader().put_config(
                {
                    "upstreams": [
                        {
                            "name": "origin",
                            "endpoints": [{"address": origin.address}],
                            "retry": {"attempts": 1},
                        }
                    ],
                    "routes": [
                        # Writes go through a route without a cache: they still invalidate.
                        {
                            "name": "writes",
                            "match": {
                                "path_prefix": "/c/",
                                "methods": ["POST", "PUT", "DELETE", "PATCH"],
                            },
                            "upstream": "origin",
                        },
                        {
                            "name": "cached",
                            "match": {"path_prefix": "/c/"},
                            "upstream": "origin",
                            "cache": True,
                        },
                    ],
                    "access_log": {"enabled": False},
                }
            )
            assert reply.status == 200, reply
            cores = [core.admin_address for core in cluster.cores]
            edge = EdgeProcess("edge-conf", "eu", workdir / "edge-conf", cores)
            edges.append(edge)
            edge.start()
            edge.wait_revision(reply.body["revision"])
            yield cluster, origin, edge, reply.body["revision"], workdir, edges
        finally:
            for started in edges:
                started.stop()
            cluster.stop_all()


@pytest.fixture(scope="module")
def targeted_edge(setup) -> EdgeProcess:
    """An edge whose target list puts its own field before CDN-Cache-Control."""
    cluster, _, _, revision, workdir, edges = setup
    cores = [core.admin_address for core in cluster.cores]
    cache = {"targeted_fields": ["Dispa-Cache-Control", "cdn-cache-control"]}
    edge = EdgeProcess("edge-targeted", "eu", workdir / "edge-targeted", cores, cache=cache)
    edges.append(edge)
    edge.start()
    edge.wait_revision(revision)
    return edge


def _get(edge: EdgeProcess, path: str):
    reply = edge.get(path)
    return reply.status, reply.headers.get("x-cache"), reply.body, reply.headers


def _send(edge: EdgeProcess, method: str, path: str):
    return http_call(edge.listener_address, method, path, body=b"payload")


def _http_date(seconds: float) -> bytes:
    return formatdate(seconds, usegmt=True).encode()


# ---------------------------------------------------------------- invalid Expires

FUTURE = time.time() + 30 * 86400
INVALID_EXPIRES = {
    "two-digit-year": b"Expires: Thu, 18 Aug 50 02:01:18 GMT",
    "no-comma": b"Expires: " + _http_date(FUTURE).replace(b",", b""),
    "extra-spaces": b"Expires: " + _http_date(FUTURE).replace(b" ", b"  ", 2),
    "date-dashes": b"Expires: Thu, 18-Aug-2050 02:01:18 GMT",
    "time-dots": b"Expires: Thu, 18 Aug 2050 02.01.18 GMT",
    "one-digit-hour": b"Expires: Thu, 18 Aug 2050 2:01:18 GMT",
    "utc": b"Expires: Thu, 18 Aug 2050 02:01:18 UTC",
    "other-zone": b"Expires: Thu, 18 Aug 2050 02:01:18 AEST",
    "two-lines": b"Expires: Thu, 18 Aug 2050 02:01:18 GMT\r\n"
    b"Expires: Thu, 18 Aug 2050 02:01:19 GMT",
}


@pytest.mark.parametrize("name", sorted(INVALID_EXPIRES))
def test_an_invalid_expires_is_never_served_from_the_cache(setup, name) -> None:
    _, origin, edge, *_ = setup
    path = f"/c/expires-{name}"
    origin.script("GET", path, 200, [INVALID_EXPIRES[name]])
    assert _get(edge, path)[:3] == (200, "MISS", f"GET {path} #1\n")
    status, how, body, _ = _get(edge, path)
    # The second request reached the origin: the stored copy was stale from the start.
    assert (status, how, body) == (200, "MISS", f"GET {path} #2\n")
    assert origin.count("GET", path) == 2


def test_an_expires_folded_over_two_lines_is_refused_and_never_stored(setup) -> None:
    _, origin, edge, *_ = setup
    path = "/c/expires-folded"
    origin.script("GET", path, 200, [b"Expires: Thu, 18 Aug\r\n 2050 02:01:18 GMT"])
    # obs-fold in a response: a gateway answers 502 (RFC 9112 section 5.2); nothing stored.
    assert _get(edge, path)[:2] == (502, None)
    assert _get(edge, path)[:2] == (502, None)
    assert origin.count("GET", path) == 2


def test_a_valid_expires_in_the_future_is_a_hit(setup) -> None:
    _, origin, edge, *_ = setup
    path = "/c/expires-valid"
    origin.script("GET", path, 200, [b"Expires: " + _http_date(FUTURE)])
    assert _get(edge, path)[1] == "MISS"
    assert _get(edge, path)[:3] == (200, "HIT", f"GET {path} #1\n")
    assert origin.count("GET", path) == 1


# ---------------------------------------------------------------- invalidation


def _stored(edge: EdgeProcess, path: str) -> None:
    """GET ``path`` until the second answer is a hit."""
    _get(edge, path)
    assert _get(edge, path)[1] == "HIT", path


def test_a_successful_post_invalidates_its_target_and_its_location(setup) -> None:
    _, origin, edge, *_ = setup
    _stored(edge, "/c/inv-a")
    _stored(edge, "/c/inv-b")
    _stored(edge, "/c/inv-untouched")
    origin.script("POST", "/c/inv-a", 201, [b"Location: /c/inv-b"])
    reply = _send(edge, "POST", "/c/inv-a")
    assert (reply.status, reply.headers["location"]) == (201, "/c/inv-b")
    assert _get(edge, "/c/inv-a")[:3] == (200, "MISS", "GET /c/inv-a #2\n")
    assert _get(edge, "/c/inv-b")[:3] == (200, "MISS", "GET /c/inv-b #2\n")
    assert _get(edge, "/c/inv-untouched")[1] == "HIT"
    assert edge.metric("dispa_cache_invalidated_total") >= 2


def test_content_location_of_the_same_origin_is_invalidated(setup) -> None:
    _, origin, edge, *_ = setup
    _stored(edge, "/c/cl-a")
    _stored(edge, "/c/cl-b")
    absolute = f"http://{edge.listener_address}/c/cl-b".encode()
    origin.script("PUT", "/c/cl-a", 200, [b"Content-Location: " + absolute])
    assert _send(edge, "PUT", "/c/cl-a").status == 200
    assert _get(edge, "/c/cl-a")[1] == "MISS"
    assert _get(edge, "/c/cl-b")[1] == "MISS"


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
def test_other_unsafe_methods_invalidate_their_target(setup, method) -> None:
    _, origin, edge, *_ = setup
    path = f"/c/method-{method.lower()}"
    _stored(edge, path)
    origin.script(method, path, 204, [])
    assert _send(edge, method, path).status == 204
    assert _get(edge, path)[1] == "MISS"


def test_an_unknown_method_on_the_cached_route_invalidates_too(setup) -> None:
    _, origin, edge, *_ = setup
    path = "/c/method-mkcol"
    _stored(edge, path)
    origin.script("MKCOL", path, 201, [])
    assert _send(edge, "MKCOL", path).status == 201
    assert _get(edge, path)[1] == "MISS"


def _curl_h2(edge: EdgeProcess, method: str, path: str) -> str:
    """``method path`` over HTTP/2 (prior knowledge); the status, as curl read it."""
    url = f"http://{edge.listener_address}{path}"
    written = "%{http_version} %{http_code}"
    result = subprocess.run(
        [
            "curl",
            "-s",
            "--http2-prior-knowledge",
            "-X",
            method,
            "-o",
            "/dev/null",
            "-w",
            written,
            url,
        ],
        capture_output=True,
        timeout=10,
        check=False,
    )
    return result.stdout.decode()


def test_an_unknown_method_from_an_http2_client_invalidates(setup) -> None:
    _, origin, edge, *_ = setup
    path = "/c/method-frob"
    _stored(edge, path)
    origin.script("FROB", path, 200, [])
    assert _curl_h2(edge, "FROB", path) == "2 200"
    assert _get(edge, path)[1] == "MISS"


def test_a_failed_post_invalidates_nothing(setup) -> None:
    _, origin, edge, *_ = setup
    _stored(edge, "/c/fail-a")
    _stored(edge, "/c/fail-b")
    origin.script("POST", "/c/fail-a", 500, [b"Location: /c/fail-b"])
    assert _send(edge, "POST", "/c/fail-a").status == 500
    assert _get(edge, "/c/fail-a")[1] == "HIT"
    assert _get(edge, "/c/fail-b")[1] == "HIT"


def test_a_location_on_another_host_invalidates_nothing_there(setup) -> None:
    _, origin, edge, *_ = setup
    _stored(edge, "/c/host-a")
    _stored(edge, "/c/host-b")
    origin.script("POST", "/c/host-a", 201, [b"Location: http://other.example/c/host-b"])
    assert _send(edge, "POST", "/c/host-a").status == 201
    assert _get(edge, "/c/host-a")[1] == "MISS"  # its own target, always
    assert _get(edge, "/c/host-b")[1] == "HIT"


def test_safe_methods_invalidate_nothing(setup) -> None:
    _, origin, edge, *_ = setup
    _stored(edge, "/c/safe")
    origin.script("OPTIONS", "/c/safe", 204, [])
    assert _send(edge, "OPTIONS", "/c/safe").status == 204
    assert _get(edge, "/c/safe")[1] == "HIT"


# ---------------------------------------------------------------- CDN-Cache-Control


def test_cdn_cache_control_lets_the_edge_store_what_cache_control_forbids(setup) -> None:
    _, origin, edge, *_ = setup
    path = "/c/cdn-store"
    origin.script("GET", path, 200, [b"Cache-Control: no-store", b"CDN-Cache-Control: max-age=60"])
    status, how, _, headers = _get(edge, path)
    assert (status, how) == (200, "MISS")
    status, how, body, headers = _get(edge, path)
    assert (status, how, body) == (200, "HIT", f"GET {path} #1\n")
    # Both fields go on to the client as the origin sent them.
    assert headers["cache-control"] == "no-store"
    assert headers["cdn-cache-control"] == "max-age=60"
    assert origin.count("GET", path) == 1


def test_cdn_cache_control_no_store_wins_over_cache_control(setup) -> None:
    _, origin, edge, *_ = setup
    path = "/c/cdn-nostore"
    origin.script("GET", path, 200, [b"Cache-Control: max-age=60", b"CDN-Cache-Control: no-store"])
    assert _get(edge, path)[1] == "MISS"
    assert _get(edge, path)[1] == "MISS"
    assert origin.count("GET", path) == 2


def test_cache_control_and_expires_are_ignored_when_a_targeted_field_applies(setup) -> None:
    _, origin, edge, *_ = setup
    path = "/c/cdn-none"
    expires = b"Expires: " + _http_date(FUTURE)
    # "none" is no directive: no freshness at all for the edge (RFC 9213's own example).
    origin.script(
        "GET", path, 200, [b"Cache-Control: max-age=60", expires, b"CDN-Cache-Control: none"]
    )
    assert _get(edge, path)[1] == "MISS"
    assert _get(edge, path)[1] == "MISS"


def test_an_invalid_cdn_cache_control_is_ignored(setup) -> None:
    _, origin, edge, *_ = setup
    path = "/c/cdn-invalid"
    # Not a Structured Field Dictionary: the field is ignored and Cache-Control rules.
    origin.script(
        "GET", path, 200, [b"Cache-Control: max-age=60", b"CDN-Cache-Control: no-store,,"]
    )
    assert _get(edge, path)[1] == "MISS"
    assert _get(edge, path)[1] == "HIT"


def test_the_target_list_is_configurable_and_ordered(targeted_edge, setup) -> None:
    _, origin, _, *_ = setup
    edge = targeted_edge
    path = "/c/cdn-ordered"
    origin.script(
        "GET",
        path,
        200,
        [
            b"Cache-Control: no-store",
            b"CDN-Cache-Control: no-store",
            b"Dispa-Cache-Control: max-age=60",
        ],
    )
    assert _get(edge, path)[1] == "MISS"
    status, how, _, headers = _get(edge, path)
    assert (status, how) == (200, "HIT")
    assert headers["dispa-cache-control"] == "max-age=60"
    assert headers["cdn-cache-control"] == "no-store"
    # And the second name on the list still counts when the first is absent.
    other = "/c/cdn-second"
    origin.script("GET", other, 200, [b"Cache-Control: no-store", b"CDN-Cache-Control: max-age=60"])
    assert _get(edge, other)[1] == "MISS"
    assert _get(edge, other)[1] == "HIT"
