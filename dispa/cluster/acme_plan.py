"""What the ACME manager does next: a pure function of the replicated state, the config
and the time, so every decision can be tested by feeding values in."""

from __future__ import annotations

from dataclasses import dataclass

from dispa.cluster.acme_state import AcmeState
from dispa.config.acme import Acme


def renew_at(not_before: float, not_after: float, renew_before: float) -> float:
    """When a certificate is due for renewal: ``renew_before`` ahead of its expiry, but
    never before a third of its lifetime has passed (a ``renew_before`` longer than the
    lifetime would otherwise order again at once, over and over)."""
    lifetime = max(0.0, not_after - not_before)
    return max(not_after - renew_before, not_before + lifetime / 3)


@dataclass(frozen=True)
class Step:
    action: str  # create_account | register | order | drive_order | wait
    why: str = ""
    wait: float = 0.0  # for "wait": seconds until something is due


def next_step(state: AcmeState, config: Acme, now: float) -> Step:
    account = state.account
    if account is None or account["directory"] != config.directory:
        return Step("create_account", "no account at this directory yet")
    if account["url"] is None:
        return Step("register", "the account key is not registered yet")
    if state.order is not None:
        return Step("drive_order", f"order {state.order['id']} is {state.order['status']}")
    certificate = state.certificate
    if certificate is None:
        why = "no certificate yet"
    elif sorted(certificate["domains"]) != sorted(config.domains):
        why = "the domains changed"
    else:
        due = renew_at(certificate["not_before"], certificate["not_after"], config.renew_before)
        if now < due:
            return Step("wait", "certificate valid", due - now)
        why = "renewal is due"
    if now < state.retry_at:
        return Step("wait", f"{why}; retrying after a failed order", state.retry_at - now)
    return Step("order", why)
