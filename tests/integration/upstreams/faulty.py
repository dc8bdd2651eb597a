"""A raw asyncio HTTP/1.1 upstream that misbehaves on purpose, for the integration tests.

``python faulty.py --port P [--name N] [--always-status 500]`` answers by path:

  /malformed        a response that is not HTTP at all
  /silent           reads the request and never answers (the connection stays open)
  /reset-mid-body   promises 100000 bytes, sends 1000, then resets the connection (RST)
  /trickle          a 200 response written one byte at a time (head and body)
  /hop              a 200 response carrying hop-by-hop headers the gateway must drop
  /close-delimited  a 200 response without length, ended by closing the connection
  /close-soon       a keep-alive 200 response, then the connection is closed 200 ms later
  /stall-mid-body   promises 100000 bytes, sends 1000, then goes silent (connection open)
  /answer-later     answers 200 after 300 ms without reading the request body
  /stats            JSON: connections accepted and open, requests seen so far
  anything else     200 "ok from NAME" (or ``--always-status`` for every path but /stats)

Every answer names the server in ``x-upstream``. Request bodies (content-length or
chunked) are read and dropped, so keep-alive stays in step.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import struct
import sys

STATE = {"connections": 0, "open": 0, "requests": 0}
TRICKLE_BODY = b"trickled body " * 10


async def read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> None:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        while True:
            size_line = await reader.readline()
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                    pass
                return
            await reader.readexactly(size + 2)
    length = int(headers.get("content-length", "0") or "0")
    if length:
        await reader.readexactly(length)


def response(status: int, body: bytes, name: str, extra: str = "") -> bytes:
    return (
        f"HTTP/1.1 {status} X\r\ncontent-length: {len(body)}\r\nx-upstream: {name}\r\n{extra}\r\n"
    ).encode() + body


async def handle(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, args: argparse.Namespace
) -> None:
    STATE["connections"] += 1
    STATE["open"] += 1
    name = args.name
    try:
        while True:
            request_line = await reader.readline()
            if not request_line:
                return
            headers: dict[str, str] = {}
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b"\n", b""):
                    break
                key, _, value = line.decode("latin-1").partition(":")
                headers[key.strip().lower()] = value.strip()
            STATE["requests"] += 1
            path = request_line.split(b" ")[1].decode("latin-1").split("?")[0]
            if path == "/answer-later":
                await asyncio.sleep(0.3)
                writer.write(response(200, b"late\n", name))
                await writer.drain()
                await reader.read()  # whatever else comes, until the peer closes
                return
            await read_body(reader, headers)
            if path == "/stats":
                writer.write(response(200, json.dumps(STATE).encode(), name))
            elif args.always_status:
                status = args.always_status
                writer.write(response(status, f"status {status} from {name}\n".encode(), name))
            elif path == "/malformed":
                writer.write(b"THIS IS NOT HTTP\r\n\r\n")
                await writer.drain()
                await asyncio.sleep(0.2)
                return
            elif path == "/silent":
                await asyncio.sleep(3600)
                return
            elif path == "/reset-mid-body":
                head = f"HTTP/1.1 200 OK\r\ncontent-length: 100000\r\nx-upstream: {name}\r\n\r\n"
                writer.write(head.encode() + b"r" * 1000)
                await writer.drain()
                await asyncio.sleep(0.1)
                sock = writer.get_extra_info("socket")
                # Linger 0: close() sends RST instead of FIN.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                writer.transport.abort()
                return
            elif path == "/stall-mid-body":
                head = f"HTTP/1.1 200 OK\r\ncontent-length: 100000\r\nx-upstream: {name}\r\n\r\n"
                writer.write(head.encode() + b"s" * 1000)
                await writer.drain()
                await asyncio.sleep(3600)
                return
            elif path == "/trickle":
                for byte in response(200, TRICKLE_BODY, name):
                    writer.write(bytes([byte]))
                    await writer.drain()
                    await asyncio.sleep(0.002)
            elif path == "/hop":
                writer.write(
                    response(
                        200,
                        b"hop\n",
                        name,
                        "Connection: x-up-secret\r\nX-Up-Secret: 1\r\nKeep-Alive: timeout=5\r\n"
                        "Proxy-Authenticate: Basic\r\nX-Up-Kept: 1\r\n",
                    )
                )
            elif path == "/close-delimited":
                writer.write(
                    f"HTTP/1.1 200 OK\r\nx-upstream: {name}\r\nconnection: close\r\n\r\n".encode()
                    + b"c" * 5000
                )
                await writer.drain()
                return
            elif path == "/close-soon":
                writer.write(response(200, b"closing soon\n", name))
                await writer.drain()
                await asyncio.sleep(0.2)
                return
            else:
                writer.write(response(200, f"ok from {name}\n".encode(), name))
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError, ValueError, IndexError):
        return
    finally:
        STATE["open"] -= 1
        writer.close()


async def serve(args: argparse.Namespace) -> None:
    server = await asyncio.start_server(
        lambda r, w: handle(r, w, args), "127.0.0.1", args.port, reuse_address=True
    )
    print(f"faulty upstream {args.name} on 127.0.0.1:{args.port}", file=sys.stderr, flush=True)
    async with server:
        await server.serve_forever()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--name", default="faulty")
    parser.add_argument("--always-status", type=int, default=0)
    asyncio.run(serve(parser.parse_args()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
