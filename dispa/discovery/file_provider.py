"""The file provider: a YAML or JSON file ``{pool: [{address, weight, region}]}``, polled.

Polling the modification time (and size) works on every file system, including the
bind-mounted ConfigMaps and network shares where inotify stays silent. A file that does not
parse keeps the last good view and reports the error; a missing file is an error too (a
deploy that moves the file must not empty every pool). Write the file atomically (write a
temporary file, then rename it over the old one): a half-written file may still parse.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from dispa.discovery.backoff import RetryBackoff
from dispa.discovery.documents import parse_json, parse_yaml, read_file_text
from dispa.discovery.parse import parse_pools
from dispa.discovery.provider import FollowingProvider, Pools


def read_pools_file(path: Path) -> Pools:
    """The file's pools; BadDocument (naming the file) past the bounds of documents.py."""
    text = read_file_text(path)
    parse = parse_json if path.suffix == ".json" else parse_yaml
    data = parse(text, str(path))
    return parse_pools(data if data is not None else {})


class FileProvider(FollowingProvider):
    kind = "file"

    def __init__(
        self,
        name: str,
        path: str | Path,
        interval: float = 1.0,
        backoff: RetryBackoff | None = None,
    ) -> None:
        super().__init__(name, backoff or RetryBackoff(initial=interval, maximum=30.0))
        self.path = Path(path)
        self.interval = interval

    async def follow(self, publish) -> None:
        seen: tuple[int, int] | None = None
        while True:
            stat = os.stat(self.path)
            signature = (stat.st_mtime_ns, stat.st_size)
            if signature != seen:
                # Read in a thread: a file on a slow network share must not stall the loop.
                pools = await asyncio.to_thread(read_pools_file, self.path)
                seen = signature
                await publish(pools)
            await asyncio.sleep(self.interval)
