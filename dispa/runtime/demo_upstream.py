"""A small upstream service for the demo and the integration tests.

``python -m dispa.runtime.demo_upstream --port 9001 --name eu-1`` serves:
  GET  /                 "hello from NAME"
  GET  /healthz          200 while healthy (POST /admin/health/{up,down} flips it)
  GET  /status/{code}    answers with that status
  GET  /slow?ms=N        waits N ms, then answers
  GET  /bytes/{n}        streams n bytes (chunked), without holding them in memory
  POST /echo             streams the request body back
  POST /count            reads the body and answers its size and sha256
  GET  /headers          the request headers as JSON
  GET  /reset            closes the connection without an answer
  GET  /cache/{key}      a response for caches, shaped by query parameters: cc
                         (Cache-Control, default max-age=60), etag, lm (Last-Modified),
                         expires, vary, tags (Cache-Tag), status, delay_ms; answers 304
                         to a matching If-None-Match / If-Modified-Since. The body counts
                         the full answers given for that key: "NAME KEY #N"
  GET  /admin/cache-hits how many requests each /cache/{key} received (JSON)
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import sys

from aiohttp import web

CHUNK = 64 * 1024


def build_app(name: str) -> web.Application:
    state = {"healthy": True, "requests": 0}

    @web.middleware
    async def count(request, handler):
        state["requests"] += 1
        return await handler(request)

    async def hello(request):
        return web.Response(text=f"hello from {name}\n", headers={"x-upstream": name})

    async def healthz(request):
        return web.Response(status=200 if state["healthy"] else 503, text="ok\n")

    async def set_health(request):
        state["healthy"] = request.match_info["state"] == "up"
        return web.Response(text="done\n")

    async def status(request):
        code = int(request.match_info["code"])
        return web.Response(
            status=code, text=f"status {code} from {name}\n", headers={"x-upstream": name}
        )

    async def slow(request):
        await asyncio.sleep(int(request.query.get("ms", "1000")) / 1000)
        return web.Response(text=f"slow hello from {name}\n", headers={"x-upstream": name})

    async def stream_bytes(request):
        remaining = int(request.match_info["n"])
        response = web.StreamResponse(headers={"x-upstream": name})
        response.enable_chunked_encoding()
        await response.prepare(request)
        block = b"x" * CHUNK
        while remaining > 0:
            piece = block if remaining >= CHUNK else block[:remaining]
            await response.write(piece)
            remaining -= len(piece)
        await response.write_eof()
        return response

    async def echo(request):
        response = web.StreamResponse(headers={"x-upstream": name})
        response.enable_chunked_encoding()
        await response.prepare(request)
        async for piece in request.content.iter_chunked(CHUNK):
            await response.write(piece)
        await response.write_eof()
        return response

    async def count_body(request):
        digest = hashlib.sha256()
        size = 0
        async for piece in request.content.iter_chunked(CHUNK):
            digest.update(piece)
            size += len(piece)
        return web.json_response({"size": size, "sha256": digest.hexdigest(), "upstream": name})

    async def headers(request):
        return web.json_response(
            {"upstream": name, "headers": dict(request.headers), "path": request.path_qs}
        )

    async def reset(request):
        request.transport.abort()
        await asyncio.sleep(0.1)
        return web.Response()

    cache_hits: dict[str, int] = {}
    cache_full_answers: dict[str, int] = {}

    async def cacheable(request):
        key = request.match_info["key"]
        query = request.query
        cache_hits[key] = cache_hits.get(key, 0) + 1
        if "delay_ms" in query:
            await asyncio.sleep(int(query["delay_ms"]) / 1000)
        headers = {"x-upstream": name, "Cache-Control": query.get("cc", "max-age=60")}
        for param, header in (
            ("etag", "ETag"),
            ("lm", "Last-Modified"),
            ("expires", "Expires"),
            ("vary", "Vary"),
            ("tags", "Cache-Tag"),
        ):
            if param in query:
                headers[header] = query[param]
        if query.get("cc") == "":
            del headers["Cache-Control"]
        etag = query.get("etag")
        if etag and request.headers.get("If-None-Match") in (etag, "*"):
            return web.Response(status=304, headers=headers)
        modified = query.get("lm")
        if modified and request.headers.get("If-Modified-Since") == modified:
            return web.Response(status=304, headers=headers)
        cache_full_answers[key] = cache_full_answers.get(key, 0) + 1
        status_code = int(query.get("status", "200"))
        body = f"{name} {key} #{cache_full_answers[key]}\n"
        return web.Response(status=status_code, text=body, headers=headers)

    async def cache_hits_report(request):
        return web.json_response({"requests": cache_hits, "full_answers": cache_full_answers})

    async def stats(request):
        return web.json_response({"requests": state["requests"], "name": name})

    app = web.Application(middlewares=[count], client_max_size=0)
    app.router.add_get("/healthz", healthz)
    app.router.add_post("/admin/health/{state}", set_health)
    app.router.add_get("/admin/stats", stats)
    app.router.add_get("/status/{code}", status)
    app.router.add_get("/slow", slow)
    app.router.add_get("/bytes/{n}", stream_bytes)
    app.router.add_post("/echo", echo)
    app.router.add_post("/count", count_body)
    app.router.add_put("/count", count_body)
    app.router.add_get("/headers", headers)
    app.router.add_get("/reset", reset)
    app.router.add_get("/cache/{key}", cacheable)
    app.router.add_get("/admin/cache-hits", cache_hits_report)
    app.router.add_route("*", "/{tail:.*}", hello)
    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Dispa demo upstream")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--name", default="demo")
    args = parser.parse_args(argv)
    print(f"demo upstream {args.name} on {args.host}:{args.port}", file=sys.stderr, flush=True)
    web.run_app(
        build_app(args.name),
        host=args.host,
        port=args.port,
        print=None,
        access_log=None,
        handle_signals=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
