"""Running the system commands a drill needs (ip, nft), with errors that say what failed."""

from __future__ import annotations

import os
import shutil
import subprocess

COMMAND_TIMEOUT = 15.0


class CommandError(Exception):
    """A system command failed; the message holds the command and what it printed."""


def run(args: list[str], *, check: bool = True, stdin: str | None = None) -> str:
    """Run ``args`` and return its standard output; CommandError when it fails."""
    try:
        done = subprocess.run(
            args,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
    except FileNotFoundError:
        raise CommandError(f"'{args[0]}' is not installed (needed by the drills)") from None
    except subprocess.TimeoutExpired:
        raise CommandError(
            f"'{' '.join(args)}' did not finish in {COMMAND_TIMEOUT:.0f} s"
        ) from None
    if check and done.returncode != 0:
        message = (done.stderr or done.stdout).strip() or f"exit status {done.returncode}"
        raise CommandError(f"'{' '.join(args)}' failed: {message}")
    return done.stdout


def in_namespace(namespace: str, args: list[str]) -> list[str]:
    """The command line that runs ``args`` inside a network namespace."""
    return ["ip", "netns", "exec", namespace, *args]


def missing_prerequisites() -> list[str]:
    """What stops drills from running on this machine, as sentences; empty when all is well."""
    problems = []
    if os.geteuid() != 0:
        problems.append("drills create network namespaces and need root (run with sudo)")
    for tool, package in (("ip", "iproute2"), ("nft", "nftables")):
        if shutil.which(tool) is None:
            problems.append(f"'{tool}' is missing: install the {package} package")
    return problems
