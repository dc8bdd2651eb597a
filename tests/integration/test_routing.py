"""Routing by host, path, method and headers with the documented precedence (router.py),
and what a route does: forward with rewrites and header edits, redirect, answer directly."""

from __future__ import annotations

import aiohttp
import pytest
from conftest import (
    Gateway,
    Processes,
    Upstream,
    curl,
    make_config,
    raw_connection,
    read_response,
    received_headers,
)


def direct(name: str, **match) -> dict:
    """A route that answers its own name, so a test sees which route won."""
    return {"name": name, "match": match, "direct_response": {"body": name}}


ROUTES = [
    # No path condition: the least specific route of all (a "/" prefix would outrank every
    # path_regex route, as prefixes come before regexes).
    direct("any-root", host="*"),
    direct("exact-host", host="api.example.com", path_prefix="/api/"),
    direct("wildcard", host="*.example.com", path_prefix="/"),
    direct("wildcard-eu", host="*.eu.example.com", path_prefix="/"),
    # Listed before the exact and prefix routes it overlaps: precedence, not order, decides.
    direct("regex-p", path_regex="^/p/.*$"),
    direct("prefix-short", path_prefix="/p/"),
    direct("prefix-long", path_prefix="/p/long/"),
    direct("exact-path", path_exact="/p/exact"),
    direct("regex-only", path_regex="^/r/[0-9]+$"),
    direct("m-any", path_prefix="/m/"),
    direct("m-write", path_prefix="/m/", methods=["post", "PUT"]),
    direct("h-plain", path_prefix="/h/"),
    direct("h-canary", path_prefix="/h/", headers=[{"name": "X-Canary", "exact": "1"}]),
    direct("h-admin", path_prefix="/h/", headers=[{"name": "x-user", "regex": "adm.*"}]),
    direct("h-blocked", path_prefix="/h/", headers=[{"name": "x-block", "present": True}]),
    direct("dup-first", path_exact="/dup"),
    direct("dup-second", path_exact="/dup"),
]


@pytest.fixture(scope="module")
def gateway(
    module_processes: Processes, tmp_path_factory: pytest.TempPathFactory, upstream_a: Upstream
) -> Gateway:
    actions = [
        {"name": "rewrite", "match": {"path_prefix": "/svc/"}, "upstream": "demo",
         "prefix_rewrite": "/"},
        {"name": "legacy", "match": {"path_prefix": "/legacy"}, "upstream": "demo",
         "prefix_rewrite": "/headers"},
        {
            "name": "edited",
            "match": {"path_prefix": "/edit/"},
            "upstream": "demo",
            "prefix_rewrite": "/",
            "headers": {
                "request_add": {"X-Added": "yes", "X-Replaced": "by-route"},
                "request_remove": ["X-Drop"],
                "response_add": {"X-Resp": "r"},
                "response_remove": ["X-Upstream", "Server"],
            },
        },
        {"name": "moved", "match": {"path_prefix": "/old/"},
         "redirect": {"status": 301, "prefix": "/new/"}},
        {"name": "secure", "match": {"path_exact": "/login"},
         "redirect": {"scheme": "https", "host": "secure.example.com", "path": "/signin"}},
        {
            "name": "teapot",
            "match": {"path_exact": "/teapot"},
            "direct_response": {
                "status": 403,
                "body": "no tea here\n",
                "headers": {"Content-Type": "text/plain", "X-Direct": "yes"},
            },
        },
    ]  # fmt: skip
    config = make_config(
        upstreams=[{"name": "demo", "endpoints": [{"address": upstream_a.address}]}],
        routes=ROUTES + actions,
    )
    return module_processes.gateway(config, tmp_path_factory.mktemp("routing"))


def ask(gateway: Gateway, host: str, path: str, method: str = "GET", headers=()):
    lines = "".join(f"{name}: {value}\r\n" for name, value in headers)
    length = "Content-Length: 0\r\n" if method in ("POST", "PUT") else ""
    with raw_connection(gateway.port) as (sock, stream):
        sock.sendall(f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n{length}{lines}\r\n".encode())
        return read_response(stream)


def route_for(gateway: Gateway, host: str, path: str, method: str = "GET", headers=()) -> str:
    response = ask(gateway, host, path, method, headers)
    assert response.status == 200, (host, path, response)
    return response.body.decode()


@pytest.mark.parametrize(
    ("host", "path", "expected"),
    [
        ("api.example.com", "/api/users", "exact-host"),
        ("API.Example.COM:8443", "/api/users", "exact-host"),  # case and port do not matter
        # The exact host has no route for this path: fall through to the wildcard.
        ("api.example.com", "/p/exact", "wildcard"),
        ("shop.example.com", "/api/users", "wildcard"),
        ("a.b.example.com", "/", "wildcard"),
        ("x.eu.example.com", "/", "wildcard-eu"),  # the longer suffix first
        ("example.com", "/", "any-root"),  # *.example.com needs a label before it
        ("other.test", "/", "any-root"),
    ],
)
def test_host_precedence(gateway: Gateway, host: str, path: str, expected: str) -> None:
    assert route_for(gateway, host, path) == expected


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/p/exact", "exact-path"),  # exact beats prefix and regex
        ("/p/exact?q=1", "exact-path"),  # the query is not part of the path
        ("/p/exact/more", "prefix-short"),
        ("/p/long/x", "prefix-long"),  # the longest prefix first
        ("/p/other", "prefix-short"),  # prefix beats the regex listed before it
        ("/r/123", "regex-only"),
        ("/r/12a", "any-root"),  # regexes match the whole path
        ("/p", "any-root"),
    ],
)
def test_path_precedence(gateway: Gateway, path: str, expected: str) -> None:
    assert route_for(gateway, "other.test", path) == expected


