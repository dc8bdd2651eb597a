"""Helpers every integration test module shares: free ports and bounded waiting."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from typing import Any

HOST = "127.0.0.1"


def free_ports(count: int) -> list[int]:
    """Distinct ports the kernel just handed out (all held open together, then released)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind((HOST, 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


class _Poll:
    """One bounded wait: try the predicate until it holds or the time is up."""

    def __init__(self, predicate: Callable[[], Any], timeout: float, what: str) -> None:
        self.predicate = predicate
        self.timeout = timeout
        self.what = what
        self.deadline = time.monotonic() + timeout
        self.last_error: BaseException | None = None

    def attempt(self) -> Any:
        """The predicate's truthy result, None to try again; raises once time is up."""
        try:
            result = self.predicate()
        except Exception as error:
            result, self.last_error = None, error
        if result:
            return result
        if time.monotonic() >= self.deadline:
            detail = f" (last error: {self.last_error!r})" if self.last_error else ""
            raise AssertionError(f"timed out after {self.timeout}s waiting for {self.what}{detail}")
        return None


def wait_until(
    predicate: Callable[[], Any], *, timeout: float = 10.0, interval: float = 0.05, what: str = ""
) -> Any:
    """Poll ``predicate`` until it returns something truthy; exceptions count as not yet."""
    poll = _Poll(predicate, timeout, what)
    while (result := poll.attempt()) is None:
        time.sleep(interval)
    return result


async def async_wait_until(
    predicate: Callable[[], Any], *, timeout: float = 10.0, interval: float = 0.05, what: str = ""
) -> Any:
    """``wait_until`` for async tests: sleeps on the loop so client tasks keep running."""
    poll = _Poll(predicate, timeout, what)
    while (result := poll.attempt()) is None:
        await asyncio.sleep(interval)
    return result
