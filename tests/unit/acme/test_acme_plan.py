"""What the ACME manager does next, decided from the state, the config and the time."""

from __future__ import annotations

from dispa.cluster.acme_plan import next_step, renew_at
from dispa.cluster.acme_state import AcmeState
from dispa.config.acme import Acme

DAY = 86400.0
CONFIG = Acme(directory="https://ca.example/dir", domains=["a.example.com"])


def with_certificate(not_before: float, not_after: float, domains=("a.example.com",)):
    state = AcmeState()
    state.account = {"directory": CONFIG.directory, "key": "K", "url": "https://ca/acct/1"}
    state.certificate = {"domains": list(domains), "not_before": not_before, "not_after": not_after}
    return state


def test_renewal_is_due_renew_before_ahead_of_expiry():
    assert renew_at(0.0, 90 * DAY, 30 * DAY) == 60 * DAY


def test_never_before_a_third_of_the_lifetime():
    # renew_before longer than the certificate lives must not renew it in a loop.
    assert renew_at(0.0, 30.0, 3600.0) == 10.0


def test_the_account_comes_first():
    assert next_step(AcmeState(), CONFIG, 0.0).action == "create_account"
    state = AcmeState()
    state.account = {"directory": "https://another/dir", "key": "K", "url": "u"}
    assert next_step(state, CONFIG, 0.0).action == "create_account"
    state.account = {"directory": CONFIG.directory, "key": "K", "url": None}
    assert next_step(state, CONFIG, 0.0).action == "register"


def test_orders_when_missing_when_names_change_and_when_due():
    state = with_certificate(0.0, 90 * DAY)
    state.certificate = None
    assert next_step(state, CONFIG, 0.0).why == "no certificate yet"
    state = with_certificate(0.0, 90 * DAY, domains=("b.example.com",))
    assert next_step(state, CONFIG, 0.0).why == "the domains changed"
    state = with_certificate(0.0, 90 * DAY)
    waiting = next_step(state, CONFIG, 10 * DAY)
    assert (waiting.action, waiting.wait) == ("wait", 50 * DAY)
    assert next_step(state, CONFIG, 61 * DAY).action == "order"


def test_an_order_in_progress_is_driven_and_a_failure_waits():
    state = with_certificate(0.0, 90 * DAY)
    state.order = {"id": "o1", "status": "pending"}
    assert next_step(state, CONFIG, 0.0).action == "drive_order"
    state.order = None
    state.retry_at = 70 * DAY
    step = next_step(state, CONFIG, 65 * DAY)
    assert step.action == "wait" and step.wait == 5 * DAY
