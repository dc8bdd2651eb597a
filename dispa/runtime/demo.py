"""``dispa demo``: a gateway and two demo upstreams on loopback, with commands to try."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from dispa.runtime.single import run_single

UPSTREAM_PORTS = (9001, 9002)

DEMO_CONFIG = """\
# Written by `dispa demo`. Edit it while the demo runs: the gateway reloads it.
listeners:
  - {{name: public, address: "127.0.0.1:{port}"}}
upstreams:
  - name: app
    lb: weighted_round_robin
    endpoints: [{{address: "127.0.0.1:9001", weight: 2}}, {{address: "127.0.0.1:9002"}}]
    health: {{path: /healthz, interval: 1s}}
routes:
  - match: {{host: "*", path_exact: /hello}}
    direct_response: {{status: 200, body: "hello from the gateway itself\\n"}}
  - match: {{host: "*", path_prefix: /old/}}
    redirect: {{prefix: /new/, status: 301}}
  - match: {{host: "*", path_prefix: /limited}}
    upstream: app
    filters:
      - {{type: local_rate_limit, key: source_ip, rate: 2, burst: 2}}
  - match: {{host: "*", path_prefix: /}}
    upstream: app
    headers: {{response_add: {{x-served-by: dispa-demo}}}}
admin: {{address: "127.0.0.1:{admin}"}}
access_log: {{enabled: false}}
"""

TRY = """\
Dispa demo is running. Try:
  curl -i http://127.0.0.1:{port}/                 # weighted round robin over two upstreams (2:1)
  curl -i http://127.0.0.1:{port}/hello            # a direct response from the gateway
  curl -i http://127.0.0.1:{port}/old/page         # a redirect with prefix rewrite
  # local rate limit, 2 per second: prints 200 200 429 429
  for i in 1 2 3 4; do curl -s -o /dev/null -w '%{{http_code}}\\n' \\
    http://127.0.0.1:{port}/limited; done
  curl -s http://127.0.0.1:{admin}/api/v1/upstreams  # endpoints and their health
  curl -s http://127.0.0.1:{admin}/metrics | grep dispa_requests_total
Config: {config}  (edit it and the gateway reloads; Ctrl-C stops everything)
"""


async def run_demo(port: int, admin_port: int = 9901) -> int:
    folder = Path(tempfile.mkdtemp(prefix="dispa-demo-"))
    config = folder / "gateway.yaml"
    config.write_text(DEMO_CONFIG.format(port=port, admin=admin_port))
    upstreams = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dispa.runtime.demo_upstream",
                "--port",
                str(p),
                "--name",
                f"upstream-{p}",
            ],
            stdin=subprocess.DEVNULL,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        for p in UPSTREAM_PORTS
    ]
    try:
        await asyncio.sleep(1.0)
        for process in upstreams:
            if process.poll() is not None:
                print(
                    "a demo upstream could not start (is port 9001 or 9002 in use?)",
                    file=sys.stderr,
                )
                return 1
        asyncio.get_running_loop().call_later(
            1.0, lambda: print(TRY.format(port=port, admin=admin_port, config=config), flush=True)
        )
        return await run_single(str(config))
    finally:
        for process in upstreams:
            process.terminate()
        for process in upstreams:
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
