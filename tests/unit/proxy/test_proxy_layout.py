"""dispa/proxy is laid out by protocol, and its subpackages never hide a library of the same name.

``dispa/proxy/http2/hpack.py`` and ``dispa/proxy/grpc/`` share their last name with the
hpack library and with grpcio. Absolute imports keep them apart as long as no sys.path entry
points inside dispa/: these tests fail if that ever changes (a conftest adding a folder to
sys.path, a module run as a script from inside the package).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import dispa

DISPA_ROOT = Path(dispa.__file__).resolve().parent
LIBRARIES = ("hpack", "h2", "grpc")


def _outside_dispa(module) -> bool:
    return DISPA_ROOT not in Path(module.__file__).resolve().parents


def test_no_sys_path_entry_points_inside_the_package():
    inside = [entry for entry in sys.path if entry and DISPA_ROOT in Path(entry).resolve().parents]
    inside += [entry for entry in sys.path if entry and Path(entry).resolve() == DISPA_ROOT]
    assert inside == []


def test_protocol_modules_import_the_libraries_not_themselves():
    import grpc
    import h2.connection
    import hpack.table

    from dispa.proxy.grpc import health as grpc_health
    from dispa.proxy.http2 import hpack as own_hpack
    from dispa.proxy.http2 import upstream as h2_upstream

    assert _outside_dispa(hpack.table)
    assert _outside_dispa(h2.connection)
    assert _outside_dispa(grpc)
    # What the gateway's own modules hold is the library's code, not a sibling module.
    assert own_hpack.HeaderTable is hpack.table.HeaderTable
    assert h2_upstream.H2Connection is h2.connection.H2Connection
    assert grpc_health.H2Connection is h2.connection.H2Connection


def test_a_fresh_interpreter_resolves_the_libraries_after_loading_the_proxy():
    """Import order must not matter: load every proxy subpackage first, then the libraries."""
    script = (
        "import importlib, pathlib, sys\n"
        "import dispa.proxy.http1.server, dispa.proxy.http2.server, dispa.proxy.grpc.health\n"
        "import dispa.proxy.upstream.pools\n"
        f"for name in {LIBRARIES!r}:\n"
        "    module = importlib.import_module(name)\n"
        "    print(name, pathlib.Path(module.__file__).resolve())\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    lines = result.stdout.split("\n")
    resolved = dict(line.split(" ", 1) for line in lines if line)
    assert sorted(resolved) == sorted(LIBRARIES)
    for name, location in resolved.items():
        assert DISPA_ROOT not in Path(location).parents, f"{name} resolved to {location}"
