"""Loading config text and files: YAML problems with their line, unreadable files, every
problem reported at once, and the rendered report."""

import json
import os

import pytest

from dispa.config.errors import ConfigError, format_path
from dispa.config.load import dump_json, dump_plain, load_file, load_text

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


def load_problems(text: str, source: str = "") -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_text(text, source)
    return caught.value.problems


def test_minimal_file_loads(tmp_path):
    path = tmp_path / "dispa.yaml"
    path.write_text(MINIMAL)
    gateway = load_file(path)
    assert gateway.upstreams[0].name == "app"
    assert load_file(str(path)) == gateway


def test_json_is_yaml_too():
    gateway = load_text(MINIMAL)
    assert load_text(dump_json(gateway)) == gateway
    plain = dump_plain(gateway)
    assert plain["listeners"][0]["limits"]["header_timeout"] == 10.0  # defaults are shown
    assert json.loads(dump_json(gateway)) == plain


def test_yaml_syntax_error_names_line_and_column():
    text = "listeners:\n  - {name: a, address: x\nroutes: []\n"
    (problem,) = load_problems(text, "bad.yaml")
    assert problem.startswith("line 3, column ")
    assert "not valid YAML" in problem


def test_yaml_indentation_error_names_its_line():
    text = MINIMAL.replace("    lb: round_robin", "   lb: round_robin")
    (problem,) = load_problems(text)
    line = MINIMAL.splitlines().index("    lb: round_robin") + 1
    assert problem.startswith(f"line {line}, ") or problem.startswith(f"line {line + 1}, ")


@pytest.mark.parametrize("text", ["", "   \n", "# only a comment\n", "---\n", "null\n"])
def test_empty_config(text):
    assert load_problems(text) == ["the config is empty"]


@pytest.mark.parametrize("text", ["- a\n- b\n", "just words\n", "42\n", "[1, 2]"])
def test_top_level_must_be_a_mapping(text):
    assert load_problems(text) == [
        "the config must be a mapping of sections (listeners, routes, ...)"
    ]


def test_missing_file(tmp_path):
    path = tmp_path / "absent.yaml"
    with pytest.raises(ConfigError) as caught:
        load_file(path)
    assert caught.value.source == str(path)
    assert caught.value.problems == ["cannot read the config file: No such file or directory"]


def test_directory_instead_of_file(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load_file(tmp_path)
    assert caught.value.problems == ["cannot read the config file: Is a directory"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file(tmp_path):
    path = tmp_path / "secret.yaml"
    path.write_text(MINIMAL)
    path.chmod(0)
    with pytest.raises(ConfigError) as caught:
        load_file(path)
    assert caught.value.problems == ["cannot read the config file: Permission denied"]


def test_binary_file_is_a_config_error_not_a_crash(tmp_path):
    path = tmp_path / "image.yaml"
    path.write_bytes(b"listeners: \xff\xfe\x00\x01")
    with pytest.raises(ConfigError) as caught:
        load_file(path)
    (problem,) = caught.value.problems
    assert "not UTF-8" in problem


def test_all_problems_are_reported_at_once():
    text = """
listeners:
  - {name: public, address: "127.0.0.1:8080", limits: {header_timeout: 5x}}
  - {name: public, address: "nowhere"}
upstreams:
  - name: app
    lb: round_robin
    hash: {key: path}
    endpoints: [{address: "127.0.0.1:9001"}]
    health: {path: /healthz, intervl: 2s}
  - name: app
    endpoints: [{address: "127.0.0.1:9003"}]
routes:
  - {match: {host: "*", path_prefix: /}, upstream: app}
  - {match: {host: "a.*.com"}, upstream: app}
  - {match: {path_prefix: /x}, upstream: ap}
  - {match: {path_regex: "(["}, upstream: app}
  - {match: {path_prefix: /y}}
  - {match: {path_prefix: /z}, upstream: app, redirect: {path: /}}
filters:
  - {rate: 5}
  - {type: waf}
"""
    problems = load_problems(text, "gateway.yaml")
    expected_starts = [
        "listeners[0].limits.header_timeout: '5x' is not a duration",
        "listeners[1].address: 'nowhere' is not an address",
        "upstreams[0].hash: 'hash' applies only to lb ring_hash or maglev",
        "upstreams[0].health.intervl: unknown field",
        "routes[1].match: host 'a.*.com'",
        "routes[3].match.path_regex: bad regular expression '(['",
        "routes[4]: a route needs exactly one of upstream, redirect or direct_response",
        "routes[5]: a route needs exactly one of upstream, redirect or direct_response, "
        "not upstream and redirect",
        "filters[0]: each entry needs a 'type'",
        "filters[1]: unknown type",
        "listeners[1].name: 'public' is already used by listeners[0]",
        "upstreams[1].name: 'app' is already used by upstreams[0]",
        "routes[2].upstream: unknown upstream 'ap'",
    ]
    for start in expected_starts:
        assert sum(p.startswith(start) for p in problems) == 1, (start, problems)
    assert len(problems) == len(expected_starts), problems


def test_cross_reference_problems_show_beside_shape_errors_without_an_upstreams_section():
    text = """
listeners:
  - {name: public, address: "127.0.0.1:8080", limits: {max_header_bytes: lots}}
routes:
  - {match: {path_prefix: /}, upstream: app}
"""
    problems = load_problems(text)
    assert problems[0].startswith("listeners[0].limits.max_header_bytes: 'lots' is not a size")
    assert problems[1].startswith("routes[0].upstream: unknown upstream 'app'")
    assert len(problems) == 2


def test_cross_checks_are_not_reported_twice():
    route = '  - {match: {host: "*", path_prefix: /}, upstream: app}\n'
    text = MINIMAL.replace(route, route + "  - {match: {path_prefix: /a}, upstream: nope}\n")
    problems = load_problems(text)
    assert problems == ["routes[1].upstream: unknown upstream 'nope'; known: app"]


def test_render_format():
    error = ConfigError(
        ["routes[2].upstream: unknown upstream 'ap'", "admin.address: bad"], "g.yaml"
    )
    assert error.render() == (
        "g.yaml: 2 problems in config:\n"
        "  routes[2].upstream: unknown upstream 'ap'\n"
        "  admin.address: bad"
    )
    assert str(error) == "routes[2].upstream: unknown upstream 'ap'\nadmin.address: bad"


def test_render_one_problem_without_source():
    assert ConfigError(["the config is empty"]).render() == (
        "1 problem in config:\n  the config is empty"
    )


def test_render_from_a_file_names_the_file(tmp_path):
    path = tmp_path / "dispa.yaml"
    path.write_text(MINIMAL.replace("upstream: app", "upstream: ap"))
    with pytest.raises(ConfigError) as caught:
        load_file(path)
    rendered = caught.value.render()
    assert rendered.splitlines()[0] == f"{path}: 1 problem in config:"
    assert rendered.splitlines()[1] == "  routes[0].upstream: unknown upstream 'ap'; known: app"


@pytest.mark.parametrize(
    ("location", "text"),
    [
        (("routes", 2, "upstream"), "routes[2].upstream"),
        (("listeners", 0, "limits", "header_timeout"), "listeners[0].limits.header_timeout"),
        (("admin",), "admin"),
        ((), "(top level)"),
        (("upstreams", 1, "endpoints", 0), "upstreams[1].endpoints[0]"),
    ],
)
def test_format_path(location, text):
    assert format_path(location) == text
