"""The saved ACME state (served.json) read back within bounds: a damaged or hostile file
is logged and ignored, never a RecursionError or an AttributeError at start."""

from __future__ import annotations

import logging
import os

import pytest

from dispa.cluster.acme_install import ManagedCertificates

DEEP = "[" * 100_000 + "]" * 100_000


@pytest.mark.parametrize(
    ("text", "said"),
    [
        (DEEP, "nested too deeply"),
        ('{"seq": 1, "challenges": ' + "[" * 900 + "]" * 900 + "}", "nested more than"),
        ('["not", "a", "mapping"]', "not an ACME state"),
        ('{"seq": 1, "challenges": {}, "certificate": "x"}', "not an ACME state"),
        ('{"seq": 1, "challenges": [], "certificate": null}', "not an ACME state"),
        ("{", "cannot read"),
    ],
)
def test_a_damaged_saved_state_is_ignored_and_logged(tmp_path, caplog, text, said) -> None:
    managed = ManagedCertificates(str(tmp_path))
    os.makedirs(managed.directory, mode=0o700)
    with open(os.path.join(managed.directory, "served.json"), "w") as handle:
        handle.write(text)
    with caplog.at_level(logging.ERROR, "dispa.acme"):
        managed.load()
    assert managed.served == {"seq": -1, "challenges": {}, "certificate": None}
    assert said in caplog.text, caplog.text
