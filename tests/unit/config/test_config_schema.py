"""The config model: the product issue's minimal config, defaults, and one error per rule,
each naming the path of the bad field."""

import re

import pytest
import yaml

from dispa.config.errors import ConfigError
from dispa.config.load import build_gateway, load_text
from dispa.proxy.router import CompiledRoute

MINIMAL = """
listeners:
  - {name: public, address: "127.0.0.1:8080"}
upstreams:
  - name: app
    lb: round_robin
    endpoints: [{address: "127.0.0.1:9001", weight: 2}, {address: "127.0.0.1:9002"}]
    health: {path: /healthz, interval: 1s}
routes:
  - {match: {host: "*", path_prefix: /}, upstream: app}
admin: {address: "127.0.0.1:9901"}
"""


def base() -> dict:
    return yaml.safe_load(MINIMAL)


def problems_of(data: dict) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        build_gateway(data, "test.yaml")
    return caught.value.problems


def only_problem(data: dict) -> str:
    problems = problems_of(data)
    assert len(problems) == 1, problems
    return problems[0]


# ------------------------------------------------------------------ the minimal config


def test_minimal_config_from_the_issue_loads_with_defaults():
    gateway = load_text(MINIMAL)
    (listener,) = gateway.listeners
    assert (listener.name, listener.address) == ("public", "127.0.0.1:8080")
    assert listener.limits.header_timeout == 10.0
    assert listener.limits.max_header_bytes == 65536
    (upstream,) = gateway.upstreams
    assert upstream.lb == "round_robin"
    assert [(e.address, e.weight) for e in upstream.endpoints] == [
        ("127.0.0.1:9001", 2),
        ("127.0.0.1:9002", 1),
    ]
    assert upstream.health.path == "/healthz"
    assert upstream.health.interval == 1.0
    assert upstream.health.timeout == 1.0
    assert upstream.retry.attempts == 2
    (route,) = gateway.routes
    assert route.match.host == "*"
    assert route.match.path_prefix == "/"
    assert route.upstream == "app"
    assert gateway.admin.address == "127.0.0.1:9901"
    assert gateway.filters == ()
    assert gateway.drain_timeout == 15.0


def test_models_are_frozen():
    gateway = load_text(MINIMAL)
    with pytest.raises(ValueError):
        gateway.routes[0].upstream = "other"


def test_units_apply_inside_the_model():
    data = base()
    data["listeners"][0]["limits"] = {
        "header_timeout": "250ms",
        "max_header_bytes": "16KiB",
        "max_body_bytes": "1GB",
    }
    limits = build_gateway(data).listeners[0].limits
    assert (limits.header_timeout, limits.max_header_bytes, limits.max_body_bytes) == (
        0.25,
        16384,
        1_000_000_000,
    )


def test_methods_are_upper_cased():
    data = base()
    data["routes"][0]["match"]["methods"] = ["get", "Post"]
    assert build_gateway(data).routes[0].match.methods == ("GET", "POST")


def test_route_headers_need_no_type():
    data = base()
    data["routes"][0]["headers"] = {"request_add": {"x-a": "1"}}
    assert build_gateway(data).routes[0].headers.request_add == {"x-a": "1"}


@pytest.mark.parametrize("address", ["127.0.0.1:0", "[::1]:8080", "localhost:80", "0.0.0.0:65535"])
def test_good_addresses(address):
    data = base()
    data["listeners"][0]["address"] = address
    assert build_gateway(data).listeners[0].address == address


# ------------------------------------------------------------------ one error per rule


def test_unknown_upstream_names_the_route_and_the_known_ones():
    data = base()
    data["routes"] += [
        {"match": {"path_prefix": "/a"}, "upstream": "app"},
        {"match": {"path_prefix": "/b"}, "upstream": "ap"},
    ]
    problem = only_problem(data)
    assert problem.startswith("routes[2].upstream: unknown upstream 'ap'")
    assert "app" in problem.partition("'ap'")[2]


def test_unknown_upstream_when_there_are_none():
    data = base()
    del data["upstreams"]
    assert only_problem(data) == (
        "routes[0].upstream: unknown upstream 'app'; no upstreams are defined"
    )


