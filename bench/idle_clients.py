"""Open N idle HTTP/1.1 keep-alive connections to a server and hold them.

Run by bench/run.py in its own process (stdlib only), so the harness can measure the
server's memory while this process holds the connections:

    python bench/idle_clients.py --host 127.0.0.1 --port 8080 --count 10000

Each connection sends one ``GET / HTTP/1.1`` (Host, Connection: keep-alive), reads the
full response, then stays open and idle. When all are open the client prints one JSON
line on stdout (``{"event": "ready", ...}``) and then serves commands from stdin, one a
line:

    check   print {"event": "check", "open": N, "closed": M}: how many the server kept
    (EOF)   close every connection (with RST, so no TIME_WAIT) and exit

All waits are bounded: per connection by --timeout, overall by --deadline.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import resource
import socket
import struct
import sys
import time


def raise_nofile(want: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= want:
        return soft
    new_hard = hard if hard == resource.RLIM_INFINITY or hard >= want else want
    for limits in ((want, new_hard), (hard, hard)):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, limits)
            break
        except (ValueError, OSError):
            continue
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


async def read_response(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> int:
    """Read one HTTP/1.1 response; return its status code."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = await loop.sock_recv(sock, 65536)
        if not chunk:
            raise ConnectionError("closed before response headers")
        buf += chunk
        if len(buf) > 1 << 20:
            raise ConnectionError("response headers too large")
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        need = int(headers["content-length"])
        while len(body) < need:
            chunk = await loop.sock_recv(sock, 65536)
            if not chunk:
                raise ConnectionError("closed inside response body")
            body += chunk
    elif "chunked" in headers.get("transfer-encoding", "").lower():
        while not body.endswith(b"0\r\n\r\n"):
            chunk = await loop.sock_recv(sock, 65536)
            if not chunk:
                raise ConnectionError("closed inside chunked body")
            body += chunk
            if len(body) > 1 << 20:
                raise ConnectionError("chunked body too large")
    elif status not in (204, 304) and status >= 200:
        raise ConnectionError("response without length would close the connection")
    if headers.get("connection", "").lower() == "close":
        raise ConnectionError("server answered Connection: close")
    return status


async def open_one(
    loop: asyncio.AbstractEventLoop, host: str, port: int, request: bytes, timeout: float
) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        async with asyncio.timeout(timeout):
            await loop.sock_connect(sock, (host, port))
            await loop.sock_sendall(sock, request)
            status = await read_response(loop, sock)
        if status != 200:
            raise ConnectionError(f"status {status}")
    except BaseException:
        sock.close()
        raise
    return sock


async def open_all(args: argparse.Namespace) -> tuple[list[socket.socket], dict[str, int]]:
    loop = asyncio.get_running_loop()
    request = (
        f"GET {args.path} HTTP/1.1\r\nHost: {args.host_header or f'{args.host}:{args.port}'}\r\n"
        "User-Agent: dispa-bench-idle\r\nConnection: keep-alive\r\n\r\n"
    ).encode()
    sem = asyncio.Semaphore(args.concurrency)
    socks: list[socket.socket] = []
    errors: dict[str, int] = {}

    async def worker() -> None:
        async with sem:
            try:
                socks.append(await open_one(loop, args.host, args.port, request, args.timeout))
            except (OSError, ConnectionError, TimeoutError, ValueError, IndexError) as exc:
                key = type(exc).__name__ + (f": {exc}" if str(exc) else "")
                errors[key[:120]] = errors.get(key[:120], 0) + 1

    tasks = [asyncio.create_task(worker()) for _ in range(args.count)]
    try:
        async with asyncio.timeout(args.deadline):
            await asyncio.gather(*tasks)
    except TimeoutError:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        errors["overall deadline"] = errors.get("overall deadline", 0) + sum(
            1 for t in tasks if t.cancelled()
        )
    return socks, errors


def count_open(socks: list[socket.socket]) -> tuple[int, int]:
    """Peek each socket without blocking: EOF or error means the server closed it."""
    open_, closed = 0, 0
    for s in socks:
        try:
            data = s.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except BlockingIOError:
            open_ += 1
            continue
        except OSError:
            closed += 1
            continue
        if data:
            open_ += 1  # unexpected bytes, but the connection is alive
        else:
            closed += 1
    return open_, closed


def emit(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--host-header", default="")
    p.add_argument("--path", default="/")
    p.add_argument("--count", type=int, default=10_000)
    p.add_argument("--concurrency", type=int, default=100, help="connections opening at once")
    p.add_argument("--timeout", type=float, default=15.0, help="per-connection timeout, s")
    p.add_argument("--deadline", type=float, default=180.0, help="overall timeout, s")
    args = p.parse_args()

    limit = raise_nofile(args.count + 256)
    if limit < args.count + 64:
        emit({"event": "error", "error": f"RLIMIT_NOFILE is {limit}, need {args.count + 64}"})
        return 2

    t0 = time.monotonic()
    socks, errors = asyncio.run(open_all(args))
    emit(
        {
            "event": "ready",
            "opened": len(socks),
            "failed": args.count - len(socks),
            "errors": errors,
            "seconds": round(time.monotonic() - t0, 2),
        }
    )
    try:
        while line := sys.stdin.readline():
            if line.strip() == "check":
                open_, closed = count_open(socks)
                emit({"event": "check", "open": open_, "closed": closed})
    finally:
        linger = struct.pack("ii", 1, 0)
        for s in socks:
            with contextlib.suppress(OSError):
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
            s.close()
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt, BrokenPipeError):
        sys.exit(main())
