"""A config document past the bounds (nesting, integers, values, size) is a problem line
naming the path of the value, never a traceback."""

from __future__ import annotations

import json
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dispa.config import bounds
from dispa.config.errors import ConfigError
from dispa.config.load import build_gateway, build_model, load_file, parse_text
from dispa.config.schema import Gateway


def problems_of(call, *args) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        call(*args)
    return caught.value.problems


def test_deep_flow_nesting_names_the_path():
    text = "listeners: " + "[" * 100_000 + "]" * 100_000
    (problem,) = problems_of(parse_text, text)
    assert problem == "listeners" + "[0]" * 64 + ": nested more than 64 levels deep"


def test_deep_block_nesting_names_the_path():
    text = "routes:\n" + "".join("  " * depth + "- a:\n" for depth in range(1, 200))
    (problem,) = problems_of(parse_text, text)
    assert problem.startswith("routes[0].a[0].a[0]")
    assert problem.endswith(": nested more than 64 levels deep")


def test_nesting_within_the_bound_is_read():
    text = "a: " + "[" * 60 + "1" + "]" * 60
    assert parse_text(text)["a"] == json.loads("[" * 60 + "1" + "]" * 60)


@pytest.mark.parametrize("digits", ["9" * 5000, "0x" + "f" * 40, "-" + "1" * 33, "1_" * 20 + "1"])
def test_huge_integers_name_their_field(digits):
    text = f"listeners:\n  - name: a\n    limits: {{max_header_bytes: {digits}}}\n"
    (problem,) = problems_of(parse_text, text)
    assert problem == "listeners[0].limits.max_header_bytes: an integer of more than 32 digits"


def test_long_numbers_that_are_not_integers_are_left_to_the_schema():
    assert parse_text("a: '" + "9" * 5000 + "'")["a"] == "9" * 5000
    assert parse_text("a: 1." + "5" * 100)["a"] == pytest.approx(1.5556, abs=1e-4)


def test_billion_laughs_is_refused_at_once():
    lines = ['a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    for level in range(1, 10):
        names = ", ".join([f"*a{level - 1}"] * 10)
        lines.append(f"a{level}: &a{level} [{names}]")
    started = time.perf_counter()
    (problem,) = problems_of(parse_text, "\n".join(lines))
    assert time.perf_counter() - started < 2
    assert "more than 250000 values" in problem


def test_an_alias_inside_its_own_value_is_refused():
    (problem,) = problems_of(parse_text, "routes: &r [1, *r]")
    assert problem == "routes[1]: an alias inside the value it names"


def test_aliases_within_the_bounds_are_read():
    data = parse_text("base: &b {weight: 2}\nupstreams: [{endpoints: [*b, *b]}]")
    assert data["upstreams"][0]["endpoints"] == [{"weight": 2}, {"weight": 2}]


def test_a_text_past_the_size_bound_is_refused(monkeypatch):
    monkeypatch.setattr(bounds, "MAX_TEXT_CHARS", 100)
    (problem,) = problems_of(parse_text, "a: " + "x" * 200)
    assert "longer than" in problem


def test_a_file_past_the_size_bound_is_not_read_whole(monkeypatch, tmp_path):
    monkeypatch.setattr("dispa.config.load.MAX_TEXT_CHARS", 100)
    path = tmp_path / "big.yaml"
    path.write_text("a: " + "x" * 200)
    (problem,) = problems_of(load_file, path)
    assert problem == "the config file is larger than 0 MiB"


# ---------------------------------------------------------------- data from JSON


def deep_json(depth: int) -> dict:
    return json.loads('{"routes": ' + "[" * depth + "]" * depth + "}")


def test_deep_json_data_is_refused_before_validation():
    (problem,) = problems_of(build_gateway, deep_json(900))
    assert problem.endswith(": nested more than 64 levels deep")
    assert problem.startswith("routes[0][0]")
    (problem,) = problems_of(build_model, Gateway, deep_json(900))
    assert problem.endswith(": nested more than 64 levels deep")


def test_huge_json_integers_are_refused_with_their_path():
    data = {"listeners": [{"name": "a", "address": "127.0.0.1:0", "limits": {}}]}
    data["listeners"][0]["limits"]["max_header_bytes"] = 10**40
    assert problems_of(build_gateway, data) == [
        "listeners[0].limits.max_header_bytes: an integer larger than 64 bits"
    ]


def test_wide_data_past_the_value_bound():
    (problem,) = problems_of(build_gateway, {"routes": [{}] * 300_000})
    assert "more than 250000 values" in problem


# ---------------------------------------------------------------- whatever the shape

KEYS = [
    "listeners", "routes", "upstreams", "filters", "name", "address", "limits", "paths",
    "match", "upstream", "endpoints", "path_prefix", "path_regex", "headers", "regex",
    "present", "host", "direct_response", "status", "type", "key", "hash", "lb",
    "merge_slashes", "escaped_slashes", "weight", "discovery",
]  # fmt: skip
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(),
    st.text(max_size=8),
    st.sampled_from(["/", "/a", "/%61", "127.0.0.1:0", "(", "reject", "1s", "ring_hash"]),
)
documents = st.dictionaries(
    st.sampled_from(KEYS),
    st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(KEYS), inner),
        max_leaves=30,
    ),
    max_size=6,
)


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(documents)
def test_any_document_is_a_config_or_a_list_of_problems(document):
    try:
        build_gateway(document)
    except ConfigError as error:
        assert error.problems
