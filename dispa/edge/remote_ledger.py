"""The quota ledger as an edge reaches it: a lease is a call to a core's admin API.

``LeasedQuota`` (shared with cores) spends leases locally and asks for more ahead of
need; here a lease request goes to the core the edge follows, then to the others. When
no core grants it, ``CommandFailed`` sends the edge to its fallback share.
"""

from __future__ import annotations

import aiohttp

from dispa.cluster.bridge import CommandFailed

LEASE_TIMEOUT = 1.0


class RemoteLedger:
    def __init__(self, cores: list[str], preferred) -> None:
        self.cores = list(cores)
        self.preferred = preferred  # () -> the core followed now, or None
        self._session: aiohttp.ClientSession | None = None

    def _order(self) -> list[str]:
        first = self.preferred()
        return [first, *(c for c in self.cores if c != first)] if first else self.cores

    async def lease_quota(self, limit_name, key, node, want, limit, window, now) -> dict:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=LEASE_TIMEOUT)
            )
        # The core grants against its replicated config's limit and window for limit_name;
        # the edge's view of them is sent for older cores, which read them.
        body = {
            "limit_name": limit_name,
            "key": key,
            "node": node,
            "want": want,
            "limit": limit,
            "window": window,
            "now": now,
        }
        reasons = []
        for core in self._order():
            try:
                async with self._session.post(
                    f"http://{core}/api/v1/quota/lease", json=body
                ) as response:
                    if response.status == 200:
                        return await response.json()
                    reasons.append(f"{core} answered {response.status}")
            except (aiohttp.ClientError, TimeoutError, OSError) as error:
                reasons.append(f"{core}: {type(error).__name__}")
            if len(reasons) >= 2:
                break  # the request must not outlive the window it asks for
        # A request that timed out may still have been granted: those tokens are lost
        # (under-admission), never counted twice.
        raise CommandFailed("no core granted the lease (" + "; ".join(reasons) + ")", False)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
