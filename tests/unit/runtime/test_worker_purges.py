"""Purges with --workers: the supervisor's log, and each worker applying what it missed."""

from pathlib import Path

from dispa.runtime import worker_purges
from dispa.runtime.worker_purges import PurgeFollower, PurgeLog


class RecordingCache:
    """What a PurgeFollower calls on a worker's GatewayCache, recorded."""

    def __init__(self) -> None:
        self.purged: list[tuple[list[str], list[str]]] = []
        self.emptied = 0

    def purge(self, urls, tags) -> int:
        self.purged.append((urls, tags))
        return len(urls) + len(tags)

    def purge_all(self) -> int:
        self.emptied += 1
        return 7


def test_a_worker_applies_each_purge_once_in_order(tmp_path: Path):
    log = PurgeLog(tmp_path)
    cache = RecordingCache()
    follower = PurgeFollower(tmp_path, cache)
    follower.poll()  # no log yet: nothing to do
    assert follower.document() == {"seq": 0, "removed": {}}
    assert log.append(["http://a/1"], []) == 1
    assert log.append([], ["t1", "t2"]) == 2
    follower.poll()
    follower.poll()  # unchanged log: nothing applied twice
    assert cache.purged == [(["http://a/1"], []), ([], ["t1", "t2"])]
    assert follower.document() == {"seq": 2, "removed": {1: 1, 2: 2}}
    log.append(["http://a/3"], ["t3"])  # written at once after a read: still seen
    follower.poll()
    assert cache.purged[-1] == (["http://a/3"], ["t3"])
    assert follower.document()["seq"] == 3 and cache.emptied == 0


def test_a_restarted_worker_applies_the_whole_log(tmp_path: Path):
    log = PurgeLog(tmp_path)
    for index in range(3):
        log.append([f"http://a/{index}"], [])
    cache = RecordingCache()
    PurgeFollower(tmp_path, cache).poll()
    assert len(cache.purged) == 3 and cache.emptied == 0


def test_a_worker_that_missed_purges_the_log_no_longer_holds_empties_its_cache(
    tmp_path: Path, monkeypatch
):
    monkeypatch.setattr(worker_purges, "KEPT", 2)
    log = PurgeLog(tmp_path)
    for index in range(5):
        log.append([f"http://a/{index}"], [])
    cache = RecordingCache()
    follower = PurgeFollower(tmp_path, cache)
    follower.poll()
    assert cache.emptied == 1
    assert cache.purged == [(["http://a/3"], []), (["http://a/4"], [])]
    assert follower.document()["seq"] == 5


def test_only_the_last_results_are_published(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(worker_purges, "REMEMBERED", 3)
    log = PurgeLog(tmp_path)
    follower = PurgeFollower(tmp_path, RecordingCache())
    for index in range(6):
        log.append([f"http://a/{index}"], [])
        follower.poll()
    assert list(follower.document()["removed"]) == [4, 5, 6]


def test_a_damaged_log_is_skipped_until_it_is_written_again(tmp_path: Path):
    (tmp_path / worker_purges.PURGE_LOG).write_bytes(b"\xc1 not msgpack")
    cache = RecordingCache()
    follower = PurgeFollower(tmp_path, cache)
    follower.poll()
    assert cache.purged == [] and follower.document()["seq"] == 0
    PurgeLog(tmp_path).append(["http://a/1"], [])
    follower.poll()
    assert cache.purged == [(["http://a/1"], [])]
