"""The access log: one JSON object per line, written in batches.

Records collect in memory and reach the file in one write per buffer (when it fills, and
every ``flush_interval`` seconds), so a busy gateway pays a syscall per batch, not per
request. The log sits on the request path's ``on_log`` step, which must never raise:
every failure is counted in ``errors`` and reported once on stderr.

The caller builds each record; these are the fields Dispa writes:

- ``time``: ISO 8601 UTC time the request head arrived, e.g. ``2024-05-01T12:00:00.123Z``
- ``request_id``: the id sent upstream and echoed in the response
- ``client``: client address as ``host:port``
- ``method``, ``path``, ``host``: from the request
- ``status``: the status sent to the client
- ``route``, ``upstream``, ``endpoint``: what served it (null when nothing did)
- ``duration_ms``: request head received to response end
- ``bytes_in``, ``bytes_out``: body bytes received from and sent to the client
- ``reason``: the local-reply reason (see ``dispa/proxy/local_reply.py``), null otherwise
- ``attempts``: upstream attempts made, retries included
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys

STDOUT = "-"


class AccessLog:
    enabled = True

    def __init__(self, path: str, buffer_bytes: int, flush_interval: float) -> None:
        self.path = path
        self.flush_interval = flush_interval
        # No interval means no timer to push a half-full buffer out, so write at once.
        self._flush_at = buffer_bytes if flush_interval > 0 else 0
        self._buffer = bytearray()
        self._fd: int | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False
        self._reported = False
        self.errors = 0

    def write(self, record: dict) -> None:
        """Queue one record; writes out the buffer once it holds ``buffer_bytes``."""
        if self._closed:
            self._fail("record written after close")
            return
        try:
            # default=str: a stray non-JSON value (bytes, a datetime) must not lose the line.
            line = json.dumps(record, separators=(",", ":"), default=str)
        except (TypeError, ValueError) as error:
            self._fail(f"record not serialisable: {error}")
            return
        buffer = self._buffer
        buffer += line.encode()
        buffer += b"\n"
        if len(buffer) >= self._flush_at:
            self.flush()

    def start(self) -> None:
        """Flush every ``flush_interval`` seconds on the running event loop."""
        if self._timer is None and not self._closed and self.flush_interval > 0:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self.flush_interval, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self.flush()
        self.start()

    def flush(self) -> None:
        if not self._buffer:
            return
        data = bytes(self._buffer)
        # Dropped on failure too: a log that cannot be written must not grow memory.
        self._buffer.clear()
        try:
            self._write_out(data)
        except (OSError, ValueError) as error:  # ValueError: stdout closed under us
            self._fail(str(error))

    def _write_out(self, data: bytes) -> None:
        if self.path == STDOUT:
            # Looked up on each flush: tests and embedding processes swap sys.stdout.
            stdout = sys.stdout.buffer
            stdout.write(data)
            stdout.flush()
            return
        if self._fd is None:
            # Opened on first use (and again after a failed open), so a log directory that
            # appears later still gets the log.
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]

    def close(self) -> None:
        """Flush what is buffered, stop the timer and close the file. Safe to call twice."""
        if self._closed:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.flush()
        self._closed = True
        if self._fd is not None:
            try:
                os.close(self._fd)
            except OSError as error:
                self._fail(str(error))
            self._fd = None

    def _fail(self, message: str) -> None:
        self.errors += 1
        if self._reported:
            return
        self._reported = True
        # If stderr itself is gone, counting is all that is left.
        with contextlib.suppress(Exception):
            sys.stderr.write(
                f"dispa: access log {self.path}: {message} "
                "(further errors are counted, not shown)\n"
            )


class NullAccessLog:
    """The access log when it is disabled: same interface, does nothing."""

    errors = 0
    enabled = False

    def write(self, record: dict) -> None:
        pass

    def start(self) -> None:
        pass

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass
