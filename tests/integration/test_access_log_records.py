"""The access log: JSON lines with the fields documented in dispa/observe/access_log.py."""

from __future__ import annotations

import asyncio
import json
import re
import time
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
from conftest import (
    Processes,
    Upstream,
    async_wait_until,
    make_config,
    raw_connection,
    read_response,
)

DOCUMENTED_FIELDS = {
    "time",
    "request_id",
    "client",
    "method",
    "path",
    "host",
    "status",
    "route",
    "upstream",
    "endpoint",
    "duration_ms",
    "bytes_in",
    "bytes_out",
    "reason",
    "attempts",
}


async def test_access_log_records(
    processes: Processes, tmp_path: Path, upstream_a: Upstream
) -> None:
    log_path = tmp_path / "logs" / "access.log"
    config = make_config(
        upstreams=[{"name": "app", "endpoints": [{"address": upstream_a.address}]}],
        routes=[{"name": "main", "match": {"host": "logged.test"}, "upstream": "app"}],
        access_log={"enabled": True, "path": str(log_path), "flush_interval": "200ms"},
    )
    gateway = processes.gateway(config, tmp_path / "gateway")
    with raw_connection(gateway.port) as (sock, stream):
        local_port = sock.getsockname()[1]
        sock.sendall(
            b"GET /headers?q=1 HTTP/1.1\r\nHost: logged.test\r\nX-Request-Id: log-1\r\n\r\n"
        )
        first_response = read_response(stream)
        assert first_response.status == 200
        sent_back = len(first_response.body)
    async with aiohttp.ClientSession() as session:
        headers = {"Host": "logged.test", "X-Request-Id": "log-2"}
        async with session.post(gateway.url("/count"), data=b"b" * 1234, headers=headers) as r:
            assert r.status == 200
        headers = {"Host": "nowhere.test", "X-Request-Id": "log-3"}
        async with session.get(gateway.url("/missing"), headers=headers) as response:
            assert response.status == 404
        headers = {"Host": "logged.test", "X-Request-Id": "log-4"}
        slow_sent_at = time.time()
        async with session.get(gateway.url("/slow?ms=1200"), headers=headers) as response:
            assert response.status == 200

    def records() -> list[dict]:
        lines = log_path.read_text().splitlines() if log_path.exists() else []
        return [json.loads(line) for line in lines] if len(lines) >= 4 else []

    logged = {r["request_id"]: r for r in await async_wait_until(records, what="4 records")}
    assert set(logged) == {"log-1", "log-2", "log-3", "log-4"}
    for record in logged.values():
        assert set(record) == DOCUMENTED_FIELDS, record
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", record["time"]), record

    first = logged["log-1"]
    assert first["client"] == f"127.0.0.1:{local_port}"
    assert (first["method"], first["path"], first["host"]) == ("GET", "/headers", "logged.test")
    assert (first["status"], first["route"], first["upstream"]) == (200, "main", "app")
    assert first["endpoint"] == upstream_a.address
    assert first["reason"] is None
    assert first["attempts"] == 1
    assert first["bytes_in"] == 0
    assert first["bytes_out"] == sent_back
    assert first["duration_ms"] > 0

    posted = logged["log-2"]
    assert (posted["method"], posted["bytes_in"]) == ("POST", 1234)

    missing = logged["log-3"]
    assert (missing["status"], missing["reason"]) == (404, "no_route")
    assert missing["route"] is None and missing["upstream"] is None
    assert missing["endpoint"] is None and missing["attempts"] == 0
    assert missing["bytes_out"] == len(b"no route\n")

    slow = logged["log-4"]
    assert slow["duration_ms"] >= 1200
    # "time" is when the request head arrived, not when the response ended.
    arrived = datetime.strptime(slow["time"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    assert abs(arrived.timestamp() - slow_sent_at) < 0.5, (slow["time"], slow_sent_at)


async def test_access_log_is_flushed_on_shutdown(
    processes: Processes, tmp_path: Path, upstream_a: Upstream
) -> None:
    log_path = tmp_path / "access.log"
    config = make_config(
        upstreams=[{"name": "app", "endpoints": [{"address": upstream_a.address}]}],
        routes=[{"match": {"path_prefix": "/"}, "upstream": "app"}],
        # Neither the buffer nor the timer would write these records out before the stop.
        access_log={"path": str(log_path), "flush_interval": "60s", "buffer_bytes": "1MiB"},
    )
    gateway = processes.gateway(config, tmp_path / "gateway")
    async with aiohttp.ClientSession() as session:
        for _ in range(5):
            async with session.get(gateway.url("/")) as response:
                assert response.status == 200
    await asyncio.sleep(0.2)
    assert not log_path.exists() or log_path.read_text() == ""
    gateway.process.stop()
    assert gateway.process.popen.returncode == 0
    assert len(log_path.read_text().splitlines()) == 5
