"""Filters (headers, token bucket, local rate limit) and the snapshot that wires them per route."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dispa.config.load import load_text
from dispa.config.schema import HeadersFilter, LocalRateLimitFilter
from dispa.proxy.context import RequestContext
from dispa.proxy.filters import local_rate_limit
from dispa.proxy.filters.base import PHASES, Filter
from dispa.proxy.filters.headers import HeadersEdit
from dispa.proxy.filters.local_rate_limit import LocalRateLimit
from dispa.proxy.filters.registry import FILTER_TYPES, build_filter
from dispa.proxy.filters.token_bucket import TokenBucket
from dispa.proxy.http1.parser import RequestParser
from dispa.proxy.local_reply import LocalReply
from dispa.proxy.snapshot import RouteRuntime, compile_snapshot
from dispa.proxy.upstream.pools import UpstreamSet


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def request_of(raw: bytes):
    return RequestParser(65536).feed(raw)[0]


def context(headers=(), client_ip="10.0.0.1", route_name="r", host=b"a") -> RequestContext:
    raw = b"GET / HTTP/1.1\r\nHost: " + host + b"\r\n"
    raw += b"".join(name + b": " + value + b"\r\n" for name, value in headers) + b"\r\n"
    ctx = RequestContext(request_of(raw), client_ip, 40000, "public", "http", 0.0)
    ctx.route_name = route_name
    return ctx


# ------------------------------------------------------------------ the Filter interface


def test_phases_are_named_in_the_order_they_run():
    assert PHASES == (
        "on_request",
        "on_request_body",
        "on_upstream_request",
        "on_response",
        "on_response_body",
        "on_log",
    )


def test_a_plain_filter_has_no_handlers_and_continues():
    plain = Filter()
    assert [plain.handler(phase) for phase in PHASES] == [None] * len(PHASES)
    assert plain.on_request(None) is None
    assert plain.on_response(None, [(b"a", b"1")]) == [(b"a", b"1")]
    assert plain.on_log(None) is None


def test_a_filter_is_wired_only_into_the_phases_it_overrides():
    class Logs(Filter):
        def on_log(self, ctx):
            return None

    logs = Logs()
    assert logs.handler("on_request") is None
    assert logs.handler("on_response") is None
    assert logs.handler("on_log") == logs.on_log


def test_registry():
    # Other types register as their modules are imported (test_filter_registry checks all).
    assert {"headers", "local_rate_limit"} <= set(FILTER_TYPES)
    assert isinstance(build_filter(HeadersFilter(type="headers")), HeadersEdit)
    built = build_filter(LocalRateLimitFilter(type="local_rate_limit", rate=1))
    assert isinstance(built, LocalRateLimit)


# ------------------------------------------------------------------ headers


def test_request_add_replaces_a_header_of_the_same_name_whatever_its_case():
    edit = HeadersEdit(HeadersFilter(type="headers", request_add={"X-Env": "prod"}))
    ctx = context([(b"x-env", b"dev"), (b"X-ENV", b"test"), (b"Accept", b"*/*")])
    original = list(ctx.request_headers)
    assert edit.on_request(ctx) is None
    assert ctx.request_headers == [(b"Host", b"a"), (b"Accept", b"*/*"), (b"x-env", b"prod")]
    assert ctx.request.headers == original  # replaced, never edited in place


def test_request_remove():
    edit = HeadersEdit(HeadersFilter(type="headers", request_remove=("Cookie", "x-debug")))
    ctx = context([(b"cookie", b"a=1"), (b"X-Debug", b"1"), (b"X-Keep", b"1")])
    edit.on_request(ctx)
    assert ctx.request_headers == [(b"Host", b"a"), (b"X-Keep", b"1")]


def test_response_add_and_remove():
    edit = HeadersEdit(
        HeadersFilter(
            type="headers",
            response_add={"Strict-Transport-Security": "max-age=60", "X-Served-By": "dispa"},
            response_remove=("Server",),
        )
    )
    headers = [(b"Server", b"nginx"), (b"x-served-by", b"app"), (b"Content-Type", b"text/html")]
    assert edit.on_response(None, headers) == [
        (b"Content-Type", b"text/html"),
        (b"strict-transport-security", b"max-age=60"),
        (b"x-served-by", b"dispa"),
    ]
    assert headers[0] == (b"Server", b"nginx")


def test_adding_and_removing_the_same_name_adds_it_once():
    edit = HeadersEdit(
        HeadersFilter(type="headers", response_add={"x-a": "new"}, response_remove=("x-a",))
    )
    assert edit.on_response(None, [(b"X-A", b"old")]) == [(b"x-a", b"new")]


def test_headers_handler_is_none_for_phases_with_nothing_to_do():
    request_only = HeadersEdit(HeadersFilter(type="headers", request_add={"a": "1"}))
    assert request_only.handler("on_request") == request_only.on_request
    assert request_only.handler("on_response") is None
    assert request_only.handler("on_log") is None
    response_only = HeadersEdit(HeadersFilter(type="headers", response_remove=("server",)))
    assert response_only.handler("on_request") is None
    assert response_only.handler("on_response") == response_only.on_response
    empty = HeadersEdit(HeadersFilter(type="headers"))
    assert [empty.handler(phase) for phase in PHASES] == [None] * len(PHASES)


# ------------------------------------------------------------------ token bucket


def test_token_bucket_starts_full_and_refills_at_its_rate():
    bucket = TokenBucket(rate=2.0, burst=3.0, now=0.0)
    assert [bucket.take(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(0.0) == pytest.approx(0.5)  # one token takes 1/rate seconds
    assert bucket.take(0.25) == pytest.approx(0.25)
    assert bucket.take(0.5) == 0.0
    assert bucket.take(0.5) == pytest.approx(0.5)


def test_token_bucket_never_holds_more_than_its_burst():
    bucket = TokenBucket(rate=10.0, burst=2.0, now=0.0)
    granted = [bucket.take(3600.0) for _ in range(3)]
    assert granted[:2] == [0.0, 0.0]
    assert granted[2] > 0


def test_full_at():
    bucket = TokenBucket(rate=1.0, burst=2.0, now=0.0)
    assert bucket.full_at(0.0)
    bucket.take(0.0)
    bucket.take(0.0)
    assert not bucket.full_at(1.5)
    assert bucket.full_at(2.0)


@given(
    rate=st.floats(min_value=0.1, max_value=1000),
    burst=st.integers(min_value=1, max_value=50),
    steps=st.lists(st.floats(min_value=0, max_value=5), min_size=1, max_size=60),
)
def test_token_bucket_grants_at_most_burst_plus_rate_times_elapsed(rate, burst, steps):
    bucket = TokenBucket(rate, float(burst), 0.0)
    now = 0.0
    granted = 0
    for step in steps:
        now += step
        wait = bucket.take(now)
        assert wait >= 0.0
        if wait == 0.0:
            granted += 1
        else:
            # The promised wait is honest: after it, a token is there.
            assert bucket.tokens + wait * rate == pytest.approx(1.0, rel=1e-6, abs=1e-9)
    assert granted <= burst + rate * now + 1e-6


# ------------------------------------------------------------------ local rate limit


def limiter(clock, **config) -> LocalRateLimit:
    return LocalRateLimit(LocalRateLimitFilter(type="local_rate_limit", **config), clock=clock)


def assert_429(answer, retry_after: int) -> None:
    assert isinstance(answer, LocalReply)
    assert answer.status == 429
    assert answer.reason == "rate_limited"
    assert (b"retry-after", str(retry_after).encode()) in answer.headers


def test_burst_then_429_with_retry_after_then_refill():
    clock = Clock()
    limit = limiter(clock, rate=0.5, burst=3)
    ctx = context()
    assert [limit.on_request(ctx) for _ in range(3)] == [None, None, None]
    assert_429(limit.on_request(ctx), 2)  # one token every 2 s
    clock.now += 1.0
    assert_429(limit.on_request(ctx), 1)  # half a token there: 1 s to go
    clock.now += 1.0
    assert limit.on_request(ctx) is None
    assert_429(limit.on_request(ctx), 2)
    assert limit.limited == 3


def test_retry_after_is_whole_seconds_and_at_least_one():
    clock = Clock()
    limit = limiter(clock, rate=100, burst=1)
    ctx = context()
    assert limit.on_request(ctx) is None
    assert_429(limit.on_request(ctx), 1)  # 10 ms rounds up to 1 s
    slow = limiter(clock, rate=0.1, burst=1)
    assert slow.on_request(ctx) is None
    assert_429(slow.on_request(ctx), 10)
    clock.now += 0.5
    assert_429(slow.on_request(ctx), math.ceil(9.5))


def test_burst_defaults_to_the_rate_rounded_up_and_at_least_one():
    clock = Clock()
    assert limiter(clock, rate=5).burst == 5
    assert limiter(clock, rate=2.5).burst == 3
    assert limiter(clock, rate=0.2).burst == 1
    limit = limiter(clock, rate=5)
    ctx = context()
    assert sum(limit.on_request(ctx) is None for _ in range(20)) == 5


def test_keyed_by_source_ip():
    clock = Clock()
    limit = limiter(clock, rate=1, burst=1)
    assert limit.on_request(context(client_ip="10.0.0.1")) is None
    assert limit.on_request(context(client_ip="10.0.0.1")) is not None
    assert limit.on_request(context(client_ip="10.0.0.2")) is None


def test_keyed_by_route():
    clock = Clock()
    limit = limiter(clock, key="route", rate=1, burst=2)
    for _ in range(2):
        assert limit.on_request(context(client_ip="1.1.1.1", route_name="a")) is None
    assert limit.on_request(context(client_ip="2.2.2.2", route_name="a")) is not None
    assert limit.on_request(context(client_ip="2.2.2.2", route_name="b")) is None


def test_keyed_by_header_case_insensitively():
    clock = Clock()
    limit = limiter(clock, key="header:X-Api-Key", rate=1, burst=1)
    assert limit.on_request(context([(b"x-api-key", b"k1")])) is None
    assert limit.on_request(context([(b"X-API-KEY", b"k1")], client_ip="9.9.9.9")) is not None
    assert limit.on_request(context([(b"X-Api-Key", b"k2")])) is None


def test_header_key_reads_headers_as_edited_by_earlier_filters():
    clock = Clock()
    limit = limiter(clock, key="header:x-tenant", rate=1, burst=1)
    ctx = context([(b"x-tenant", b"a")])
    ctx.request_headers = [(b"x-tenant", b"b")]
    assert limit.on_request(ctx) is None
    assert limit.on_request(context([(b"x-tenant", b"a")])) is None
    assert limit.on_request(context([(b"x-tenant", b"b")])) is not None


def test_rate_limit_runs_on_request_only():
    limit = limiter(Clock(), rate=1)
    assert limit.handler("on_request") == limit.on_request
    assert limit.handler("on_response") is None
    assert limit.handler("on_log") is None


def test_idle_keys_are_swept_once_the_table_is_large(monkeypatch):
    monkeypatch.setattr(local_rate_limit, "_SWEEP_AT", 100)
    clock = Clock()
    limit = limiter(clock, rate=10, burst=1)
    for index in range(100):
        limit.on_request(context(client_ip=f"10.0.{index // 256}.{index % 256}"))
    assert len(limit.buckets) == 100
    clock.now += 1.0  # every bucket is full again
    limit.on_request(context(client_ip="192.168.0.1"))
    assert list(limit.buckets) == ["192.168.0.1"]


def test_a_flood_of_distinct_keys_keeps_the_table_bounded(monkeypatch):
    # Buckets refill slower than new keys arrive, so none is ever full when swept.
    monkeypatch.setattr(local_rate_limit, "_SWEEP_AT", 100)
    clock = Clock()
    limit = limiter(clock, key="header:x-key", rate=0.001, burst=1)
    sizes = []
    for index in range(5000):
        clock.now += 0.001
        limit.on_request(context([(b"x-key", str(index).encode())]))
        sizes.append(len(limit.buckets))
    assert max(sizes) <= 100


def test_recently_used_keys_survive_a_forced_sweep(monkeypatch):
    monkeypatch.setattr(local_rate_limit, "_SWEEP_AT", 10)
    clock = Clock()
    limit = limiter(clock, key="header:x-key", rate=0.001, burst=1)
    hot = context([(b"x-key", b"hot")])
    assert limit.on_request(hot) is None
    for index in range(50):
        clock.now += 0.01
        assert limit.on_request(hot) is not None  # the hot key stays limited throughout
        limit.on_request(context([(b"x-key", str(index).encode())]))
    assert b"hot" in limit.buckets


# ------------------------------------------------------------------ snapshot


SNAPSHOT_CONFIG = """
listeners: [{name: public, address: "127.0.0.1:0"}]
upstreams:
  - name: app
    endpoints: [{address: "127.0.0.1:9001"}]
