"""Drills need root, iproute2 and nftables: without them these tests are skipped, with the
reason, rather than failing on a machine that cannot create network namespaces."""

from __future__ import annotations

import pytest

from chaos.shell import missing_prerequisites


def pytest_collection_modifyitems(config, items):
    problems = missing_prerequisites()
    if not problems:
        return
    skip = pytest.mark.skip(reason="; ".join(problems))
    for item in items:
        if "integration/drill" in str(item.fspath):
            item.add_marker(skip)
