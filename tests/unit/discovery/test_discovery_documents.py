"""Documents providers read, parsed within bounds: a hostile or corrupted one is an error
naming its source, never a RecursionError, a traceback or memory without limit.

Sources: a pools file and a kubeconfig (operators), an etcd value (any instance that
registers), Consul and Kubernetes answers (peers on the network; their wire tests are in
tests/integration/discovery/test_hostile_sources.py).
"""

from __future__ import annotations

import pytest

from dispa.config.discovery import Discovery
from dispa.discovery.documents import MAX_DOCUMENT_BYTES, BadDocument, parse_answer
from dispa.discovery.etcd_provider import EtcdProvider
from dispa.discovery.file_provider import read_pools_file
from dispa.discovery.kubernetes_auth import from_kubeconfig
from dispa.discovery.kubernetes_provider import json_lines
from dispa.discovery.provider import DiscoveredEndpoint
from dispa.discovery.running import RunningProviders

DEEP = 100_000  # past Python's recursion limit: a RecursionError before the bounds
NESTED = 900  # within it, but past the bound on nesting (bounds.MAX_DEPTH)
HUGE = "9" * 5000  # an integer past what YAML's and JSON's int() read


def deep_yaml(depth: int) -> str:
    return "web: " + "[" * depth + "]" * depth + "\n"


def deep_json(depth: int) -> str:
    return '{"web": ' + "[" * depth + "]" * depth + "}"


# A few aliases that stand for a billion values.
LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(8)
)


# ---------------------------------------------------------------- the file provider


@pytest.mark.parametrize(
    ("name", "text", "said"),
    [
        ("deep.yaml", deep_yaml(DEEP), "nested more than"),
        ("nested.yaml", deep_yaml(NESTED), "nested more than"),
        ("deep.json", deep_json(DEEP), "nested too deeply"),
        ("nested.json", deep_json(NESTED), "nested more than"),
        ("laughs.yaml", LAUGHS, "values"),
        ("huge-number.yaml", "web: [{address: '10.0.0.1:80', weight: " + HUGE + "}]", "digits"),
        ("huge-number.json", '{"web": [{"address": "a:1", "weight": ' + HUGE + "}]}", "integer"),
        ("broken.yaml", "web: [10.0.0.1:80\n", "not valid YAML"),
        ("broken.json", '{"web": [', "not valid JSON"),
        ("binary.yaml", "\udcff", "not UTF-8"),
    ],
)
def test_a_pools_file_past_the_bounds_is_an_error_naming_the_file(tmp_path, name, text, said):
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8", "surrogateescape"))
    with pytest.raises(BadDocument) as refused:
        read_pools_file(path)
    assert str(path) in str(refused.value) and said in str(refused.value), refused.value


def test_a_pools_file_larger_than_the_bound_is_not_read_whole(tmp_path):
    path = tmp_path / "huge.yaml"
    with open(path, "wb") as file:
        file.truncate(MAX_DOCUMENT_BYTES + 1)  # sparse: costs no disk
    with pytest.raises(BadDocument, match="larger than 16 MiB"):
        read_pools_file(path)


def test_a_good_pools_file_still_reads(tmp_path):
    path = tmp_path / "eps.yaml"
    path.write_text("web: [10.0.0.1:80, {address: '10.0.0.2:80', weight: 3}]\n")
    assert read_pools_file(path) == {
        "web": [DiscoveredEndpoint("10.0.0.1:80"), DiscoveredEndpoint("10.0.0.2:80", 3)]
    }


