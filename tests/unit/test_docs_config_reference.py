"""docs/config-reference.md is generated from the schema and must stay in step with it."""

from __future__ import annotations

import dataclasses
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import Field

from dispa.config import schema
from dispa.config.cluster import CoreConfig, NodeSettings
from dispa.config.edge import CacheSettings, EdgeConfig

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


@pytest.mark.parametrize("key", ["core", "edge"])
def test_every_node_file_field_has_a_description(generator, key):
    file = {f.key: f for f in generator.FILES}[key]
    sections = generator.walk(file.model, file=file)
    missing = [row.path for row in generator.all_rows(sections) if not row.description.strip()]
    assert missing == []
    assert generator.problems(sections, file) == []


def test_build_covers_all_three_files_without_problems(generator):
    assert [file.model for file in generator.FILES] == [schema.Gateway, CoreConfig, EdgeConfig]
    text, found = generator.build()
    assert found == []
    for file in generator.FILES:
        for row in generator.all_rows(generator.walk(file.model, file=file)):
            assert f"| `{row.path}` |" in text
    for heading in ("## Fields", "## Core node file", "## Edge node file"):
        assert f"\n{heading}\n" in text
    assert "[Core node file](#core-node-file), [Edge node file](#edge-node-file)." in text
    assert "dispa core -c core.yaml" in text and "dispa edge -c edge.yaml" in text


def test_node_file_paths_are_relative_and_reuse_gateway_sections(generator):
    rows = {
        row.path: row
        for row in generator.all_rows(generator.walk(EdgeConfig, file=generator.EDGE_FILE))
    }
    for expected in (
        "edge.name",
        "cores",
        "geo.trusted_proxies",
        "rate_limits.fallback_share",
        "follow.silence_timeout",
    ):
        assert expected in rows
    # Listeners, admin and cache are the gateway's sections: pointed to, not repeated.
    assert not any(path.startswith(("listeners[]", "admin.", "cache.")) for path in rows)
    assert "[`listeners[]`](#listeners)" in rows["listeners"].description
    assert rows["admin"].default == "as in [`admin`](#admin)"
    assert rows["cache"].default == "as in [`cache`](#cache)"
    gateway = {row.path: row for row in generator.all_rows(generator.walk(schema.Gateway))}
    assert gateway["cache.memory"].type == "size"
    assert gateway["cache.memory"].default == "`64MiB`"
    assert rows["rate_limits.fallback_share"].type == "number, above 0 and at most 1"
    core = {
        row.path: row
        for row in generator.all_rows(generator.walk(CoreConfig, file=generator.CORE_FILE))
    }
    assert core["raft.peers"].type == "list of addresses"
    assert core["raft.election_min"].default == "`300ms`"
    # Same path in two files, different descriptions: the dicts do not collide.
    assert core["listeners"].description != generator.describe("listeners", None)


def _with_file(generator, monkeypatch, key, **changes):
    files = tuple(
        dataclasses.replace(file, **changes) if file.key == key else file
        for file in generator.FILES
    )
    monkeypatch.setattr(generator, "FILES", files)


def test_a_new_edge_field_without_description_fails_the_build(generator, monkeypatch):
    class GrownCache(CacheSettings):
        compression_level: int = 3

    class GrownEdge(EdgeConfig):
        brand_new_setting: int = 0
        cache: GrownCache = GrownCache()

    _with_file(generator, monkeypatch, "edge", model=GrownEdge)
    found = generator.build()[1]
    assert "edge file: no description for brand_new_setting" in found
    assert "edge file: no description for cache.compression_level" in found
    assert generator.main(["--check"]) == 1


def test_a_new_core_field_without_description_fails_the_build(generator, monkeypatch):
    class GrownNode(NodeSettings):
        zone: str = "a"

    class GrownCore(CoreConfig):
        node: GrownNode

    _with_file(generator, monkeypatch, "core", model=GrownCore)
    assert generator.build()[1] == ["core file: no description for node.zone"]


def test_a_description_of_a_gone_node_field_fails_the_build(generator, monkeypatch):
    descriptions = {**generator.EDGE_DESCRIPTIONS, "cache.gone": "Not a field any more."}
    _with_file(generator, monkeypatch, "edge", descriptions=descriptions)
    assert generator.build()[1] == ["edge file: description of unknown field cache.gone"]


def test_a_broken_node_file_example_fails_the_build(generator, monkeypatch):
    _with_file(generator, monkeypatch, "core", example="node: {id: core-1}\n")
    found = generator.build()[1]
    assert len(found) == 1 and found[0].startswith("core file: the example does not validate")
