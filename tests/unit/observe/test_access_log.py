from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

from dispa.observe import access_log as access_log_module
from dispa.observe.access_log import AccessLog, NullAccessLog


def record(number: int) -> dict:
    return {
        "time": "2024-05-01T12:00:00.000Z",
        "request_id": f"req-{number}",
        "client": "127.0.0.1:50000",
        "method": "GET",
        "path": f"/items/{number}",
        "host": "example.test",
        "status": 200,
        "route": "api",
        "upstream": "backend",
        "endpoint": "10.0.0.1:80",
        "duration_ms": 1.5,
        "bytes_in": 0,
        "bytes_out": 42,
        "reason": None,
        "attempts": 1,
    }


def line_length(number: int) -> int:
    return len(json.dumps(record(number), separators=(",", ":"))) + 1


def read_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture
def write_calls(monkeypatch) -> list[bytes]:
    """Every os.write the access log makes, still passed through to the real call."""
    calls: list[bytes] = []
    real_write = os.write

    def counting_write(fd: int, data) -> int:
        calls.append(bytes(data))
        return real_write(fd, data)

    monkeypatch.setattr(access_log_module.os, "write", counting_write)
    return calls


def test_records_wait_in_memory_until_the_buffer_fills(tmp_path, write_calls) -> None:
    path = tmp_path / "access.log"
    # Room for three records but not four.
    log = AccessLog(str(path), buffer_bytes=4 * line_length(1) - 1, flush_interval=60)

    for number in range(1, 4):
        log.write(record(number))
    assert read_lines(path) == []
    assert write_calls == []

    log.write(record(4))
    assert [line["request_id"] for line in read_lines(path)] == ["req-1", "req-2", "req-3", "req-4"]
    assert len(write_calls) == 1  # one syscall for the whole batch
    log.close()


def test_flush_and_close_write_out_what_is_buffered(tmp_path) -> None:
    path = tmp_path / "access.log"
    log = AccessLog(str(path), buffer_bytes=65536, flush_interval=60)

    log.write(record(1))
    log.flush()
    assert len(read_lines(path)) == 1

    log.write(record(2))
    log.close()
    log.close()  # twice is harmless
    assert [line["request_id"] for line in read_lines(path)] == ["req-1", "req-2"]


async def wait_for_lines(path: Path, count: int, timeout: float = 5.0) -> list[dict]:
    deadline = asyncio.get_running_loop().time() + timeout
    while len(lines := read_lines(path)) < count:
        assert asyncio.get_running_loop().time() < deadline, f"only {len(lines)} lines"
        await asyncio.sleep(0.01)
    return lines


async def test_periodic_flush_writes_a_partial_buffer_and_keeps_running(tmp_path) -> None:
    path = tmp_path / "access.log"
    log = AccessLog(str(path), buffer_bytes=65536, flush_interval=0.02)
    log.start()

    log.write(record(1))
    await wait_for_lines(path, 1)
    log.write(record(2))
    lines = await wait_for_lines(path, 2)

    assert [line["request_id"] for line in lines] == ["req-1", "req-2"]
    log.close()


async def test_close_stops_the_timer(tmp_path) -> None:
    log = AccessLog(str(tmp_path / "access.log"), buffer_bytes=65536, flush_interval=0.01)
    log.start()
    log.close()
    flushes_after_close: list[None] = []
    log.flush = lambda: flushes_after_close.append(None)

    await asyncio.sleep(0.05)  # a leftover timer would fire here

    assert flushes_after_close == []


def test_lines_are_compact_json_and_append_to_an_existing_file(tmp_path) -> None:
    path = tmp_path / "access.log"
    path.write_text('{"earlier":true}\n')
    log = AccessLog(str(path), buffer_bytes=65536, flush_interval=60)

    log.write(record(1))
    log.write({**record(2), "path": "/caf\u00e9", "reason": "no_route", "status": 404})
    log.close()

    text = path.read_text()
    assert text.endswith("\n")
    assert ": " not in text and ", " not in text
    assert read_lines(path) == [
        {"earlier": True},
        record(1),
        {**record(2), "path": "/caf\u00e9", "reason": "no_route", "status": 404},
    ]


def test_values_json_cannot_encode_are_written_as_text(tmp_path) -> None:
    path = tmp_path / "access.log"
    log = AccessLog(str(path), buffer_bytes=0, flush_interval=60)

    log.write({"path": b"/raw"})

    assert read_lines(path) == [{"path": "b'/raw'"}]
    log.close()


def test_no_flush_interval_means_every_record_is_written_at_once(tmp_path) -> None:
    path = tmp_path / "access.log"
    log = AccessLog(str(path), buffer_bytes=65536, flush_interval=0)

    log.write(record(1))

    assert len(read_lines(path)) == 1
    log.close()


def test_dash_means_standard_output(capsysbinary) -> None:
    log = AccessLog("-", buffer_bytes=65536, flush_interval=60)

    log.write(record(1))
    assert capsysbinary.readouterr().out == b""
    log.close()

    assert json.loads(capsysbinary.readouterr().out) == record(1)


def test_an_unwritable_path_is_counted_not_raised(tmp_path, capsys) -> None:
    # A directory cannot be opened for writing.
    log = AccessLog(str(tmp_path), buffer_bytes=0, flush_interval=60)

    log.write(record(1))
    log.write(record(2))
    log.close()

    assert log.errors == 2
    assert capsys.readouterr().err.count("dispa: access log") == 1  # reported once


def test_a_missing_directory_is_counted_not_raised(tmp_path) -> None:
    log = AccessLog(str(tmp_path / "missing" / "access.log"), buffer_bytes=0, flush_interval=60)

    log.write(record(1))

    assert log.errors == 1
    log.close()


def test_writes_after_close_are_dropped_not_raised(tmp_path) -> None:
    path = tmp_path / "access.log"
    log = AccessLog(str(path), buffer_bytes=0, flush_interval=60)
    log.close()

    log.write(record(1))
    log.flush()

    assert read_lines(path) == []
    assert log.errors == 1


async def test_disabled_log_does_nothing(tmp_path) -> None:
    log = NullAccessLog()

    log.start()
    log.write(record(1))
    log.flush()
    log.close()

    assert log.errors == 0
    assert list(tmp_path.iterdir()) == []