# ---------------------------------------------------------------- kubeconfig


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("clusters: " + "[" * DEEP + "]" * DEEP, "nested more than"),
        ("clusters: " + "[" * NESTED + "]" * NESTED, "nested more than"),
        (LAUGHS, "values"),
        ("clusters: [\n", "not valid YAML"),
        ("- just a list\n", "not a kubeconfig"),
        ("current-context: t\ncontexts: [{name: t, context: {}}]\n", "not a kubeconfig"),
    ],
)
def test_a_bad_kubeconfig_is_a_value_error_naming_the_file(tmp_path, text, said):
    path = tmp_path / "kubeconfig"
    path.write_text(text)
    with pytest.raises(ValueError) as refused:
        from_kubeconfig(path)
    assert str(path) in str(refused.value) and said in str(refused.value), refused.value


async def test_a_provider_whose_kubeconfig_is_too_deep_is_reported_not_raised(tmp_path):
    path = tmp_path / "kubeconfig"
    path.write_text("clusters: " + "[" * DEEP + "]" * DEEP)
    entry = {"type": "kubernetes", "name": "k8s", "kubeconfig": str(path)}
    entry["pools"] = {"web": {"service": "web"}}
    running = RunningProviders(lambda pools: None)
    try:
        await running.follow(Discovery.model_validate({"providers": [entry]}))
        assert "nested more than" in running.build_errors["k8s"]
        assert str(path) in running.build_errors["k8s"]
    finally:
        await running.stop()


# ---------------------------------------------------------------- an etcd value


@pytest.mark.parametrize(
    ("value", "said"),
    [
        (b"[" * DEEP, "nested too deeply"),
        (b"[" * NESTED + b"]" * NESTED, "nested more than"),
        (b'{"address": "10.0.0.1:80", "weight": 1' + b"0" * 100 + b"}", "larger than 64 bits"),
        (b"\xff\xfe", "not valid JSON"),
    ],
)
def test_a_bad_etcd_value_is_skipped_and_named_and_the_others_stay(value, said):
    provider = EtcdProvider("e", ["127.0.0.1:1"], prefix="/p")
    instances: dict = {}
    provider._apply(instances, "/p/web/good", b'{"address": "10.0.0.1:80"}')
    provider._apply(instances, "/p/web/bad", value)
    assert list(instances) == ["/p/web/good"]
    assert "etcd key /p/web/bad" in provider.skipped["/p/web/bad"]
    assert said in provider.skipped["/p/web/bad"], provider.skipped


# ---------------------------------------------------------------- answers and watch lines


def test_an_answer_too_deep_or_too_large_is_a_bad_document():
    with pytest.raises(BadDocument, match="consul answer: the JSON document is nested too deep"):
        parse_answer(b"[" * DEEP, "consul answer")
    with pytest.raises(BadDocument, match="consul answer: larger than 16 MiB"):
        parse_answer(b" " * (MAX_DOCUMENT_BYTES + 1), "consul answer")
    with pytest.raises(BadDocument, match="consul answer: not valid JSON"):
        parse_answer(b"{", "consul answer")
    # An answer is not a config: a large service may hold more values than a config may.
    many = b"[" + b",".join([b"{}"] * 300_000) + b"]"
    assert len(parse_answer(many, "consul answer")) == 300_000


async def chunks_of(*chunks: bytes):
    for chunk in chunks:
        yield chunk


async def events(*chunks: bytes) -> list:
    return [event async for event in json_lines(chunks_of(*chunks), "the watch")]


async def test_watch_lines_split_across_chunks_and_many_per_chunk():
    assert await events(b'{"a":', b' 1}\n{"b": 2}\n\n{"c"', b": 3}") == [
        {"a": 1},
        {"b": 2},
        {"c": 3},
    ]


async def test_a_watch_line_too_deep_is_a_bad_document():
    with pytest.raises(BadDocument, match="the watch: the JSON document is nested too deep"):
        await events(b'{"type": "ADDED"}\n', b"[" * DEEP + b"\n")


async def test_a_watch_line_without_end_stops_at_the_bound():
    chunk = b" " * 65536
    count = MAX_DOCUMENT_BYTES // len(chunk) + 2
    with pytest.raises(BadDocument, match="the watch: a line longer than 16 MiB"):
        await events(*([chunk] * count))