@pytest.mark.parametrize(
    ("where", "path"),
    [
        (lambda d: d["listeners"][0], "listeners[0].adress"),
        (lambda d: d["upstreams"][0]["health"], "upstreams[0].health.adress"),
        (lambda d: d["upstreams"][0]["endpoints"][1], "upstreams[0].endpoints[1].adress"),
        (lambda d: d["routes"][0]["match"], "routes[0].match.adress"),
        (lambda d: d["routes"][0], "routes[0].adress"),
        (lambda d: d["admin"], "admin.adress"),
        (lambda d: d, "adress"),
    ],
)
def test_unknown_fields_are_errors_with_their_path(where, path):
    data = base()
    where(data)["adress"] = "x"
    assert only_problem(data) == f"{path}: unknown field (check the spelling)"


@pytest.mark.parametrize(
    ("field", "value"),
    [("header_timeout", "10 secs"), ("idle_timeout", "-1s"), ("body_timeout", ".5s")],
)
def test_bad_durations(field, value):
    data = base()
    data["listeners"][0]["limits"] = {field: value}
    problem = only_problem(data)
    assert problem.startswith(f"listeners[0].limits.{field}: ")
    assert f"'{value}'" in problem


def test_bad_duration_in_health_check():
    data = base()
    data["upstreams"][0]["health"]["interval"] = "often"
    assert only_problem(data).startswith("upstreams[0].health.interval: 'often' is not a duration")


def test_nan_duration_is_refused():
    data = base()
    data["upstreams"][0]["health"]["interval"] = float("nan")
    assert only_problem(data).startswith("upstreams[0].health.interval: 'nan' is not a duration")


def test_bad_size():
    data = base()
    data["listeners"][0]["limits"] = {"max_header_bytes": "64 kilobytes"}
    assert only_problem(data).startswith(
        "listeners[0].limits.max_header_bytes: '64 kilobytes' is not a size"
    )


@pytest.mark.parametrize(
    "address",
    ["nope", "127.0.0.1", "127.0.0.1:99999", "127.0.0.1:http", ":8080", "::1", "fe80::1:80", ""],
)
def test_bad_listener_addresses(address):
    data = base()
    data["listeners"][0]["address"] = address
    problem = only_problem(data)
    assert problem.startswith(f"listeners[0].address: '{address}' is not an address")


def test_bad_endpoint_and_admin_addresses():
    data = base()
    data["upstreams"][0]["endpoints"][1]["address"] = "9002"
    data["admin"]["address"] = "localhost"
    assert problems_of(data) == [
        "upstreams[0].endpoints[1].address: '9002' is not an address; "
        "write it as host:port, like 127.0.0.1:8080",
        "admin.address: 'localhost' is not an address; write it as host:port, like 127.0.0.1:8080",
    ]


def test_duplicate_names():
    data = base()
    data["listeners"].append({"name": "public", "address": "127.0.0.1:8081"})
    data["upstreams"].append({"name": "app", "endpoints": [{"address": "127.0.0.1:9003"}]})
    data["routes"][0]["name"] = "main"
    data["routes"].append({"name": "main", "match": {"path_prefix": "/x"}, "upstream": "app"})
    assert problems_of(data) == [
        "listeners[1].name: 'public' is already used by listeners[0]",
        "upstreams[1].name: 'app' is already used by upstreams[0]",
        "routes[1].name: 'main' is already used by routes[0]",
    ]


def test_duplicate_listener_address_and_endpoint_and_admin_clash():
    data = base()
    data["listeners"].append({"name": "second", "address": "127.0.0.1:8080"})
    data["upstreams"][0]["endpoints"].append({"address": "127.0.0.1:9001"})
    data["admin"]["address"] = "127.0.0.1:8080"
    problems = problems_of(data)
    assert "listeners[1].address: '127.0.0.1:8080' is already used by listeners[0]" in problems
    assert "upstreams[0].endpoints: '127.0.0.1:9001' is listed 2 times" in problems
    assert "listeners[0].address: same address as admin.address (127.0.0.1:8080)" in problems


def test_several_listeners_may_ask_for_port_zero():
    data = base()
    data["listeners"] = [
        {"name": "one", "address": "127.0.0.1:0"},
        {"name": "two", "address": "127.0.0.1:0"},
    ]
    data["admin"]["address"] = "127.0.0.1:0"
    assert len(build_gateway(data).listeners) == 2


def test_bad_names():
    data = base()
    data["listeners"][0]["name"] = "-public"
    assert only_problem(data).startswith("listeners[0].name: ")


