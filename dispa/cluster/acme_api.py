"""``GET /api/v1/certificates``: ACME certificates as a core sees them.

The certificate's names, serial and validity, when it is due for renewal, the order in
progress and the last orders with their outcome, and which ACME state this node serves.
Keys never leave the cluster state through this page.
"""

from __future__ import annotations

import time

from aiohttp import web

from dispa.cluster.acme_client import utc
from dispa.cluster.acme_plan import renew_at


def certificates_status(node) -> dict:
    state = node.store.state.acme
    config = node.acme.config()
    certificate = state.certificate
    order = state.order
    described = None
    if certificate is not None:
        described = {
            "domains": certificate["domains"],
            "serial": certificate["serial"],
            "not_before": utc(certificate["not_before"]),
            "not_after": utc(certificate["not_after"]),
            "expires_in": round(certificate["not_after"] - time.time(), 1),
            "renew_at": utc(
                renew_at(certificate["not_before"], certificate["not_after"], config.renew_before)
            )
            if config
            else None,
            "order_url": certificate["order_url"],
        }
    return {
        "configured": config is not None,
        "directory": config.directory if config else None,
        "domains": list(config.domains) if config else [],
        "account": state.account["url"] if state.account else None,
        "certificate": described,
        "order": {
            key: order[key] for key in ("id", "url", "domains", "status", "started", "created_by")
        }
        | {"steps": order["steps"][-10:]}
        if order
        else None,
        "orders": state.history,
        "failures_in_a_row": state.failures,
        "retry_at": utc(state.retry_at) if state.retry_at else None,
        "seq": state.seq,
        "manager": node.acme.status(),
        # What this core's listeners serve (the leader waits for every node's applied_seq).
        "applied_seq": node.acme_tls.applied_seq,
        "served": node.acme_tls.status(),
    }


def acme_routes(node) -> list:
    async def certificates(request: web.Request) -> web.Response:
        return web.json_response(certificates_status(node))

    return [web.get("/api/v1/certificates", certificates)]
