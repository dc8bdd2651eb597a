"""docs/config-reference.md is generated from the schema and must stay in step with it."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import Field

from dispa.config import schema

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "docs" / "gen_config_reference.py"


@pytest.fixture(scope="module")
def generator():
    spec = importlib.util.spec_from_file_location("gen_config_reference", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being built
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


def test_reference_is_up_to_date():
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--check"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert result.returncode == 0, (
        "docs/config-reference.md is not in step with the schema; "
        "run `python docs/gen_config_reference.py`\n" + result.stderr
    )


def test_every_field_path_has_a_description(generator):
    rows = generator.all_rows(generator.walk(schema.Gateway))
    missing = [row.path for row in rows if not row.description.strip()]
    assert missing == []
    assert generator.problems(generator.walk(schema.Gateway)) == []


def test_every_field_path_is_in_the_reference(generator):
    text = (ROOT / "docs" / "config-reference.md").read_text()
    for row in generator.all_rows(generator.walk(schema.Gateway)):
        assert f"| `{row.path}` |" in text


def test_walk_reaches_nested_lists_and_the_filter_union(generator):
    paths = {row.path for row in generator.all_rows(generator.walk(schema.Gateway))}
    for expected in (
        "drain_timeout",
        "listeners[].limits.max_header_bytes",
        "upstreams[].health.interval",
        "upstreams[].endpoints[].weight",
        "routes[].match.headers[].regex",
        "routes[].filters[type=local_rate_limit].rate",
        "filters[type=headers].request_add",
    ):
        assert expected in paths


def test_a_new_field_without_description_is_reported(generator):
    class Grown(schema.Gateway):
        brand_new_setting: int = 0
        described_setting: int = Field(0, description="Says what it does.")

    found = generator.problems(generator.walk(Grown))
    assert "no description for brand_new_setting" in found
    assert not any("described_setting" in problem for problem in found)


def test_plain_words_for_types_and_defaults(generator):
    rows = {row.path: row for row in generator.all_rows(generator.walk(schema.Gateway))}
    assert rows["upstreams[].health.interval"].type == "duration"
    assert rows["upstreams[].health.interval"].default == "`5s`"
    assert rows["listeners[].limits.max_header_bytes"].type == "size"
    assert rows["listeners[].limits.max_header_bytes"].default == "`64KiB`"
    assert rows["listeners"].default == "required"
    assert rows["upstreams[].lb"].type.startswith("one of `round_robin`")
    assert rows["upstreams[].endpoints[].weight"].type == "integer, 1 to 1000"


def test_check_mode_fails_when_the_file_differs(generator, tmp_path, monkeypatch):
    stale = tmp_path / "config-reference.md"
    stale.write_text("# an old reference\n")
    monkeypatch.setattr(generator, "OUTPUT", stale)
    monkeypatch.setattr(generator, "ROOT", tmp_path)
    assert generator.main(["--check"]) == 1
    assert generator.main([]) == 0
    assert generator.main(["--check"]) == 0
