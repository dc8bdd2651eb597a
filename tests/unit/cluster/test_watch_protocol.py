"""The watch stream's frames and messages, without a network."""

from __future__ import annotations

import struct

import pytest

from dispa.cluster.state import ClusterState
from dispa.cluster.watch_api import config_message, purge_messages
from dispa.cluster.watch_protocol import (
    BrokenStream,
    FrameReader,
    apply_delta,
    config_delta,
    encode_frame,
)


def test_frames_survive_any_split_and_batching() -> None:
    messages = [{"type": "heartbeat", "n": i, "blob": "x" * (i * 300)} for i in range(5)]
    stream = b"".join(encode_frame(m) for m in messages)
    for cut in (1, 3, 7, 64, len(stream)):
        reader = FrameReader()
        received = []
        for start in range(0, len(stream), cut):
            received += reader.feed(stream[start : start + cut])
        assert received == messages


def test_garbage_and_oversized_frames_are_a_broken_stream() -> None:
    with pytest.raises(BrokenStream):
        FrameReader().feed(struct.pack(">I", 5) + b"hello")
    with pytest.raises(BrokenStream):
        FrameReader().feed(struct.pack(">I", 2**31))


def test_a_small_frame_that_declares_a_huge_content_is_a_broken_stream() -> None:
    """zstandard ignores ``max_output_size`` when a frame declares its content size and
    allocates what it declares: a 5 KiB frame declaring 80 MiB must be refused unread."""
    import msgpack
    import zstandard

    from dispa.cluster.watch_protocol import MAX_FRAME

    packed = msgpack.packb({"type": "heartbeat", "blob": b"\0" * (MAX_FRAME + 16 * 2**20)})
    body = zstandard.ZstdCompressor(level=3).compress(packed)
    assert len(body) < 2**20 and zstandard.frame_content_size(body) > MAX_FRAME
    with pytest.raises(BrokenStream, match="unpacks to more than"):
        FrameReader().feed(struct.pack(">I", len(body)) + body)


def test_a_delta_applied_to_the_old_config_gives_the_new_one() -> None:
    old = {"routes": [1], "upstreams": [2], "access_log": {"enabled": True}}
    new = {"routes": [1, 3], "access_log": {"enabled": True}, "regions": []}
    delta = config_delta(old, new)
    assert set(delta["set"]) == {"routes", "regions"} and delta["unset"] == ["upstreams"]
    assert apply_delta(old, delta) == new


def _state_with(*configs: dict) -> ClusterState:
    state = ClusterState()
    for index, config in enumerate(configs):
        assert state.put_config(config, None, 1000.0 + index)["ok"]
    return state


def test_an_edge_gets_a_snapshot_then_deltas_and_never_goes_backwards() -> None:
    state = _state_with({"routes": ["a"]}, {"routes": ["b"]})
    first = config_message(state, 0)
    assert first["type"] == "snapshot" and first["revision"] == 2
    assert first["config"] == {"routes": ["b"]} and first["committed_at"] == 1001.0
    delta = config_message(state, 1)
    assert delta["type"] == "delta" and delta["base"] == 1 and delta["set"] == {"routes": ["b"]}
    assert config_message(state, 2) is None
    # An edge ahead of a lagging core is left alone, never sent an older config.
    assert config_message(state, 5) is None
    # A base the core no longer keeps gets a whole snapshot.
    assert config_message(state, -3)["type"] == "snapshot"


def test_purges_resume_from_the_edge_sequence_or_empty_the_cache() -> None:
    state = ClusterState()
    for index in range(3):
        state.purge_cache([f"http://h/{index}"], [], 1000.0)
    assert [m["seq"] for m in purge_messages(state, 1)] == [2, 3]
    assert purge_messages(state, 3) == []
    assert purge_messages(state, -1) == [{"type": "purge_all", "seq": 3}]
    state.purges = state.purges[2:]  # older purges no longer kept
    assert purge_messages(state, 0) == [{"type": "purge_all", "seq": 3}]
    assert state.purge_cache([], [], 1.0)["ok"] is False
