"""The file provider on a real file: edits show up, a bad edit keeps the last good set."""

from __future__ import annotations

import json
import os
from pathlib import Path

from support import async_wait_until

from dispa.discovery.backoff import RetryBackoff
from dispa.discovery.file_provider import FileProvider
from dispa.discovery.provider import DiscoveredEndpoint
from dispa.discovery.watcher import DiscoveryWatcher


class Latest:
    def __init__(self) -> None:
        self.merged: dict = {}
        self.calls = 0

    def __call__(self, merged: dict) -> None:
        self.merged = merged
        self.calls += 1


def write(path: Path, text: str, bump: int) -> None:
    path.write_text(text)
    # Some file systems keep mtime in whole seconds: make each edit visibly newer.
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + bump * 1_000_000_000))


async def test_edits_apply_and_a_bad_edit_keeps_the_last_good_set(tmp_path: Path) -> None:
    path = tmp_path / "endpoints.yaml"
    write(path, "web:\n  - {address: 10.0.0.1:80, weight: 5, region: eu}\n  - 10.0.0.2:80\n", 1)
    latest = Latest()
    provider = FileProvider("files", path, interval=0.05, backoff=RetryBackoff(0.05, 0.1))
    watcher = DiscoveryWatcher([provider], latest, throttle=0.0)
    await watcher.start()
    try:
        want = [DiscoveredEndpoint("10.0.0.1:80", 5, "eu"), DiscoveredEndpoint("10.0.0.2:80")]
        await async_wait_until(lambda: latest.merged.get("web@files") == want, timeout=5)

        write(path, "web:\n  - {address: 10.0.0.1:80, weight: 9000}\n", 2)
        await async_wait_until(lambda: watcher.statistics()[0]["status"] == "failing", timeout=5)
        assert "web.0.weight" in watcher.statistics()[0]["last_error"]
        assert latest.merged["web@files"] == want

        path.unlink()  # a missing file is a failure too, not an empty pool
        await async_wait_until(
            lambda: "FileNotFoundError" in watcher.statistics()[0]["last_error"], timeout=5
        )
        assert latest.merged["web@files"] == want

        json_path = tmp_path / "endpoints.json"
        provider.path = json_path  # the same loop reads JSON by the file's suffix
        write(json_path, json.dumps({"api": [{"address": "10.0.0.3:81"}]}), 3)
        await async_wait_until(
            lambda: latest.merged == {"api@files": [DiscoveredEndpoint("10.0.0.3:81")]},
            timeout=5,
        )
        assert watcher.statistics()[0]["status"] == "ok"
        calls, read_before = latest.calls, provider.state.last_success
        write(json_path, json.dumps({"api": ["10.0.0.3:81"]}), 4)  # same endpoints, new mtime
        await async_wait_until(lambda: provider.state.last_success != read_before, timeout=5)
        assert latest.calls == calls  # an equal view is not handed on again
    finally:
        await watcher.stop()
