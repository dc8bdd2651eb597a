"""Compiled chains: stage order, config order, named instances, body needs, snapshot."""

import pytest

from dispa.config.load import load_text
from dispa.proxy.filters.base import BodyNeed, Filter
from dispa.proxy.filters.global_rate_limit import GlobalRateLimit
from dispa.proxy.filters.headers import HeadersEdit
from dispa.proxy.filters.local_rate_limit import LocalRateLimit
from dispa.proxy.filters.route_chain import FilterChain
from dispa.proxy.filters.stages import STAGES
from dispa.proxy.snapshot import compile_snapshot


class Staged(Filter):
    def __init__(self, name, stage, request_body=None, response_body=None, body=False):
        self.name = name
        self.stage = stage
        if request_body is not None or body:
            self.request_body = request_body
            self.on_request_body = lambda ctx, chunk, end: None
        if response_body is not None:
            self.response_body = response_body
            self.on_response_body = lambda ctx, chunk, end: None

    def on_request(self, ctx):
        return None

    def handler(self, phase):
        # Instances here set body handlers per test; class methods for the rest.
        if phase in ("on_request_body", "on_response_body"):
            return self.__dict__.get(phase)
        return super().handler(phase)


def test_stage_order_then_config_order():
    filters = [
        Staged("t1", "transform"),
        Staged("w", "waf"),
        Staged("n1", "authn"),
        Staged("o", "observe"),
        Staged("t2", "transform"),
        Staged("r", "rate_limit"),
        Staged("z", "authz"),
        Staged("a", "admission"),
        Staged("n2", "authn"),
    ]
    chain = FilterChain(filters)
    assert [f.name for f in chain.filters] == ["a", "o", "n1", "n2", "z", "r", "w", "t1", "t2"]
    assert chain.request.names == ("a", "o", "n1", "n2", "z", "r", "w", "t1", "t2")
    assert STAGES == ("admission", "observe", "authn", "authz", "rate_limit", "waf", "transform")


def test_an_unknown_stage_is_refused_naming_the_filter():
    with pytest.raises(ValueError, match="filter 'odd': unknown stage 'later'"):
        FilterChain([Staged("odd", "later")])


def test_a_route_without_body_filters_has_no_body_need():
    chain = FilterChain([Staged("a", "transform")])
    assert chain.request_body_need is None and chain.response_body_need is None
    assert chain.request_body is None and chain.response_body is None


def test_body_needs_are_compiled():
    chunks = FilterChain([Staged("a", "waf", body=True)])
    assert chunks.request_body_need == BodyNeed("chunks")
    whole = FilterChain(
        [
            Staged("a", "waf", request_body=BodyNeed("whole", 65536)),
            Staged("b", "transform", request_body=BodyNeed("whole", 4096)),
            Staged("c", "observe", body=True),
            Staged("d", "transform", response_body=BodyNeed("whole", 1024)),
        ]
    )
    assert whole.request_body_need == BodyNeed("whole", 4096)  # the smallest limit
    assert whole.response_body_need == BodyNeed("whole", 1024)
    with pytest.raises(ValueError, match="byte limit"):
        FilterChain([Staged("bad", "waf", request_body=BodyNeed("whole"))])


CONFIG = """
listeners: [{name: public, address: "127.0.0.1:0"}]
filter_definitions:
  per-client: {type: local_rate_limit, rate: 5}
  per-key: {type: local_rate_limit, key: "header:x-api-key", rate: 5}
  stamp: {type: headers, response_add: {x-stamp: "1"}}
rate_limits:
  - {name: everyone, limit: 100}
filters:
  - {type: headers, request_add: {x-global: "1"}}
  - {use: per-client}
routes:
  - name: one
    match: {path_prefix: /one}
    direct_response: {status: 200}
    filters: [{use: stamp}, {use: per-key}]
    headers: {request_add: {x-route: "1"}}
  - name: two
    match: {path_prefix: /two}
    direct_response: {status: 200}
    filters: [{use: stamp}, {type: local_rate_limit, rate: 1}]
"""


def routes(config_text=CONFIG):
    snapshot = compile_snapshot(load_text(config_text), 1, {})
    router = snapshot.router
    return {name: router.match("a", f"/{name}", "GET", []).target for name in ("one", "two")}


def test_snapshot_compiles_a_chain_per_route_in_stage_order():
    one = routes()["one"].filter_chain
    kinds = [(type(f).__name__, f.name, f.stage) for f in one.filters]
    assert kinds == [
        ("GlobalRateLimit", "global_rate_limit", "admission"),
        ("LocalRateLimit", "per-client", "admission"),  # keyed by address: anonymous
        ("LocalRateLimit", "per-key", "rate_limit"),  # keyed by a header: after authn
        ("HeadersEdit", "headers", "transform"),  # global filters before the route's
        ("HeadersEdit", "stamp", "transform"),
        ("HeadersEdit", "headers", "transform"),  # route `headers:` last
    ]


def test_named_instances_are_built_once_and_shared():
    compiled = routes()
    one, two = compiled["one"].filter_chain, compiled["two"].filter_chain
    stamp_one = [f for f in one.filters if f.name == "stamp"]
    stamp_two = [f for f in two.filters if f.name == "stamp"]
    assert len(stamp_one) == 1 and stamp_one[0] is stamp_two[0]
    client_one = next(f for f in one.filters if f.name == "per-client")
    client_two = next(f for f in two.filters if f.name == "per-client")
    assert client_one is client_two  # one bucket table for both routes
    inline = [f for f in two.filters if type(f) is LocalRateLimit and f.name != "per-client"]
    assert len(inline) == 1 and inline[0].stage == "admission"


def test_the_exchange_runs_the_chain_in_stage_order():
    one = routes()["one"]
    # What the exchange calls: the chain's runners, copied onto the route.
    assert one.request_phase is one.filter_chain.request
    owners = [handler.__self__ for handler in one.request_phase.handlers]
    # The header edits that add request headers (transform) now come after every rate
    # limit: a limit keyed by a header sees the client's header, not an edit's.
    assert [type(f) for f in owners] == [
        GlobalRateLimit,
        LocalRateLimit,
        LocalRateLimit,
        HeadersEdit,
        HeadersEdit,
    ]
    # On the way out, the route's own edits run first and the top-level ones last.
    assert [h.__self__.name for h in one.response_phase.handlers] == ["stamp"]


def test_unknown_definition_fails_compile_when_not_validated():
    from dispa.config.schema import Gateway

    gateway = Gateway.model_validate(
        {
            "listeners": [{"name": "a", "address": "127.0.0.1:0"}],
            "routes": [
                {"name": "r", "direct_response": {"status": 200}, "filters": [{"use": "nope"}]}
            ],
        }
    )
    with pytest.raises(ValueError, match="route 'r': unknown filter definition 'nope'"):
        compile_snapshot(gateway, 1, {})
