"""ClusterState commands: deterministic, total, and the invariants the cluster relies on."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from dispa.cluster.state import HISTORY_LIMIT, ClusterState


def test_put_config_assigns_increasing_revisions_and_keeps_history():
    state = ClusterState()
    assert state.put_config({"routes": [1]}, None, 10.0, "ann") == {"ok": True, "revision": 1}
    assert state.put_config({"routes": [2]}, 1, 11.0, "bob") == {"ok": True, "revision": 2}
    assert state.current_config() == {"routes": [2]}
    assert state.history["1"]["author"] == "ann"
    assert state.history["2"]["time"] == 11.0


def test_compare_and_set_refuses_a_stale_revision_and_names_the_current_one():
    state = ClusterState()
    state.put_config({"a": 1}, None, 1.0)
    assert state.put_config({"a": 2}, 0, 2.0) == {
        "ok": False,
        "error": "stale revision",
        "revision": 1,
    }
    assert state.revision == 1


def test_an_equal_config_makes_no_new_revision():
    state = ClusterState()
    state.put_config({"a": 1}, None, 1.0)
    assert state.put_config({"a": 1}, None, 2.0) == {"ok": True, "revision": 1, "unchanged": True}


def test_rollback_is_a_new_revision_with_the_old_config():
    state = ClusterState()
    state.put_config({"v": 1}, None, 1.0)
    state.put_config({"v": 2}, None, 2.0)
    result = state.rollback(1, None, 3.0, "ops")
    assert result == {"ok": True, "revision": 3}
    assert state.current_config() == {"v": 1}
    assert "rollback to revision 1" in state.history["3"]["note"]
    assert state.rollback(99, None, 4.0)["error"] == "unknown revision"


def test_history_is_bounded():
    state = ClusterState()
    for n in range(HISTORY_LIMIT + 10):
        state.put_config({"n": n}, None, float(n))
    assert len(state.history) == HISTORY_LIMIT
    assert min(int(r) for r in state.history) == 11


def test_bad_input_is_refused_not_raised():
    state = ClusterState()
    assert state.put_config("not a mapping", None, 1.0)["ok"] is False  # type: ignore[arg-type]
    assert state.lease_quota("l", "k", "n1", 0, 10, 1.0, 5.0)["ok"] is False
    assert state.lease_quota("l", "k", "n1", 5, 10, 1.0, float("nan"))["ok"] is False
    assert state.put_session("u", "", "a:1", 10, 0)["ok"] is False
    assert state.remove_member("ghost")["ok"] is False


@settings(max_examples=60, deadline=None)
@given(
    limit=st.integers(min_value=1, max_value=500),
    requests=st.lists(
        st.tuples(
            st.sampled_from(["n1", "n2", "n3"]),
            st.integers(min_value=1, max_value=200),
            st.floats(min_value=0.0, max_value=0.999),
        ),
        max_size=60,
    ),
)
def test_the_ledger_never_grants_more_than_the_limit_in_a_window(limit, requests):
    state = ClusterState()
    granted = 0
    for node, want, offset in requests:
        result = state.lease_quota("api", "k", node, want, limit, 1.0, 100.0 + offset)
        assert result["ok"] and 0 <= result["granted"] <= want
        granted += result["granted"]
    assert granted <= limit


def test_a_new_window_starts_a_fresh_ledger_and_returns_free_tokens():
    state = ClusterState()
    assert state.lease_quota("api", "k", "n1", 10, 10, 1.0, 5.2)["granted"] == 10
    assert state.lease_quota("api", "k", "n2", 5, 10, 1.0, 5.9)["granted"] == 0
    assert state.return_quota("api", "k", "n1", 4, 5.0) == {"ok": True, "returned": 4}
    assert state.lease_quota("api", "k", "n2", 5, 10, 1.0, 5.95)["granted"] == 4
    assert state.lease_quota("api", "k", "n2", 5, 10, 1.0, 6.01)["granted"] == 5


def test_sessions_expire_by_the_time_passed_in():
    state = ClusterState()
    state.put_session("app", "s1", "10.0.0.1:80", ttl=60, now=1000.0)
    assert state.session_endpoint("app", "s1", 1059.0) == "10.0.0.1:80"
    assert state.session_endpoint("app", "s1", 1060.0) is None
    assert state.expire_sessions(1060.0) == {"ok": True, "expired": 1}
    assert state.sessions == {}


@settings(max_examples=40, deadline=None)
@given(
    commands=st.lists(
        st.one_of(
            st.tuples(st.just("put"), st.integers(0, 3), st.one_of(st.none(), st.integers(0, 5))),
            st.tuples(st.just("rollback"), st.integers(0, 6), st.none()),
            st.tuples(st.just("lease"), st.integers(1, 50), st.none()),
            st.tuples(st.just("session"), st.integers(0, 9), st.none()),
        ),
        max_size=40,
    )
)
def test_replicas_applying_the_same_commands_reach_the_same_state(commands):
    replicas = [ClusterState(), ClusterState()]
    for step, (kind, value, extra) in enumerate(commands):
        now = 1000.0 + step
        for replica in replicas:
            if kind == "put":
                replica.put_config({"v": value}, extra, now)
            elif kind == "rollback":
                replica.rollback(value, None, now)
            elif kind == "lease":
                replica.lease_quota("api", "k", "n1", value, 100, 10.0, now)
            else:
                replica.put_session("app", f"s{value}", "a:1", 5.0, now)
    first, second = (r.to_plain() for r in replicas)
    assert first == second
    restored = ClusterState.from_plain(first)
    assert restored.to_plain() == first


def test_a_late_request_for_an_old_window_cannot_reset_the_current_ledger():
    state = ClusterState()
    assert state.lease_quota("api", "k", "n1", 10, 10, 1.0, 7.5)["granted"] == 10
    late = state.lease_quota("api", "k", "n2", 10, 10, 1.0, 6.9)
    assert late == {"ok": True, "granted": 0, "window": 6.0, "outstanding": 0}
    assert state.lease_quota("api", "k", "n2", 10, 10, 1.0, 7.6)["granted"] == 0


def test_lease_terms_come_from_the_current_config_with_its_defaults():
    state = ClusterState()
    assert state.lease_terms("api") is None  # no config yet
    state.put_config(
        {"rate_limits": [{"name": "api", "limit": 5, "window": 60.0}, {"name": "b", "limit": 3}]},
        None,
        1.0,
    )
    assert state.lease_terms("api") == (5, 60.0)
    assert state.lease_terms("b") == (3, 1.0)  # the schema's default window
    assert state.lease_terms("nope") is None
    state.put_config({"rate_limits": [{"name": "api", "limit": 50}]}, None, 2.0)
    assert state.lease_terms("api") == (50, 1.0)
    assert state.lease_terms("b") is None
    state.rollback(1, None, 3.0)
    assert state.lease_terms("api") == (5, 60.0)


def test_lease_terms_skip_entries_that_are_not_rate_limits():
    state = ClusterState()
    state.put_config(
        {"rate_limits": ["junk", {"name": "x", "limit": 0}, {"name": "ok", "limit": 2}]},
        None,
        1.0,
    )
    assert state.lease_terms("x") is None and state.lease_terms("ok") == (2, 1.0)
