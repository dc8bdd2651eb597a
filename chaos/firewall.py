"""Packet filters inside a host's namespace (nftables): the drills' partitions and loss.

Each fault gets a table of its own in each namespace it touches, so faults that overlap
are independent and healing one is deleting its tables.
"""

from __future__ import annotations

from chaos import shell


def filter_script(
    table: str,
    *,
    drop_to: list[str] = (),
    drop_from: list[str] = (),
    loss_percent: int | None = None,
) -> str:
    """The nft script of one fault's table: drop what this host sends to ``drop_to`` and
    what it receives from ``drop_from`` (with ``loss_percent``, only that share of it)."""
    if loss_percent is not None and not 0 < loss_percent <= 100:
        raise ValueError("loss_percent must be between 1 and 100")
    verdict = "drop" if loss_percent is None else f"numgen random mod 100 < {loss_percent} drop"
    lines = [f"table inet {table} {{"]
    lines += ["  chain drill_out {", "    type filter hook output priority 0; policy accept;"]
    if drop_to:
        lines.append(f"    ip daddr {{ {', '.join(drop_to)} }} {verdict}")
    lines += ["  }", "  chain drill_in {", "    type filter hook input priority 0; policy accept;"]
    if drop_from:
        lines.append(f"    ip saddr {{ {', '.join(drop_from)} }} {verdict}")
    lines += ["  }", "}"]
    return "\n".join(lines) + "\n"


def apply(topology, host: str, script: str) -> None:
    topology.run_in(host, ["nft", "-f", "-"], stdin=script)


def remove(topology, host: str, table: str) -> None:
    namespace = topology.hosts[host].namespace
    shell.run(shell.in_namespace(namespace, ["nft", "delete", "table", "inet", table]), check=False)
