"""Router precedence, exactly as the module docstring states it, and a brute-force check."""

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from dispa.config.schema import Match
from dispa.proxy.router import CompiledRoute, Router


def build(*specs: dict) -> Router:
    """Routes from match specs; each route's target is its index in the file."""
    return Router([CompiledRoute(Match(**spec), index, index) for index, spec in enumerate(specs)])


def winner(router: Router, host="example.com", path="/", method="GET", headers=()):
    route = router.match(host, path, method, list(headers))
    return None if route is None else route.target


# ------------------------------------------------------------------ host precedence


def test_exact_host_beats_wildcard_beats_any_whatever_the_file_order():
    router = build({"host": "*"}, {"host": "*.example.com"}, {"host": "api.example.com"})
    assert winner(router, "api.example.com") == 2
    assert winner(router, "www.example.com") == 1
    assert winner(router, "other.org") == 0


def test_longest_wildcard_wins():
    router = build({"host": "*.com"}, {"host": "*.example.com"}, {"host": "*.eu.example.com"})
    assert winner(router, "a.eu.example.com") == 2
    assert winner(router, "a.example.com") == 1
    assert winner(router, "a.org.com") == 0


def test_wildcard_does_not_match_the_bare_domain():
    router = build({"host": "*.example.com"})
    assert winner(router, "example.com") is None
    assert winner(router, "notexample.com") is None
    assert winner(router, "a.example.com") == 0
    assert winner(router, "a.b.example.com") == 0


def test_host_rules_are_case_insensitive_on_the_config_side():
    router = build({"host": "API.Example.com"}, {"host": "*.EXAMPLE.com"})
    assert winner(router, "api.example.com") == 0  # the parser lower-cases request hosts
    assert winner(router, "www.example.com") == 1


def test_specific_host_falls_through_to_less_specific_hosts():
    router = build(
        {"host": "api.example.com", "path_prefix": "/v1"},
        {"host": "*.example.com", "path_prefix": "/v2"},
        {"host": "*", "path_prefix": "/"},
    )
    assert winner(router, "api.example.com", "/v1/x") == 0
    assert winner(router, "api.example.com", "/v2/x") == 1  # exact host has no /v2
    assert winner(router, "api.example.com", "/v3") == 2  # nor does the wildcard
    assert winner(router, "www.example.com", "/v1") == 2


def test_no_match_at_all():
    router = build({"host": "a.com"}, {"host": "*", "path_exact": "/only"})
    assert winner(router, "b.com", "/other") is None


def test_empty_host_only_matches_any():
    router = build({"host": "a.com"}, {"host": "*.a.com"}, {"host": "*"})
    assert winner(router, "", "/") == 2


# ------------------------------------------------------------------ path precedence


def test_exact_path_beats_prefix_beats_regex_beats_no_path():
    router = build(
        {},
        {"path_regex": "/api/.*"},
        {"path_prefix": "/api"},
        {"path_exact": "/api/users"},
    )
    assert winner(router, path="/api/users") == 3
    assert winner(router, path="/api/users/1") == 2
    assert winner(router, path="/other") == 0


def test_regex_beats_no_path_condition():
    router = build({}, {"path_regex": "/img/.*"})
    assert winner(router, path="/img/a.png") == 1
    assert winner(router, path="/img") == 0  # full match: "/img" lacks the slash


def test_longest_prefix_wins():
    router = build({"path_prefix": "/"}, {"path_prefix": "/api"}, {"path_prefix": "/api/v2"})
    assert winner(router, path="/api/v2/users") == 2
    assert winner(router, path="/api/v1") == 1
    assert winner(router, path="/static") == 0


def test_prefix_is_a_string_prefix_and_regex_a_full_match():
    router = build({"path_prefix": "/api"}, {"path_regex": "/v[0-9]"})
    assert winner(router, path="/apix") == 0
    assert winner(router, path="/v1") == 1
    assert winner(router, path="/v10") is None


def test_host_precedence_comes_before_path_precedence():
    router = build(
        {"host": "*", "path_exact": "/a"},
        {"host": "*.example.com", "path_regex": "/.*"},
    )
    assert winner(router, "x.example.com", "/a") == 1


# ------------------------------------------------------------------ conditions and order


