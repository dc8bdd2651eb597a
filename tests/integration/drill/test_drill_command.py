"""`dispa drill` from the command line: progress lines, and Ctrl-C in the middle of a
drill leaves no namespace, link or process behind."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

from chaos import shell

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(__file__))))


def test_ctrl_c_in_the_middle_of_a_drill_removes_everything(tmp_path):
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dispa",
            "drill",
            "run",
            "follower-kill",
            "--duration",
            "60s",
            "--report-dir",
            str(tmp_path),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    lines, prefix = [], None
    deadline = time.monotonic() + 90
    try:
        for line in process.stdout:
            lines.append(line)
            match = re.match(r"topology (dx[0-9a-f]{4}):", line)
            if match:
                prefix = match.group(1)
            if "workload running" in line or time.monotonic() > deadline:
                break
        assert prefix is not None, "".join(lines)
        assert prefix in shell.run(["ip", "netns", "list"])
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130
    assert prefix not in shell.run(["ip", "netns", "list"]), "".join(lines) + rest
    assert prefix not in shell.run(["ip", "-o", "link", "show"])
    assert "Traceback" not in rest
    assert "drill interrupted" in rest
