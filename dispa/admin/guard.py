"""The admin API's door: every request to an admin server (single gateway, core, edge)
passes here before any handler runs.

1. **Host** must be one of the admin's own names (``access.py``): answered 421 otherwise,
   so a page that rebinds its domain to the admin's address cannot read it.
2. **Origin**, when present, must be the admin's own origin or one listed in
   ``admin.allowed_origins``: 403 otherwise. Listed origins get CORS headers and an answer
   to their preflight, so their pages can call the API; no other origin ever does.
3. **Content-Type**: a request that may change state (any method but GET, HEAD and
   OPTIONS) must name one of the types its route documents (``accepts``), even with an
   empty body: 415 otherwise. None of those types is one a browser may send cross-site
   without a preflight (text/plain, form encodings), and a preflight is never answered
   for an unlisted origin, so a web page cannot reach a write at all.
4. **Bodies**: each route takes at most its own size (413 from ``Content-Length``, before
   reading); all the bodies being read at once share one budget (503 beyond it; a larger
   body, a restore, is read alone), and a body must arrive within a deadline (408). What
   an unauthenticated peer can make the server hold is bounded by the budget or by the
   largest route's limit, whatever the number of connections.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from dispa.admin.access import AdminAccess

log = logging.getLogger("dispa.admin")

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
JSON = ("application/json",)
JSON_OR_YAML = ("application/json", "application/yaml", "application/x-yaml", "text/yaml")

SMALL_BODY = 64 * 1024  # a JSON command: rollback, member add, lease, report, purge
CONFIG_BODY = 4 * 1024**2  # a whole shared config
RESTORE_BODY = 64 * 1024**2  # a backup: the current config and the sessions
# Every body being read at once, together; a single body larger than this (a restore) is
# read only while no other is.
BODY_BUDGET = 16 * 1024**2
# A body must arrive within BODY_GRACE seconds plus one second per BODY_MIN_RATE bytes.
BODY_GRACE = 10.0
BODY_MIN_RATE = 1024 * 1024
# What a listed origin's page may send (its preflight is answered with these).
CORS_METHODS = "GET, HEAD, PUT, POST, DELETE"
CORS_HEADERS = "Content-Type, If-Match, X-Dispa-Author, X-Dispa-Note"


def accepts(*content_types: str, max_body: int = SMALL_BODY):
    """Declare what a state-changing handler takes: its content types and largest body.
    A handler without it takes ``application/json`` up to ``SMALL_BODY``."""

    def mark(handler):
        handler.admin_content_types = content_types
        handler.admin_max_body = max_body
        return handler

    return mark


class BodyBudget:
    """Bytes of request bodies the server may be reading at once: at most ``total``, or
    one body alone whatever its size (its route's own limit still applies)."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.in_use = 0

    def take(self, size: int) -> bool:
        if self.in_use and self.in_use + size > self.total:
            return False
        self.in_use += size
        return True

    def give_back(self, size: int) -> None:
        self.in_use -= size


def _refuse(status: int, message: str, **headers: str) -> web.Response:
    response = web.json_response({"error": message}, status=status, headers=headers or None)
    # Do not read (even to discard) what a refused request still sends.
    response.force_close()
    return response


def _local_address(request: web.Request) -> tuple[str, int]:
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    if not sockname:
        return "", 0
    return str(sockname[0]), int(sockname[1])


def admin_guard(access: AdminAccess, budget: BodyBudget | None = None):
    """The middleware for one admin server."""
    budget = budget or BodyBudget(BODY_BUDGET)

    @web.middleware
    async def guard(request: web.Request, handler) -> web.StreamResponse:
        host = request.headers.getall("Host", [])
        local_ip, local_port = _local_address(request)
        problem = (
            "send one Host header"
            if len(host) > 1
            else access.host_problem(host[0] if host else None, local_ip, local_port)
        )
        if problem is not None:
            return _refuse(421, problem)
        origin = request.headers.get("Origin")
        cors = {}
        if origin is not None:
            problem = access.origin_problem(origin, host[0])
            if problem is not None:
                return _refuse(403, problem)
            if access.is_listed_origin(origin):
                cors = {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}
                if (
                    request.method == "OPTIONS"
                    and "Access-Control-Request-Method" in request.headers
                ):
                    return web.Response(
                        status=204,
                        headers=cors
                        | {
                            "Access-Control-Allow-Methods": CORS_METHODS,
                            "Access-Control-Allow-Headers": CORS_HEADERS,
                            "Access-Control-Max-Age": "600",
                        },
                    )
        if request.method in SAFE_METHODS or request.match_info.http_exception is not None:
            response = await handler(request)
        else:
            response = await _state_change(request, handler, budget)
        if cors and not response.prepared:
            response.headers.update(cors)
        return response

    return guard


async def _state_change(request: web.Request, handler, budget: BodyBudget) -> web.StreamResponse:
    route_handler = request.match_info.handler
    content_types = getattr(route_handler, "admin_content_types", JSON)
    max_body = getattr(route_handler, "admin_max_body", SMALL_BODY)
    if "Content-Type" not in request.headers or request.content_type not in content_types:
        sent = request.headers.get("Content-Type", "none")[:100]
        return _refuse(
            415,
            f"{request.method} {request.path} takes Content-Type {' or '.join(content_types)}"
            f" (sent: {sent}); a request without a body sends it too",
        )
    length = request.content_length
    if length is not None and length > max_body:
        return _refuse(
            413, f"the body is {length} bytes; {request.path} takes at most {max_body} bytes"
        )
    reserved = length if length is not None else max_body
    if not budget.take(reserved):
        return _refuse(
            503,
            "the admin API is reading as many request bodies as it may; retry shortly",
            **{"Retry-After": "1"},
        )
    try:
        request = request.clone(client_max_size=max_body)
        try:
            await asyncio.wait_for(request.read(), BODY_GRACE + reserved / BODY_MIN_RATE)
        except TimeoutError:
            return _refuse(408, "the request body did not arrive in time")
        except web.HTTPRequestEntityTooLarge:
            return _refuse(413, f"{request.path} takes a body of at most {max_body} bytes")
        return await handler(request)
    finally:
        budget.give_back(reserved)