def test_route_with_no_action():
    data = base()
    del data["routes"][0]["upstream"]
    assert only_problem(data) == (
        "routes[0]: a route needs exactly one of upstream, redirect or direct_response"
    )


def test_route_with_two_actions():
    data = base()
    data["routes"][0]["direct_response"] = {"status": 200}
    assert only_problem(data) == (
        "routes[0]: a route needs exactly one of upstream, redirect or direct_response, "
        "not upstream and direct_response"
    )


def test_prefix_rewrite_needs_a_prefix():
    data = base()
    data["routes"][0]["match"] = {"path_exact": "/x"}
    data["routes"][0]["prefix_rewrite"] = "/y"
    assert only_problem(data) == "routes[0]: prefix_rewrite needs match.path_prefix"


def test_hash_on_a_non_hashing_lb():
    data = base()
    data["upstreams"][0]["hash"] = {"key": "header:x-user"}
    assert only_problem(data) == (
        "upstreams[0].hash: 'hash' applies only to lb ring_hash or maglev, not round_robin"
    )
    data["upstreams"][0]["lb"] = "maglev"
    assert build_gateway(data).upstreams[0].hash.key == "header:x-user"


def test_hash_on_a_non_hashing_lb_is_reported_beside_other_errors_of_that_upstream():
    data = base()
    data["upstreams"][0]["hash"] = {"key": "path"}
    data["upstreams"][0]["health"]["interval"] = "soon"
    problems = problems_of(data)
    assert len(problems) == 2, problems
    assert any(p.startswith("upstreams[0].hash: 'hash' applies only") for p in problems)
    assert any(p.startswith("upstreams[0].health.interval: 'soon'") for p in problems)


@pytest.mark.parametrize("key", ["header:", "cookie", "ip", ""])
def test_bad_hash_keys(key):
    data = base()
    data["upstreams"][0]["lb"] = "ring_hash"
    data["upstreams"][0]["hash"] = {"key": key}
    assert only_problem(data).startswith(f"upstreams[0].hash.key: '{key}' is not a hash key")


def test_unknown_lb_policy():
    data = base()
    data["upstreams"][0]["lb"] = "fastest"
    assert only_problem(data).startswith("upstreams[0].lb: ")


@pytest.mark.parametrize(
    ("match", "where", "fragment"),
    [
        ({"path_regex": "(["}, "path_regex", "bad regular expression '(['"),
        ({"path_regex": "a{2,1}"}, "path_regex", "bad regular expression 'a{2,1}'"),
        ({"path_prefix": "api"}, "path_prefix", "path 'api' must start with /"),
        ({"path_prefix": "/%61dmin"}, "path_prefix", "not in normal form (RFC 3986)"),
        ({"path_prefix": "/%61dmin"}, "path_prefix", "write '/admin'"),
        ({"path_exact": "/a/../b"}, "path_exact", "write '/b'"),
        ({"path_exact": "/caf\u00e9"}, "path_exact", "write '/caf%C3%A9'"),
        ({"path_prefix": "/a\\b"}, "path_prefix", "would never match"),
        ({"path_regex": "/(a)\\1"}, "path_regex", "no backreferences or lookaround"),
        ({"path_prefix": "/a", "path_exact": "/a"}, "", "give at most one of path_prefix"),
    ],
)
def test_bad_path_matches(match, where, fragment):
    data = base()
    data["routes"][0]["match"] = match
    problem = only_problem(data)
    assert problem.startswith(f"routes[0].match{'.' + where if where else ''}: "), problem
    assert fragment in problem


def test_bad_header_regex():
    data = base()
    data["routes"][0]["match"]["headers"] = [{"name": "x-a", "regex": "(("}]
    assert only_problem(data).startswith(
        "routes[0].match.headers[0].regex: bad regular expression '(('"
    )


@pytest.mark.parametrize("pattern", ["(?u)abc", "\\u00e9+", "\\N{LATIN SMALL LETTER A}"])
def test_header_regex_the_router_cannot_compile_is_a_config_error(pattern):
    # The router compiles header regexes with RE2; what it cannot compile must not reach it.
    data = base()
    data["routes"][0]["match"]["headers"] = [{"name": "x-a", "regex": pattern}]
    assert only_problem(data).startswith("routes[0].match.headers[0].regex: bad regular expression")