def test_more_conditions_first_then_file_order():
    router = build(
        {"path_prefix": "/api"},
        {"path_prefix": "/api", "methods": ["POST"]},
        {
            "path_prefix": "/api",
            "methods": ["POST"],
            "headers": [{"name": "x-tenant", "present": True}],
        },
        {"path_prefix": "/api", "methods": ["POST"]},
    )
    assert winner(router, path="/api", method="POST", headers=[(b"X-Tenant", b"a")]) == 2
    assert winner(router, path="/api", method="POST") == 1  # 1 and 3 tie: file order
    assert winner(router, path="/api", method="GET") == 0


def test_longer_prefix_beats_more_conditions():
    router = build(
        {"path_prefix": "/a", "methods": ["GET"], "headers": [{"name": "x", "present": True}]},
        {"path_prefix": "/a/b"},
    )
    assert winner(router, path="/a/b", headers=[(b"x", b"1")]) == 1


def test_methods():
    router = build({"methods": ["get", "HEAD"]}, {"methods": ["POST"]})
    assert winner(router, method="GET") == 0
    assert winner(router, method="HEAD") == 0
    assert winner(router, method="POST") == 1
    assert winner(router, method="DELETE") is None


def test_header_exact():
    router = build({"headers": [{"name": "X-Env", "exact": "canary"}]})
    assert winner(router, headers=[(b"x-env", b"canary")]) == 0
    assert winner(router, headers=[(b"X-ENV", b"canary")]) == 0  # names are case-insensitive
    assert winner(router, headers=[(b"x-env", b"Canary")]) is None  # values are not
    assert winner(router, headers=[(b"x-env", b"canary2")]) is None
    assert winner(router) is None


def test_header_regex_is_a_full_match():
    router = build({"headers": [{"name": "x-user", "regex": "[0-9]+"}]})
    assert winner(router, headers=[(b"x-user", b"123")]) == 0
    assert winner(router, headers=[(b"x-user", b"123a")]) is None
    assert winner(router, headers=[(b"x-user", b"")]) is None
    assert winner(router) is None


def test_header_present_and_absent():
    router = build(
        {"path_prefix": "/", "headers": [{"name": "authorization", "present": True}]},
        {"path_prefix": "/", "headers": [{"name": "authorization", "present": False}]},
    )
    assert winner(router, headers=[(b"Authorization", b"Bearer x")]) == 0
    assert winner(router, headers=[(b"Authorization", b"")]) == 0
    assert winner(router, headers=[(b"cookie", b"a")]) == 1


def test_all_header_conditions_must_hold():
    router = build(
        {"headers": [{"name": "a", "exact": "1"}, {"name": "b", "regex": "x.*"}]},
        {},
    )
    assert winner(router, headers=[(b"a", b"1"), (b"b", b"xyz")]) == 0
    assert winner(router, headers=[(b"a", b"1"), (b"b", b"yz")]) == 1
    assert winner(router, headers=[(b"b", b"xyz")]) == 1


# ------------------------------------------------------------------ brute-force reference

ROUTE_HOSTS = ["*", "*.a.com", "*.b.a.com", "a.com", "b.a.com", "c.b.a.com", "x.org"]
REQUEST_HOSTS = ["a.com", "b.a.com", "c.b.a.com", "d.b.a.com", "x.org", "y.org", ""]
PATHS = ["/", "/a", "/a/", "/a/b", "/a/b/c", "/ab", "/b", "/b/1"]
REGEXES = ["/a.*", "/[ab]", "/b/[0-9]+", "/.*", "/a/b"]
METHODS = ["GET", "POST", "PUT"]
HEADER_NAMES = ["x-a", "x-b"]
HEADER_VALUES = ["1", "2", "12", "z"]

header_specs = st.builds(
    lambda name, kind, value: {"name": name, kind: value},
    st.sampled_from(HEADER_NAMES),
    st.sampled_from(["exact", "regex", "present"]),
    st.sampled_from(["1", "2", "[0-9]+", "1|z"]),
).map(
    lambda spec: (
        {"name": spec["name"], "present": spec["present"] in ("1", "[0-9]+")}
        if "present" in spec
        else spec
    )
)


@st.composite
def match_specs(draw):
    spec = {"host": draw(st.sampled_from(ROUTE_HOSTS))}
    kind = draw(st.sampled_from(["path_exact", "path_prefix", "path_regex", None]))
    if kind == "path_regex":
        spec[kind] = draw(st.sampled_from(REGEXES))
    elif kind is not None:
        spec[kind] = draw(st.sampled_from(PATHS))
    # Mostly unconditional, so that several routes often hold at once and order decides.
    if draw(st.integers(0, 3)) == 0:
        spec["methods"] = draw(st.lists(st.sampled_from(METHODS), min_size=1, max_size=2))
    if draw(st.integers(0, 3)) == 0:
        spec["headers"] = draw(st.lists(header_specs, min_size=1, max_size=2))
    return spec