def test_methods(gateway: Gateway) -> None:
    assert route_for(gateway, "other.test", "/m/x", "POST") == "m-write"
    assert route_for(gateway, "other.test", "/m/x", "PUT") == "m-write"
    assert route_for(gateway, "other.test", "/m/x", "GET") == "m-any"
    assert route_for(gateway, "other.test", "/m/x", "DELETE") == "m-any"


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ((("X-Canary", "1"),), "h-canary"),
        ((("x-canary", "1"),), "h-canary"),  # header names match in any case
        ((("X-Canary", "2"),), "h-plain"),
        ((("X-User", "admin"),), "h-admin"),
        ((("X-User", "xadmin"),), "h-plain"),  # regex must match the whole value
        ((("X-Block", ""),), "h-blocked"),
        ((), "h-plain"),
    ],
)
def test_header_match(gateway: Gateway, headers, expected: str) -> None:
    assert route_for(gateway, "other.test", "/h/x", headers=headers) == expected


def test_file_order_breaks_ties(gateway: Gateway) -> None:
    assert route_for(gateway, "other.test", "/dup") == "dup-first"


async def test_prefix_rewrite_keeps_the_rest_and_the_query(gateway: Gateway) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(gateway.url("/svc/headers?x=1&y=2")) as response:
            assert (await response.json())["path"] == "/headers?x=1&y=2"
        async with session.get(gateway.url("/legacy?y=2")) as response:
            assert (await response.json())["path"] == "/headers?y=2"
        assert gateway.metric("dispa_requests_total", route="legacy") >= 1


async def test_route_header_edits(gateway: Gateway) -> None:
    async with aiohttp.ClientSession() as session:
        headers = {"X-Drop": "secret", "X-Replaced": "by-client", "X-Other": "kept"}
        async with session.get(gateway.url("/edit/headers"), headers=headers) as response:
            seen = received_headers(await response.json())
            assert response.headers["X-Resp"] == "r"
        assert seen["x-added"] == "yes"
        assert seen["x-replaced"] == "by-route"
        assert seen["x-other"] == "kept"
        assert "x-drop" not in seen
        async with session.get(gateway.url("/edit/")) as response:
            assert await response.text() == "hello from alpha\n"
            assert response.headers["X-Resp"] == "r"
            assert "X-Upstream" not in response.headers
            assert "Server" not in response.headers
        # The same path outside the edited route keeps the upstream's headers.
        async with session.get(gateway.url("/svc/")) as response:
            assert response.headers["X-Upstream"] == "alpha"
            assert "X-Resp" not in response.headers


def test_redirect_replaces_the_prefix(gateway: Gateway) -> None:
    response = ask(gateway, "shop.test:8080", "/old/items/7?color=red")
    assert response.status == 301
    assert response.header("location") == "http://shop.test:8080/new/items/7?color=red"
    assert gateway.metric("dispa_requests_total", route="moved", status_class="3xx") >= 1


def test_redirect_to_another_scheme_host_and_path(gateway: Gateway) -> None:
    result = curl("-o", "/dev/null", "-w", "%{http_code} %{redirect_url}", gateway.url("/login"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode() == "302 https://secure.example.com/signin"


def test_direct_response(gateway: Gateway) -> None:
    response = ask(gateway, "other.test", "/teapot")
    assert response.status == 403
    assert response.body == b"no tea here\n"
    assert response.header("content-type") == "text/plain"
    assert response.header("x-direct") == "yes"
    assert response.header("content-length") == "12"


def test_direct_response_answers_head_without_a_body(gateway: Gateway) -> None:
    with raw_connection(gateway.port) as (sock, stream):
        sock.sendall(
            b"HEAD /teapot HTTP/1.1\r\nHost: t\r\n\r\nGET /dup HTTP/1.1\r\nHost: t\r\n\r\n"
        )
        head = read_response(stream, head_request=True)
        assert head.status == 403
        assert head.header("content-length") == "12"
        # Had a body followed the HEAD answer, this would read it as a status line.
        assert read_response(stream).body == b"dup-first"


def test_route_names_label_the_request_metrics(gateway: Gateway) -> None:
    before = gateway.metric("dispa_requests_total", route="teapot", status_class="4xx")
    ask(gateway, "other.test", "/teapot")
    assert gateway.metric("dispa_requests_total", route="teapot", status_class="4xx") == before + 1
