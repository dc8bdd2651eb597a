"""An HTTP/1.1 upstream whose speed and error rate are changed while it runs, for the AI tests.

``python degradable.py --port P --name N`` answers every path with 200 "ok from N" (header
``x-upstream: N``), except:

  POST /admin/degrade?delay_ms=D&error_percent=E   from now on wait D ms before answering,
                                                   and answer E % of requests with 500
                                                   (spread evenly, not at random)
  GET  /admin/stats                                JSON: requests answered, errors sent

Raw asyncio, keep-alive, no framework: it stays fast under the tests' load.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from urllib.parse import parse_qs

STATE = {"delay_ms": 0.0, "error_percent": 0.0, "requests": 0, "errors": 0, "error_debt": 0.0}


def response(status: int, body: bytes, name: str) -> bytes:
    return (
        f"HTTP/1.1 {status} X\r\ncontent-length: {len(body)}\r\nx-upstream: {name}\r\n\r\n"
    ).encode() + body


async def answer(path: str, query: str, name: str) -> bytes:
    if path == "/admin/degrade":
        params = parse_qs(query)
        STATE["delay_ms"] = float(params.get("delay_ms", ["0"])[0])
        STATE["error_percent"] = float(params.get("error_percent", ["0"])[0])
        return response(200, json.dumps(STATE).encode(), name)
    if path == "/admin/stats":
        return response(200, json.dumps(STATE).encode(), name)
    STATE["requests"] += 1
    if STATE["delay_ms"]:
        await asyncio.sleep(STATE["delay_ms"] / 1000)
    # Errors spread evenly: every request adds its share, a whole one becomes a 500.
    STATE["error_debt"] += STATE["error_percent"] / 100
    if STATE["error_debt"] >= 1.0:
        STATE["error_debt"] -= 1.0
        STATE["errors"] += 1
        return response(500, f"failing on purpose: {name}\n".encode(), name)
    return response(200, f"ok from {name}\n".encode(), name)


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, name: str) -> None:
    try:
        while True:
            request_line = await reader.readline()
            if not request_line:
                return
            length = 0
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b"\n", b""):
                    break
                key, _, value = line.decode("latin-1").partition(":")
                if key.strip().lower() == "content-length":
                    length = int(value.strip() or "0")
            if length:
                await reader.readexactly(length)
            target = request_line.split(b" ")[1].decode("latin-1")
            path, _, query = target.partition("?")
            writer.write(await answer(path, query, name))
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError, ValueError, IndexError):
        return
    finally:
        writer.close()


async def serve(port: int, name: str) -> None:
    server = await asyncio.start_server(
        lambda r, w: handle(r, w, name), "127.0.0.1", port, reuse_address=True
    )
    print(f"degradable upstream {name} on 127.0.0.1:{port}", file=sys.stderr, flush=True)
    async with server:
        await server.serve_forever()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--name", default="degradable")
    arguments = parser.parse_args()
    asyncio.run(serve(arguments.port, arguments.name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
