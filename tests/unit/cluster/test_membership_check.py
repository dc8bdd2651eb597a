"""The quorum check of membership changes (etcd's strict reconfiguration), as pure
arithmetic over this node's view of its Raft links."""

from __future__ import annotations

from dispa.cluster.membership_check import add_problem, majority, remove_problem

SELF = "10.0.0.1:7001"


def links(up: int, down: int) -> dict[str, bool]:
    return {f"10.0.0.{2 + n}:7001": n < up for n in range(up + down)}


def test_majorities():
    assert [majority(n) for n in (1, 2, 3, 4, 5, 6)] == [1, 2, 2, 3, 3, 4]


def test_an_answering_member_joins_a_healthy_cluster():
    assert add_problem(links(2, 0), new_answers=True) is None  # 4 of 4
    assert add_problem(links(1, 1), new_answers=True) is None  # 3 of 4


def test_adds_that_would_leave_no_reachable_majority_are_refused():
    # Silent members one after the other (the admin API refuses them before this, as
    # their Raft address accepts no connection): the third would cost the quorum.
    assert add_problem(links(2, 0), new_answers=False) is None  # 3 of 4, still a quorum
    assert add_problem(links(2, 1), new_answers=False) is None  # 3 of 5
    problem = add_problem(links(2, 2), new_answers=False)  # 3 of 6
    assert problem is not None and "quorum needs 4" in problem
    assert add_problem(links(0, 2), new_answers=True) is not None  # 2 of 4
    assert add_problem({}, new_answers=False) is not None  # one core: 1 of 2
    assert add_problem({}, new_answers=True) is None  # 2 of 2


def test_removals_keep_a_reachable_majority():
    assert remove_problem(links(2, 0), SELF, "10.0.0.2:7001") is None  # 2 of 2 left
    assert remove_problem(links(1, 1), SELF, "10.0.0.3:7001") is None  # the dead one
    problem = remove_problem(links(1, 1), SELF, "10.0.0.2:7001")  # a live one: 1 of 2
    assert problem is not None and "remove an unreachable core first" in problem
    assert remove_problem(links(2, 0), SELF, "192.0.2.9:7001") is None  # not a Raft member
    assert remove_problem({}, SELF, SELF) == "it is the cluster's only member"
    assert remove_problem(links(2, 0), SELF, SELF) is None  # leaving: 2 of 2 reachable