filters:
  - {type: local_rate_limit, rate: 100}
  - {type: headers, response_add: {x-gateway: dispa}}
routes:
  - name: api
    match: {path_prefix: /api/}
    upstream: app
    prefix_rewrite: /v2/
    filters: [{type: headers, request_add: {x-api: "1"}}]
    headers: {response_remove: [server], request_remove: [cookie]}
  - name: moved
    match: {path_prefix: /old/}
    redirect: {prefix: /new/, status: 301}
  - name: secure
    match: {path_prefix: /login}
    redirect: {scheme: https}
  - name: elsewhere
    match: {path_exact: /go}
    redirect: {host: "other.example:8443", path: /landing, status: 307}
  - match: {path_exact: /ping}
    direct_response: {status: 200, body: "pong\\n", headers: {Content-Type: text/plain}}
"""


@pytest.fixture
def snapshot():
    config = load_text(SNAPSHOT_CONFIG)
    return compile_snapshot(config, 7, UpstreamSet().prepare(config.upstreams), "test.yaml")


def route_for(snapshot, raw: bytes):
    request = request_of(raw)
    match = snapshot.router.match(request.host, request.path, request.method, request.headers)
    return request, match.target


def test_snapshot_keeps_revision_source_and_upstreams(snapshot):
    assert snapshot.revision == 7
    assert snapshot.source == "test.yaml"
    assert set(snapshot.upstreams) == {"app"}
    assert snapshot.config.routes[0].name == "api"


def test_routes_without_a_name_are_named_by_position(snapshot):
    _, route = route_for(snapshot, b"GET /ping HTTP/1.1\r\nHost: a\r\n\r\n")
    assert route.name == "route4"


def test_per_route_phase_lists_hold_only_filters_that_act(snapshot):
    _, api = route_for(snapshot, b"GET /api/x HTTP/1.1\r\nHost: a\r\n\r\n")
    assert api.upstream is snapshot.upstreams["app"]
    # Order: by stage (the rate limit is admission, header edits transform), then global
    # filters, the route's filters, its header edits; response phases in reverse.
    request = api.request_phase.handlers
    assert [type(h.__self__).__name__ for h in request] == [
        "LocalRateLimit",
        "HeadersEdit",
        "HeadersEdit",
    ]
    assert request[1].__self__.request_add == ((b"x-api", b"1"),)
    assert request[2].__self__.request_remove == frozenset({b"cookie"})
    response = api.response_phase.handlers
    assert [h.__self__.response_add for h in response] == [(), ((b"x-gateway", b"dispa"),)]
    assert response[0].__self__.response_remove == frozenset({b"server"})
    assert api.log_phase is None
    _, ping = route_for(snapshot, b"GET /ping HTTP/1.1\r\nHost: a\r\n\r\n")
    assert len(ping.request_phase) == 1
    assert len(ping.response_phase) == 1


def test_global_filters_are_one_instance_shared_by_every_route(snapshot):
    _, api = route_for(snapshot, b"GET /api/x HTTP/1.1\r\nHost: a\r\n\r\n")
    _, ping = route_for(snapshot, b"GET /ping HTTP/1.1\r\nHost: a\r\n\r\n")
    assert api.request_phase.handlers[0].__self__ is ping.request_phase.handlers[0].__self__


def test_route_filters_run_in_order_on_a_context(snapshot):
    request, api = route_for(
        snapshot, b"GET /api/x HTTP/1.1\r\nHost: a\r\nCookie: s=1\r\nX-Api: 0\r\n\r\n"
    )
    ctx = RequestContext(request, "10.0.0.1", 1, "public", "http", 0.0)
    assert api.request_phase.run(ctx, resume=None) is None
    assert ctx.request_headers == [(b"Host", b"a"), (b"x-api", b"1")]
    headers = [(b"Server", b"app"), (b"Content-Length", b"0")]
    headers = api.response_phase.run(ctx, headers, resume=None)
    assert headers == [(b"Content-Length", b"0"), (b"x-gateway", b"dispa")]


@pytest.mark.parametrize(
    ("target", "upstream_target"),
    [
        (b"/api/users?limit=5", b"/v2/users?limit=5"),
        (b"/api/", b"/v2/"),
        (b"http://a.example/api/x?y=1", b"/v2/x?y=1"),
    ],
)
def test_prefix_rewrite_target(snapshot, target, upstream_target):
    request, api = route_for(snapshot, b"GET " + target + b" HTTP/1.1\r\nHost: a\r\n\r\n")
    assert api.rewrite_target(request.target) == upstream_target


def test_rewrite_to_an_empty_prefix_keeps_a_leading_slash():
    config = load_text(SNAPSHOT_CONFIG.replace("prefix_rewrite: /v2/", 'prefix_rewrite: ""'))
    snapshot = compile_snapshot(config, 1, UpstreamSet().prepare(config.upstreams))
    request, api = route_for(snapshot, b"GET /api/users HTTP/1.1\r\nHost: a\r\n\r\n")
    assert api.prefix_rewrite is not None  # the exchange rewrites only when it is set
    assert api.rewrite_target(request.target) == b"/users"


def test_redirect_keeps_host_port_and_query(snapshot):
    request, moved = route_for(
        snapshot, b"GET /old/page?id=3&x=y HTTP/1.1\r\nHost: Shop.example:8080\r\n\r\n"
    )
    assert moved.redirect_reply(request, "http") == LocalReply(
        301, "redirect", b"", ((b"location", b"http://Shop.example:8080/new/page?id=3&x=y"),)
    )


def test_redirect_to_https_keeps_the_path(snapshot):
    request, secure = route_for(snapshot, b"GET /login?next=/a HTTP/1.1\r\nHost: a.com\r\n\r\n")
    answer = secure.redirect_reply(request, "http")
    assert answer.status == 302
    assert answer.headers == ((b"location", b"https://a.com/login?next=/a"),)


def test_redirect_to_another_host_and_path(snapshot):
    request, elsewhere = route_for(snapshot, b"GET /go?q=1 HTTP/1.1\r\nHost: a.com\r\n\r\n")
    answer = elsewhere.redirect_reply(request, "https")
    assert answer.status == 307
    assert answer.headers == ((b"location", b"https://other.example:8443/landing?q=1"),)


def test_redirect_without_any_host(snapshot):
    request, moved = route_for(snapshot, b"GET /old/x HTTP/1.0\r\n\r\n")
    assert moved.redirect_reply(request, "http").headers == (
        (b"location", b"http://localhost/new/x"),
    )


def test_direct_reply(snapshot):
    _, ping = route_for(snapshot, b"GET /ping HTTP/1.1\r\nHost: a\r\n\r\n")
    assert ping.upstream is None
    assert ping.direct_reply == LocalReply(
        200, "direct_response", b"pong\n", ((b"content-type", b"text/plain"),)
    )


def test_snapshot_without_upstreams_needs_none():
    config = load_text(
        """
listeners: [{name: public, address: "127.0.0.1:0"}]
routes:
  - {match: {path_prefix: /}, direct_response: {status: 404}}
"""
    )
    snapshot = compile_snapshot(config, 1, {})
    assert snapshot.router.match("a", "/x", "GET", []).target.direct_reply.status == 404
    assert snapshot.applied_at > 0


def test_route_runtime_is_built_from_config_alone():
    config = load_text(SNAPSHOT_CONFIG)
    runtime = RouteRuntime("api", config.routes[0], None, [])
    assert runtime.prefix == "/api/"
    assert runtime.prefix_rewrite == b"/v2/"
    assert runtime.request_phase is runtime.response_phase is runtime.log_phase is None
    assert runtime.request_body_need is runtime.response_body_need is None
