"""The replicated ACME state: the account, the order in progress, the certificate.

Only the Raft leader talks to the ACME server, but it records every step here before it
takes the next one, so a new leader resumes the same order: nothing issued is lost and no
second order is made. Commands are deterministic and total like every ``ClusterState``
command: keys, ids and times are made by the leader and passed in as arguments, and a
command that does not fit the state (a stale leader's step) is refused, never applied.

``seq`` grows whenever what nodes serve changes (challenge answers or the certificate),
so cores and edges know when to install it again.
"""

from __future__ import annotations

# Finished orders kept for the status page and for checks that no order was duplicated.
ORDER_HISTORY = 20
# Retry a failed order after this long, doubled per failure in a row, up to the maximum.
RETRY_FIRST = 30.0
RETRY_MAX = 6 * 3600.0


def _refuse(error: str, **details) -> dict:
    return {"ok": False, "error": error, **details}


def retry_delay(failures: int) -> float:
    return min(RETRY_MAX, RETRY_FIRST * 2 ** max(0, failures - 1))


class AcmeState:
    def __init__(self) -> None:
        # {"directory", "key" (PEM), "url" (None until registered), "created"}
        self.account: dict | None = None
        # {"id", "domains", "key", "csr", "url", "status", "challenges" {token: key
        #  {"domain", "answer"}}, "started", "created_by", "steps" [[node, status, time]]}
        self.order: dict | None = None
        # {"domains", "chain" (PEM), "key" (PEM), "not_before", "not_after", "serial",
        #  "order_url", "issued_at"}
        self.certificate: dict | None = None
        self.history: list[dict] = []  # finished orders, oldest first, without keys
        self.failures = 0  # orders failed in a row
        self.retry_at = 0.0
        self.seq = 0

    # ------------------------------------------------------------------ commands

    def apply(self, command: str, args: dict) -> dict:
        """The one entry point of the replicated ``acme`` command."""
        handler = _COMMANDS.get(command)
        if handler is None or not isinstance(args, dict):
            return _refuse(f"unknown acme command {command!r}")
        try:
            return handler(self, **args)
        except TypeError as error:  # wrong arguments: refused alike on every node
            return _refuse(f"bad arguments for acme {command}: {error}")

    def set_account(self, directory: str, key: str, now: float) -> dict:
        """Keep the first account key made for a directory; a second leader gets it back."""
        if self.account is not None and self.account["directory"] == directory:
            return {"ok": True, "account": self.account, "unchanged": True}
        self.account = {"directory": str(directory), "key": str(key), "url": None, "created": now}
        return {"ok": True, "account": self.account}

    def account_registered(self, directory: str, url: str) -> dict:
        if self.account is None or self.account["directory"] != directory:
            return _refuse("no account for this directory")
        self.account["url"] = str(url)
        return {"ok": True}

    def start_order(
        self, order_id: str, domains: list, key: str, csr: str, node: str, now: float
    ) -> dict:
        """Record an order before it is made at the ACME server: at most one at a time."""
        if self.order is not None:
            return _refuse("an order is in progress", order=self.order["id"])
        self.order = {
            "id": str(order_id),
            "domains": [str(d) for d in domains],
            "key": str(key),
            "csr": str(csr),
            "url": None,
            "status": "creating",
            "challenges": {},
            "started": float(now),
            "created_by": str(node),
            "steps": [[str(node), "creating", float(now)]],
        }
        return {"ok": True}

    def order_created(self, order_id: str, url: str, challenges: dict, node: str, now: float):
        """The ACME server made the order: publish the answers every node must serve."""
        order = self.order
        if order is None or order["id"] != order_id:
            return _refuse("not the order in progress")
        if order["url"] is not None and order["url"] != url:
            return _refuse("the order already has another URL", url=order["url"])
        order["url"] = str(url)
        order["challenges"] = {
            str(token): {"domain": str(c["domain"]), "answer": str(c["answer"])}
            for token, c in challenges.items()
        }
        self._step(order, node, "pending", now)
        self.seq += 1
        return {"ok": True, "seq": self.seq}

    def order_step(self, order_id: str, status: str, node: str, now: float) -> dict:
        order = self.order
        if order is None or order["id"] != order_id:
            return _refuse("not the order in progress")
        self._step(order, node, status, now)
        return {"ok": True}

    def finish_order(self, order_id: str, outcome: dict, node: str, now: float) -> dict:
        """Store the certificate (``outcome["certificate"]``) or the error, and end the order.

        On failure the next order waits ``retry_delay``: an ACME server rate-limits
        clients that fail in a loop.
        """
        order = self.order
        if order is None or order["id"] != order_id:
            return _refuse("not the order in progress")
        certificate = outcome.get("certificate")
        entry = {
            "id": order["id"],
            "url": order["url"],
            "domains": order["domains"],
            "started": order["started"],
            "finished": float(now),
            "created_by": order["created_by"],
            "finished_by": str(node),
            "steps": order["steps"][-20:],
        }
        if certificate is not None:
            self.certificate = {
                "domains": list(order["domains"]),
                "chain": str(certificate["chain"]),
                "key": order["key"],
                "not_before": float(certificate["not_before"]),
                "not_after": float(certificate["not_after"]),
                "serial": str(certificate["serial"]),
                "order_url": order["url"],
                "issued_at": float(now),
            }
            entry.update(outcome="issued", serial=self.certificate["serial"])
            self.failures = 0
            self.retry_at = 0.0
        else:
            self.failures += 1
            self.retry_at = float(now) + retry_delay(self.failures)
            entry.update(outcome="failed", error=str(outcome.get("error", "unknown error")))
        self.history.append(entry)
        del self.history[:-ORDER_HISTORY]
        self.order = None
        self.seq += 1  # challenges are withdrawn, a certificate may be new
        return {"ok": True, "seq": self.seq}

    def _step(self, order: dict, node: str, status: str, now: float) -> None:
        order["status"] = str(status)
        order["steps"].append([str(node), str(status), float(now)])
        del order["steps"][:-50]

    # ------------------------------------------------------------------ what nodes serve

    def served(self) -> dict:
        """What every node installs: the answers to publish and the certificate to serve."""
        certificate = self.certificate
        return {
            "seq": self.seq,
            "challenges": dict(self.order["challenges"]) if self.order else {},
            "certificate": {
                "domains": certificate["domains"],
                "chain": certificate["chain"],
                "key": certificate["key"],
                "not_after": certificate["not_after"],
                "serial": certificate["serial"],
            }
            if certificate
            else None,
        }

    # ------------------------------------------------------------------ snapshots

    def to_plain(self) -> dict:
        return {
            "account": self.account,
            "order": self.order,
            "certificate": self.certificate,
            "history": self.history,
            "failures": self.failures,
            "retry_at": self.retry_at,
            "seq": self.seq,
        }

    @classmethod
    def from_plain(cls, data: dict | None) -> AcmeState:
        state = cls()
        data = data or {}
        state.account = data.get("account")
        state.order = data.get("order")
        state.certificate = data.get("certificate")
        state.history = list(data.get("history", []))
        state.failures = int(data.get("failures", 0))
        state.retry_at = float(data.get("retry_at", 0.0))
        state.seq = int(data.get("seq", 0))
        return state


_COMMANDS = {
    "set_account": AcmeState.set_account,
    "account_registered": AcmeState.account_registered,
    "start_order": AcmeState.start_order,
    "order_created": AcmeState.order_created,
    "order_step": AcmeState.order_step,
    "finish_order": AcmeState.finish_order,
}
