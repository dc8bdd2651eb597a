"""The etcd store's local mirror reads values anyone with write access to etcd could
have written: one nested past the parser's limit is skipped and logged like any other
unreadable key, never a RecursionError that stops the watch feeding the mirror."""

from __future__ import annotations

import json
import logging

from dispa.cluster.etcd_store import KeyLayout, StateMirror


def test_a_value_nested_too_deep_is_skipped_and_the_rest_applies(caplog) -> None:
    keys = KeyLayout("/dispa")
    mirror = StateMirror(keys, lambda revision: None)
    with caplog.at_level(logging.WARNING, "dispa"):
        mirror.apply("PUT", keys.edge("deep").encode(), b"[" * 100_000, 5)
        mirror.apply("PUT", keys.member("n1").encode(), b"{" * 100_000, 6)
    edge = {"region": "eu", "admin": "", "revision": 1, "purge_seq": 0, "seen": 1.0}
    mirror.apply("PUT", keys.edge("good").encode(), json.dumps(edge).encode(), 7)
    assert mirror.seen == 7
    assert list(mirror.state.edges) == ["good"] and mirror.state.members == {}
    assert "unreadable etcd key" in caplog.text
