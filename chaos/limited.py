"""Rate-limited traffic, and what each node says it admitted.

A client sends more than the drill's global limit to /limited, spread over every core and
edge, and records each answer (200 admitted, 429 refused). A poller reads every node's
GET /api/v1/ratelimits each second: the per-window counts it admitted and refused (a node
keeps only its last 30 windows, hence the polling) and its mode (leased or fallback).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import aiohttp

from chaos.load import Request, steady_load

POLL_EVERY = 1.0


@dataclass
class RateLimitRecord:
    # (node, window start in Unix time) -> (admitted, refused), the largest counts seen
    windows: dict[tuple[str, float], tuple[int, int]] = field(default_factory=dict)
    # (drill time, node, mode) for every poll that answered
    modes: list[tuple[float, str, str]] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)

    def merge(self, at: float, node: str, statistics: dict, limit_name: str) -> None:
        self.modes.append((at, node, statistics.get("mode", "leased")))
        for entry in statistics.get("windows", {}).get(limit_name, []):
            key = (node, float(entry["window"]))
            old = self.windows.get(key, (0, 0))
            self.windows[key] = (max(old[0], entry["admitted"]), max(old[1], entry["refused"]))


async def limited_traffic(span, targets, rate_per_target, max_requests, record) -> None:
    await steady_load(span, targets, "/limited", rate_per_target, max_requests, record.requests)


async def poll_rate_limits(span, admins: dict[str, str], limit_name, record) -> None:
    """Every POLL_EVERY seconds while ``span`` runs."""
    timeout = aiohttp.ClientTimeout(total=0.8)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        while span.running():
            answers = await asyncio.gather(*(_get(session, address) for address in admins.values()))
            at = span.now()
            for node, answer in zip(admins, answers, strict=True):
                if answer is not None:
                    record.merge(at, node, answer, limit_name)
            await span.pause(POLL_EVERY)


async def _get(session, address) -> dict | None:
    try:
        async with session.get(f"http://{address}/api/v1/ratelimits") as reply:
            return await reply.json(content_type=None) if reply.status == 200 else None
    except (aiohttp.ClientError, TimeoutError, ValueError, OSError):
        return None
