"""The edge's follower backoff and its persisted snapshot, without processes."""

from __future__ import annotations

import random

from dispa.config.edge import FollowSettings
from dispa.edge.follower import ConfigFollower
from dispa.edge.persist import SNAPSHOT_FILE, load_snapshot, save_snapshot


async def _ignore(message: dict) -> None:
    pass


def test_backoff_grows_per_failed_round_with_jitter_and_resets_on_success() -> None:
    settings = FollowSettings(backoff_min=0.1, backoff_max=1.0)
    follower = ConfigFollower(["a", "b"], settings, _ignore, rng=random.Random(7))
    waits = [follower._next_wait(heard_from_it=False) for _ in range(8)]
    # Within a round (a failed core, another still to try) the wait stays short...
    assert all(w <= 0.1 for w in waits[0::2])
    # ...and each failed round doubles the longer wait up to the maximum, jittered.
    round_waits = waits[1::2]
    assert 0.05 <= round_waits[0] <= 0.1
    assert 0.1 <= round_waits[1] <= 0.2
    assert 0.4 <= round_waits[3] <= 0.8
    assert max(waits) <= 1.0
    assert follower._next_wait(heard_from_it=True) <= 0.1
    assert follower._failed_in_a_row == 0


def test_snapshot_round_trip_and_damage_is_ignored(tmp_path) -> None:
    snapshot = {"revision": 4, "config": {"routes": []}, "committed_at": 1.5, "purge_seq": 2}
    save_snapshot(str(tmp_path), snapshot)
    loaded = load_snapshot(str(tmp_path))
    assert {k: loaded[k] for k in snapshot} == snapshot
    (tmp_path / SNAPSHOT_FILE).write_bytes(b"not a snapshot")
    assert load_snapshot(str(tmp_path)) is None
    assert load_snapshot(str(tmp_path / "missing")) is None
