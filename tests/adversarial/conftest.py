"""The adversarial suite: attacks on a real ``dispa`` process, written as tests.

It reuses the integration tests' process harness (real gateway processes, free ports,
bounded waits): that module is loaded here under its own name, and its fixtures and
helpers re-exported, so tests in this folder write ``from conftest import ...`` as the
integration tests do.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_INTEGRATION = Path(__file__).resolve().parents[1] / "integration"
if str(_INTEGRATION) not in sys.path:
    sys.path.insert(0, str(_INTEGRATION))  # its conftest imports ``support``

_spec = importlib.util.spec_from_file_location("integration_harness", _INTEGRATION / "conftest.py")
integration_harness = importlib.util.module_from_spec(_spec)
sys.modules["integration_harness"] = integration_harness
_spec.loader.exec_module(integration_harness)

HOST = integration_harness.HOST
PYTHON = integration_harness.PYTHON
REPO = integration_harness.REPO
Gateway = integration_harness.Gateway
Processes = integration_harness.Processes
make_config = integration_harness.make_config
free_port = integration_harness.free_port
free_ports = integration_harness.free_ports
http_get = integration_harness.http_get
wait_until = integration_harness.wait_until
read_response = integration_harness.read_response
raw_connection = integration_harness.raw_connection
curl = integration_harness.curl

# Fixtures: found by pytest in this module's namespace.
processes = integration_harness.processes
module_processes = integration_harness.module_processes
session_processes = integration_harness.session_processes
upstream_a = integration_harness.upstream_a
