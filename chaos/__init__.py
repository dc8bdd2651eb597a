"""Chaos and failover drills for Dispa: a multi-host layout in network namespaces, faults
with heal(), a bounded workload, invariant checkers with numbers, and a report.

Run them with ``dispa drill list`` and ``dispa drill run NAME``; see docs/drills.md.
"""
