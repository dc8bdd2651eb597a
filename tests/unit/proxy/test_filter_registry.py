"""Filter types register themselves; the config union and `dispa validate` follow."""

from typing import Literal

import pytest

from dispa.cli import main
from dispa.config.errors import ConfigError
from dispa.config.filters import filter_config_models
from dispa.config.load import load_text
from dispa.config.strict import Strict
from dispa.proxy.filters.base import Filter
from dispa.proxy.filters.registry import FilterServices, build_filter, filter_types, register_filter

BASE = """
listeners: [{name: public, address: "127.0.0.1:0"}]
"""
UNKNOWN_TYPE = (
    "unknown type; expected one of 'body_replace', 'fault', 'headers', 'local_rate_limit'"
)


def test_every_config_model_has_a_registered_filter_and_stage():
    types = filter_types()
    assert set(types) == set(filter_config_models())
    assert set(types) == {"body_replace", "fault", "headers", "local_rate_limit"}
    assert types["headers"].stage == "transform"
    assert types["fault"].stage == types["body_replace"].stage == "transform"
    assert types["local_rate_limit"].stage == "rate_limit"
    for name, kind in types.items():
        assert kind.config is filter_config_models()[name]


def test_build_filter_passes_services_to_a_factory():
    seen = []

    class Spy(Filter):
        pass

    def factory(config, services):
        seen.append(services)
        return Spy()

    kind = filter_types()["headers"]
    try:
        filter_types()["headers"] = kind._replace(factory=factory)
        services = FilterServices(executor="the executor")
        built = build_filter(filter_config_models()["headers"](type="headers"), services)
    finally:
        filter_types()["headers"] = kind
    assert isinstance(built, Spy) and seen == [services]


def test_a_model_that_is_not_a_registered_config_is_refused():
    class Stray(Strict):
        type: Literal["stray"]

    with pytest.raises(ValueError, match=r"filter type 'stray'.*@filter_config"):
        register_filter(Stray, "transform", lambda config, services: Filter())


def test_an_unknown_stage_is_refused_at_registration():
    model = filter_config_models()["headers"]
    with pytest.raises(ValueError, match="filter type 'headers': unknown stage 'soon'"):
        register_filter(model, "soon", lambda config, services: Filter())


def test_registering_a_type_twice_is_refused():
    model = filter_config_models()["headers"]
    with pytest.raises(ValueError, match="registered twice"):
        register_filter(model, "transform", lambda config, services: Filter())


def problems_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        load_text(BASE + text)
    return raised.value.problems


def test_unknown_filter_type_names_the_known_ones():
    problems = problems_of(
        """
filter_definitions:
  x: {type: jwt}
routes:
  - direct_response: {status: 200}
    filters: [{type: waf}]
"""
    )
    assert f"routes[0].filters[0]: {UNKNOWN_TYPE}" in (problems[0])
    assert "use: NAME" in problems[0]
    assert problems[1] == (f"filter_definitions.x: {UNKNOWN_TYPE}")


def test_unknown_use_names_the_route_and_the_name():
    problems = problems_of(
        """
filter_definitions:
  limit: {type: local_rate_limit, rate: 1}
filters: [{use: limits}]
routes:
  - name: api
    direct_response: {status: 200}
    filters: [{use: limit}, {use: missing}]
"""
    )
    assert problems == [
        "filters[0].use: unknown filter definition 'limits' (filter_definitions has: limit)",
        "routes[0].filters[1].use: unknown filter definition 'missing' in route 'api' "
        "(filter_definitions has: limit)",
    ]


def test_a_bad_definition_field_names_its_path():
    problems = problems_of(
        """
filter_definitions:
  limit: {type: local_rate_limit, rate: 0}
routes:
  - direct_response: {status: 200}
"""
    )
    assert len(problems) == 1 and problems[0].startswith("filter_definitions.limit.rate:")


def test_dispa_validate_reports_unknown_types_and_names(tmp_path, capsys):
    path = tmp_path / "gateway.yaml"
    path.write_text(
        BASE
        + """
routes:
  - name: api
    direct_response: {status: 200}
    filters: [{type: nope}, {use: missing}]
"""
    )
    assert main(["validate", "-c", str(path)]) != 0
    captured = capsys.readouterr()
    output = captured.out + captured.err
    assert f"routes[0].filters[0]: {UNKNOWN_TYPE}" in (output)
    path.write_text(
        BASE
        + """
routes:
  - name: api
    direct_response: {status: 200}
    filters: [{use: missing}]
"""
    )
    assert main(["validate", "-c", str(path)]) != 0
    captured = capsys.readouterr()
    assert "unknown filter definition 'missing' in route 'api'" in captured.out + captured.err


def test_existing_configs_stay_valid_and_filters_executor_has_defaults():
    config = load_text(
        BASE
        + """
filters: [{type: headers, request_add: {a: b}}, {type: local_rate_limit, rate: 2}]
routes:
  - direct_response: {status: 200}
    headers: {response_add: {x: y}}
"""
    )
    assert [f.type for f in config.filters] == ["headers", "local_rate_limit"]
    assert (config.filters_executor.threads, config.filters_executor.queue) == (4, 256)
    assert config.filter_definitions == {}
    with pytest.raises(ConfigError, match=r"filters_executor\.threads"):
        load_text(BASE + "filters_executor: {threads: 0}\nroutes: [{direct_response: {}}]\n")