def test_every_accepted_header_regex_compiles_in_the_router():
    data = base()
    data["routes"][0]["match"]["headers"] = [{"name": "x-a", "regex": r"\d+-[a-z]*x?"}]
    route = build_gateway(data).routes[0]
    compiled = CompiledRoute(route.match, 0, None)
    assert compiled.matches_request("/", "GET", [(b"x-a", b"12-ab")])


@pytest.mark.parametrize(
    "spec",
    [
        {"name": "x"},
        {"name": "x", "exact": "a", "present": True},
        {"name": "x", "regex": "a", "exact": "a"},
    ],
)
def test_header_match_needs_exactly_one_kind(spec):
    data = base()
    data["routes"][0]["match"]["headers"] = [spec]
    assert only_problem(data) == (
        "routes[0].match.headers[0]: give exactly one of exact, regex or present"
    )


@pytest.mark.parametrize("host", ["a.*.com", "*example.com", "*.*.com", "example.*", "*.", "**"])
def test_bad_host_wildcards(host):
    data = base()
    data["routes"][0]["match"]["host"] = host
    assert only_problem(data).startswith(f"routes[0].match: host '{host}' may use * only")


@pytest.mark.parametrize("host", ["*", "*.example.com", "example.com", "*.co"])
def test_good_hosts(host):
    data = base()
    data["routes"][0]["match"]["host"] = host
    assert build_gateway(data).routes[0].match.host == host


def test_filter_without_type():
    data = base()
    data["filters"] = [{"rate": 10}]
    assert only_problem(data) == (
        "filters[0]: each entry needs a 'type' (body_replace, fault, headers, local_rate_limit)"
    )


def test_filter_with_unknown_type():
    data = base()
    data["routes"][0]["filters"] = [{"type": "headers"}, {"type": "waf"}]
    problem = only_problem(data)
    assert problem.startswith("routes[0].filters[1]: unknown type; expected one of ")
    assert "'headers'" in problem
    assert "'local_rate_limit'" in problem


def test_filter_field_errors_have_no_internal_path_parts():
    data = base()
    data["filters"] = [
        {"type": "local_rate_limit", "rate": 0},
        {"type": "headers", "request_ad": {}},
        {"type": "local_rate_limit", "rate": 1, "key": "cookie:x"},
    ]
    problems = problems_of(data)
    assert problems[0].startswith("filters[0].rate: ")
    assert problems[1] == "filters[1].request_ad: unknown field (check the spelling)"
    assert problems[2].startswith("filters[2].key: 'cookie:x' is not a rate-limit key")


def test_required_sections():
    problems = problems_of({"upstreams": []})
    assert "listeners: required field is missing" in problems
    assert "routes: required field is missing" in problems


def test_health_path_and_retry_condition():
    data = base()
    data["upstreams"][0]["health"]["path"] = "healthz"
    data["upstreams"][0]["retry"] = {"retry_on": [502, "timeout"]}
    assert problems_of(data) == [
        "upstreams[0].health.path: a health check path must start with /",
        "upstreams[0].retry.retry_on: 'timeout' is not a retry condition; "
        "use connect_failure, reset, 502, 503, 504",
    ]


def test_outlier_max_shorter_than_base():
    data = base()
    data["upstreams"][0]["outlier"] = {"base_ejection": "1m", "max_ejection": "30s"}
    assert only_problem(data) == (
        "upstreams[0].outlier.max_ejection: must not be shorter than base_ejection"
    )


def test_every_problem_line_starts_with_a_path():
    data = base()
    data["listeners"][0]["limits"] = {"header_timeout": "x"}
    data["routes"][0]["match"]["host"] = "a*"
    for problem in problems_of(data):
        assert re.match(r"^[a-z_]+(\[\d+\])?(\.[a-z_]+(\[\d+\])?)*: ", problem), problem


def test_listener_path_rules_are_checked_by_name():
    data = base()
    data["listeners"][0]["paths"] = {"escaped_slashes": "drop", "merge_slashes": "maybe"}
    problems = problems_of(data)
    assert any(p.startswith("listeners[0].paths.escaped_slashes: ") for p in problems), problems
    assert any(p.startswith("listeners[0].paths.merge_slashes: ") for p in problems), problems


def test_listener_path_rules_default_to_closing_the_bypasses():
    paths = build_gateway(base()).listeners[0].paths
    assert (paths.merge_slashes, paths.escaped_slashes, paths.escaped_nul) == (
        True,
        "reject",
        "reject",
    )
