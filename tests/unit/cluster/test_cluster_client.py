"""What the CLI sends to the admin API."""

from __future__ import annotations

from dispa.cluster.client import restore_payload


def test_a_restore_sends_only_the_revision_it_restores():
    backup = {
        "format": 1,
        "taken_at": 5.0,
        "state": {
            "revision": 3,
            "history": {str(n): {"config": {"n": n}} for n in (1, 2, 3)},
            "sessions": {"u\x00s": ["10.0.0.1:80", 99.0]},
        },
    }
    sent = restore_payload(backup)
    assert sent["state"]["history"] == {"3": {"config": {"n": 3}}}
    assert sent["state"]["sessions"] == backup["state"]["sessions"]
    assert len(backup["state"]["history"]) == 3  # the file's copy is untouched
    for not_a_backup in ({"state": 1}, [], {"state": {"revision": 9, "history": {}}}):
        assert restore_payload(not_a_backup) == not_a_backup  # the core says why