request_headers = st.lists(
    st.tuples(
        st.sampled_from([n.encode() for n in HEADER_NAMES] + [b"X-A", b"other"]),
        st.sampled_from([v.encode() for v in HEADER_VALUES]),
    ),
    max_size=3,
)


def reference_key(match: Match, index: int) -> tuple:
    """The docstring's precedence, written out independently of the router."""
    host = match.host.lower()
    if host == "*":
        host_rank = (2, 0)
    elif host.startswith("*."):
        host_rank = (1, -len(host))
    else:
        host_rank = (0, 0)
    if match.path_exact is not None:
        path_rank = (0, 0)
    elif match.path_prefix is not None:
        path_rank = (1, -len(match.path_prefix))
    elif match.path_regex is not None:
        path_rank = (2, 0)
    else:
        path_rank = (3, 0)
    conditions = (1 if match.methods else 0) + len(match.headers)
    return (*host_rank, *path_rank, -conditions, index)


def reference_holds(match: Match, host: str, path: str, method: str, headers) -> bool:
    rule = match.host.lower()
    if rule.startswith("*."):
        if not (host.endswith(rule[1:]) and len(host) > len(rule) - 1):
            return False
    elif rule != "*" and host != rule:
        return False
    if match.path_exact is not None and path != match.path_exact:
        return False
    if match.path_prefix is not None and not path.startswith(match.path_prefix):
        return False
    if match.path_regex is not None and not re.fullmatch(match.path_regex, path):
        return False
    if match.methods and method not in match.methods:
        return False
    return all(reference_header_holds(c, headers) for c in match.headers)


def reference_header_holds(condition, headers) -> bool:
    values = [v.decode() for n, v in headers if n.decode().lower() == condition.name.lower()]
    first = values[0] if values else None
    if condition.present is not None:
        return (first is not None) == condition.present
    if first is None:
        return False
    if condition.exact is not None:
        return first == condition.exact
    return re.fullmatch(condition.regex, first) is not None


@settings(max_examples=300, deadline=None)
@given(
    specs=st.lists(match_specs(), min_size=1, max_size=10),
    method=st.sampled_from(METHODS),
    headers=request_headers,
)
def test_router_returns_the_first_route_in_precedence_order_that_holds(specs, method, headers):
    matches = [Match(**spec) for spec in specs]
    router = Router([CompiledRoute(m, i, i) for i, m in enumerate(matches)])
    ordered = sorted(range(len(matches)), key=lambda i: reference_key(matches[i], i))
    # Every host and path against the same route set: cheap, and finds overlaps far more
    # often than one random request per example would.
    for host in REQUEST_HOSTS:
        for path in PATHS:
            expected = next(
                (i for i in ordered if reference_holds(matches[i], host, path, method, headers)),
                None,
            )
            assert winner(router, host, path, method, headers) == expected, (host, path)


# ------------------------------------------------------------------ linear-time regexes


def test_a_catastrophic_path_regex_answers_in_linear_time():
    """``/(a+)+$`` backtracks exponentially in Python's re (a 30-letter path took minutes);
    route regexes run on RE2, so a path as long as a head answers at once."""
    import time

    router = build({"path_regex": "/(a+)+$"}, {})  # the second: any path, ranked last
    started = time.perf_counter()
    for length in (30, 1000, 60000):
        assert winner(router, path="/" + "a" * length + "!") == 1
        assert winner(router, path="/" + "a" * length) == 0
    assert time.perf_counter() - started < 0.5


def test_a_catastrophic_header_regex_answers_in_linear_time():
    import time

    router = build({"headers": [{"name": "x-a", "regex": "(a|aa)*b"}]}, {})
    started = time.perf_counter()
    assert winner(router, headers=[(b"x-a", b"a" * 50000 + b"c")]) == 1
    assert winner(router, headers=[(b"x-a", b"a" * 50000 + b"b")]) == 0
    assert time.perf_counter() - started < 0.5


def test_header_regexes_match_bytes_as_they_came():
    router = build({"headers": [{"name": "x-a", "regex": "caf\u00e9|[\\x80-\\xff]+"}]}, {})
    assert winner(router, headers=[(b"x-a", "café".encode())]) == 0
    assert winner(router, headers=[(b"x-a", b"\xff\xfe")]) == 0
    assert winner(router, headers=[(b"x-a", b"cafe")]) == 1
