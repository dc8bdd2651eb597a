"""The admin guard on a real admin server (port 0): Host, Origin, content types, body
sizes and the body budget, as raw requests meet them."""

from __future__ import annotations

import asyncio
import http.client
import json
import socket

import pytest
from aiohttp import web

from dispa.admin import guard
from dispa.admin.app import start_admin
from dispa.admin.guard import JSON_OR_YAML, BodyBudget, accepts
from dispa.config.schema import Admin

received: list[bytes] = []


class View:
    def is_ready(self) -> bool:
        return True

    def config_document(self) -> dict:
        return {"revision": 1}

    def upstreams_document(self) -> dict:
        return {"upstreams": []}

    def stats_snapshots(self) -> list[dict]:
        return []


@accepts("application/json")
async def small_write(request: web.Request) -> web.Response:
    received.append(await request.read())
    return web.json_response({"ok": True})


@accepts(*JSON_OR_YAML, max_body=200_000)
async def config_write(request: web.Request) -> web.Response:
    received.append(await request.read())
    return web.json_response({"ok": True})


async def undeclared_delete(request: web.Request) -> web.Response:
    return web.json_response({"deleted": request.match_info["id"]})


ROUTES = [
    web.post("/small", small_write),
    web.put("/config", config_write),
    web.delete("/things/{id}", undeclared_delete),
]


@pytest.fixture
async def admin():
    received.clear()
    config = Admin(
        address="127.0.0.1:0",
        allowed_hosts=["admin.example.com"],
        allowed_origins=["https://console.example.com"],
    )
    server = await start_admin(View(), "127.0.0.1", 0, ROUTES, admin_config=config)
    yield server.port
    await server.close()


def _call(port, method, path, headers=None, body=None):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        raw = response.read()
        return response.status, raw, dict(response.getheaders())
    finally:
        connection.close()


async def call(port, method, path, headers=None, body=None):
    return await asyncio.to_thread(_call, port, method, path, headers, body)


def error_of(raw: bytes) -> str:
    return json.loads(raw)["error"]


async def test_writes_take_only_their_documented_content_types(admin):
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data"):
        status, raw, _ = await call(admin, "POST", "/small", {"Content-Type": content_type}, b"{}")
        assert status == 415 and "application/json" in error_of(raw), (content_type, raw)
    status, raw, _ = await call(admin, "POST", "/small", {}, b"{}")  # none at all
    assert status == 415, raw
    assert received == []
    status, _, _ = await call(
        admin, "POST", "/small", {"Content-Type": "application/json; charset=utf-8"}, b"{}"
    )
    assert status == 200 and received == [b"{}"]
    for content_type in JSON_OR_YAML:
        status, _, _ = await call(admin, "PUT", "/config", {"Content-Type": content_type}, b"a: 1")
        assert status == 200, content_type
    status, raw, _ = await call(admin, "PUT", "/config", {"Content-Type": "text/plain"}, b"a: 1")
    assert status == 415 and "application/yaml" in error_of(raw)


async def test_a_body_less_write_still_needs_a_content_type(admin):
    status, raw, _ = await call(admin, "DELETE", "/things/x")
    assert status == 415 and "without a body" in error_of(raw)
    status, raw, _ = await call(admin, "DELETE", "/things/x", {"Content-Type": "application/json"})
    assert status == 200 and json.loads(raw) == {"deleted": "x"}


async def test_reads_need_no_content_type_but_the_host_check_applies(admin):
    assert (await call(admin, "GET", "/api/v1/config"))[0] == 200
    status, raw, _ = await call(admin, "GET", "/api/v1/config", {"Host": "evil.example"})
    assert status == 421 and "evil.example" in error_of(raw)
    assert (await call(admin, "GET", "/healthz", {"Host": "admin.example.com"}))[0] == 200
    # Unknown paths and methods keep their own answers, for allowed hosts only.
    assert (await call(admin, "POST", "/nothing", {"Content-Type": "text/plain"}))[0] == 404
    assert (await call(admin, "POST", "/nothing", {"Host": "evil.example"}))[0] == 421


async def test_two_host_headers_are_refused(admin):
    request = (
        f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{admin}\r\nHost: evil.example\r\n"
        "Connection: close\r\n\r\n"
    ).encode()

    def exchange() -> bytes:
        with socket.create_connection(("127.0.0.1", admin), timeout=5) as sock:
            sock.sendall(request)
            return sock.recv(4096)

    answer = await asyncio.to_thread(exchange)
    # aiohttp's parser refuses it first (400); the guard would answer 421.
    assert answer.split(b" ", 2)[1] in (b"400", b"421"), answer


async def test_foreign_origins_are_refused_listed_ones_get_cors(admin):
    write = {"Content-Type": "application/json"}
    status, raw, _ = await call(
        admin, "POST", "/small", {**write, "Origin": "http://evil.example"}, b"{}"
    )
    assert status == 403 and "evil.example" in error_of(raw)
    status, _, headers = await call(
        admin, "POST", "/small", {**write, "Origin": "https://console.example.com"}, b"{}"
    )
    assert status == 200
    assert headers["Access-Control-Allow-Origin"] == "https://console.example.com"
    preflight = {
        "Origin": "https://console.example.com",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type",
    }
    status, _, headers = await call(admin, "OPTIONS", "/small", preflight)
    assert status == 204 and "Content-Type" in headers["Access-Control-Allow-Headers"]
    refused = {**preflight, "Origin": "http://evil.example"}
    status, _, headers = await call(admin, "OPTIONS", "/small", refused)
    assert status == 403 and "Access-Control-Allow-Origin" not in headers
    own = f"http://127.0.0.1:{admin}"
    status, _, headers = await call(admin, "POST", "/small", {**write, "Origin": own}, b"{}")
    assert status == 200 and "Access-Control-Allow-Origin" not in headers


async def test_bodies_over_the_routes_size_are_refused_before_they_are_read(admin):
    headers = {"Content-Type": "application/json", "Content-Length": str(10 * 1024**2)}
    status, raw, _ = await call(admin, "POST", "/small", headers, b"{")
    assert status == 413 and "65536" in error_of(raw)
    # Chunked (no length): refused once the limit is passed.
    chunks = (b"x" * 70_000 for _ in range(1))
    status, raw, _ = await call(
        admin, "POST", "/small", {"Content-Type": "application/json"}, chunks
    )
    assert status == 413, raw
    # A route that takes more says so.
    status, _, _ = await call(
        admin, "PUT", "/config", {"Content-Type": "text/yaml"}, b"a" * 150_000
    )
    assert status == 200
    assert received == [b"a" * 150_000]


async def test_a_body_that_does_not_arrive_in_time_is_refused(admin, monkeypatch):
    monkeypatch.setattr(guard, "BODY_GRACE", 0.3)

    def stall() -> bytes:
        with socket.create_connection(("127.0.0.1", admin), timeout=5) as sock:
            sock.sendall(
                f"POST /small HTTP/1.1\r\nHost: 127.0.0.1:{admin}\r\n"
                "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{".encode()
            )
            return sock.recv(4096)

    answer = await asyncio.to_thread(stall)
    assert answer.startswith(b"HTTP/1.1 408"), answer


def test_the_budget_admits_one_large_body_alone_and_small_ones_up_to_its_total():
    budget = BodyBudget(100)
    assert budget.take(60) and budget.take(40)
    assert not budget.take(1)
    budget.give_back(60)
    budget.give_back(40)
    assert budget.take(500)  # alone: the route's own limit is what bounds it
    assert not budget.take(1)
    budget.give_back(500)
    assert budget.in_use == 0
