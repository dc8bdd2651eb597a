"""A Snapshot: one validated config compiled into frozen runtime objects.

It is built once and swapped in with one assignment; an exchange keeps the snapshot it
started with until it ends. Filters are compiled per route into one runner per phase, so
the hot path calls only the hooks that do something.
"""

from __future__ import annotations

import time

from dispa.config.schema import Gateway, Route
from dispa.proxy.filters.global_rate_limit import GlobalRateLimit
from dispa.proxy.filters.headers import HeadersEdit
from dispa.proxy.filters.registry import FilterServices, build_filter
from dispa.proxy.filters.route_chain import FilterChain
from dispa.proxy.local_reply import LocalReply
from dispa.proxy.quota import LocalQuota, QuotaAccount
from dispa.proxy.router import CompiledRoute, Router
from dispa.proxy.upstream.pools import UpstreamRuntime

# A filter's wait on a route without an upstream (a direct response, a redirect).
FILTER_TIMEOUT = 30.0


class RouteRuntime:
    __slots__ = (
        "cache",
        "direct_reply",
        "filter_chain",
        "filter_timeout",
        "geo_nearest",
        "grpc_response_timeout",
        "log_phase",
        "name",
        "prefix",
        "prefix_rewrite",
        "redirect",
        "request_body_need",
        "request_body_phase",
        "request_phase",
        "response_body_need",
        "response_body_phase",
        "response_phase",
        "response_timeout",
        "timeout",
        "upstream",
        "upstream_request_phase",
    )

    def __init__(self, name: str, config: Route, upstream: UpstreamRuntime | None, filters: list):
        self.name = name
        self.upstream = upstream
        self.install_filters(filters)
        self.prefix = config.match.path_prefix
        # "" is a rewrite too (strip the prefix), so test for None, not for truth.
        rewrite = config.prefix_rewrite
        self.prefix_rewrite = rewrite.encode() if rewrite is not None else None
        self.timeout = config.timeout
        # How long a try waits for the response head: fixed per snapshot, so worked out here
        # rather than on every request.
        self.response_timeout = None
        self.grpc_response_timeout = None
        if upstream is not None:
            response_timeout = config.timeout or upstream.config.timeouts.response
            per_try = upstream.config.retry.per_try_timeout
            if per_try is not None and per_try < response_timeout:
                response_timeout = per_try
            self.response_timeout = response_timeout
            # gRPC calls skip timeouts.response: a watch's first message (which carries the
            # response head) may come at any time. None: the upstream's idle bounds the wait.
            grpc_timeout = config.timeout or upstream.config.timeouts.grpc_response
            if per_try is not None and (grpc_timeout is None or per_try < grpc_timeout):
                grpc_timeout = per_try
            self.grpc_response_timeout = grpc_timeout
        # How long a filter's pending work may take when no other timer bounds it.
        self.filter_timeout = config.timeout or (
            upstream.config.timeouts.response if upstream is not None else FILTER_TIMEOUT
        )
        self.geo_nearest = config.geo == "nearest"
        self.cache = config.cache
        self.redirect = config.redirect
        self.direct_reply = None
        if config.direct_response is not None:
            direct = config.direct_response
            headers = tuple((k.lower().encode(), v.encode()) for k, v in direct.headers.items())
            self.direct_reply = LocalReply(
                direct.status, "direct_response", direct.body.encode(), headers
            )

    def install_filters(self, filters: list) -> None:
        """The route's filters by stage (filters/route_chain.py); each phase is None when
        no filter has it, so the exchange skips it with one test. Copied out of the
        chain: one attribute fewer to follow per request."""
        chain = self.filter_chain = FilterChain(filters)
        self.request_phase = chain.request
        self.request_body_phase = chain.request_body
        self.upstream_request_phase = chain.upstream_request
        self.response_phase = chain.response
        self.response_body_phase = chain.response_body
        self.log_phase = chain.log
        self.request_body_need = chain.request_body_need
        self.response_body_need = chain.response_body_need

    def rewrite_target(self, target: bytes) -> bytes:
        """Replace the matched path prefix, keeping the rest of the path and the query.

        ``target`` is origin-form and normalised (request_target.origin_form made it so,
        absolute-form included), so the matched prefix is where the target begins."""
        rest = target[len(self.prefix.encode()) :]
        rewritten = self.prefix_rewrite + rest
        return rewritten if rewritten.startswith(b"/") else b"/" + rewritten

    def redirect_reply(self, request, scheme: str) -> LocalReply:
        redirect = self.redirect
        path = request.path
        if redirect.path is not None:
            path = redirect.path
        elif redirect.prefix is not None and self.prefix is not None:
            path = redirect.prefix + path[len(self.prefix) :]
        host = redirect.host or _host_header(request) or "localhost"
        location = f"{redirect.scheme or scheme}://{host}{path}".encode() + request.query
        return LocalReply(redirect.status, "redirect", b"", ((b"location", location),))


class Snapshot:
    """Everything a request needs from config, frozen at one revision."""

    __slots__ = (
        "applied_at",
        "config",
        "region_names",
        "revision",
        "router",
        "source",
        "upstreams",
    )

    def __init__(
        self,
        config: Gateway,
        revision: int,
        router: Router,
        upstreams: dict[str, UpstreamRuntime],
        source: str,
    ) -> None:
        self.config = config
        self.revision = revision
        self.router = router
        self.upstreams = upstreams
        self.source = source
        self.applied_at = time.time()
        self.region_names = tuple(region.name for region in config.regions)


def compile_snapshot(
    config: Gateway,
    revision: int,
    upstreams: dict[str, UpstreamRuntime],
    source: str = "",
    quota: QuotaAccount | None = None,
    filter_services: FilterServices | None = None,
) -> Snapshot:
    """Compile ``config``; global rate limits count through ``quota`` (local if None)."""
    quota = quota if quota is not None else LocalQuota()
    services = filter_services or FilterServices()
    named = _named_filters(config, services)
    global_filters = [_built(f, named, services, "filters") for f in config.filters]
    limits = [(limit, GlobalRateLimit(limit, quota)) for limit in config.rate_limits]
    compiled = []
    for index, route in enumerate(config.routes):
        name = route.name or f"route{index}"
        # Global limits run first: a refused request costs no other filter any work.
        applying = [f for limit, f in limits if not limit.routes or route.name in limit.routes]
        own = [_built(f, named, services, f"route '{name}'") for f in route.filters]
        filters = applying + global_filters + own
        if route.headers is not None:
            filters.append(HeadersEdit(route.headers))
        upstream = upstreams[route.upstream] if route.upstream else None
        runtime = RouteRuntime(name, route, upstream, filters)
        compiled.append(CompiledRoute(route.match, index, runtime))
    return Snapshot(config, revision, Router(compiled), upstreams, source)


def _named_filters(config: Gateway, services: FilterServices) -> dict:
    """``filter_definitions``: each built once, so every use shares one instance (and its
    state); its name is the definition's, in logs and on the request context."""
    named = {}
    for name, definition in config.filter_definitions.items():
        instance = build_filter(definition, services)
        instance.name = name
        named[name] = instance
    return named


def _built(entry, named: dict, services: FilterServices, where: str):
    use = getattr(entry, "use", None)
    if use is None:
        return build_filter(entry, services)
    if use not in named:  # validation reports it first; this guards direct callers
        raise ValueError(f"{where}: unknown filter definition '{use}'")
    return named[use]


def _host_header(request) -> str:
    """The Host header as the client sent it, port included, for absolute redirects."""
    for name, value in request.headers:
        if len(name) == 4 and name.lower() == b"host":
            return value.decode("latin-1")
    return request.host
