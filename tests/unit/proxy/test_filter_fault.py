"""The `fault` filter: config validation, and its on_request on a real event loop."""

import asyncio

import pytest
from pydantic import ValidationError

from dispa.cli import main
from dispa.config.filters.fault import FaultFilter
from dispa.config.schema import Gateway
from dispa.proxy.filters.fault import Fault
from dispa.proxy.filters.pending import Pending
from dispa.proxy.filters.registry import build_filter
from dispa.proxy.filters.route_chain import FilterChain
from dispa.proxy.local_reply import FAULT_ABORT, LocalReply


def gateway(*filters: dict) -> Gateway:
    return Gateway.model_validate(
        {
            "listeners": [{"name": "public", "address": "127.0.0.1:0"}],
            "routes": [{"direct_response": {"status": 200}, "filters": list(filters)}],
        }
    )


def problems(*filters: dict) -> list[tuple[str, str]]:
    with pytest.raises(ValidationError) as raised:
        gateway(*filters)
    # Pydantic also reports the route list as empty once its only route failed.
    errors = [(".".join(map(str, e["loc"])), e["msg"]) for e in raised.value.errors()]
    return [(where, message) for where, message in errors if ".filters." in where]


def fault(random=lambda: 0.0, **fields) -> Fault:
    return Fault(FaultFilter(type="fault", **fields), random=random)


def run(scenario):
    return asyncio.run(asyncio.wait_for(scenario(), 10))


# ---------------------------------------------------------------- config


def test_good_configs_parse_with_defaults():
    config = gateway(
        {"type": "fault", "delay": "50ms"},
        {"type": "fault", "abort_status": 503, "abort_percent": 2.5},
        {"type": "fault", "delay": "0s", "delay_percent": 0, "abort_status": 200},
    )
    delay, abort, both = config.routes[0].filters
    assert (delay.delay, delay.delay_percent, delay.abort_status) == (0.05, 100.0, None)
    assert (abort.delay, abort.abort_status, abort.abort_percent) == (None, 503, 2.5)
    assert (both.delay, both.delay_percent, both.abort_status) == (0.0, 0.0, 200)
    assert isinstance(build_filter(delay), Fault)


def test_a_fault_that_does_nothing_is_refused_naming_the_filter():
    [(where, message)] = problems({"type": "fault", "delay_percent": 50})
    assert "fault" in where and "a fault filter needs `delay`, `abort_status` or both" in message


@pytest.mark.parametrize(
    "fields, field",
    [
        ({"delay": "-5ms"}, "delay"),
        ({"delay": "soon"}, "delay"),
        ({"delay": "2h"}, "delay"),
        ({"delay": "1s", "delay_percent": 101}, "delay_percent"),
        ({"delay": "1s", "delay_percent": -1}, "delay_percent"),
        ({"abort_status": 199}, "abort_status"),
        ({"abort_status": 600}, "abort_status"),
        ({"abort_status": 503, "abort_percent": 100.5}, "abort_percent"),
        ({"abort_status": 503, "abort_percent": float("nan")}, "abort_percent"),
        ({"abort_status": 503, "abort": 1}, "abort"),
    ],
)
def test_bad_fields_are_refused_naming_the_field(fields, field):
    [(where, _)] = problems({"type": "fault", **fields})
    assert where.endswith(f"fault.{field}"), where


# ---------------------------------------------------------------- aborts


def test_abort_percent_100_always_aborts_with_the_status_and_reason():
    filter_ = fault(random=lambda: 0.999999, abort_status=503)
    reply = filter_.on_request(None)
    assert type(reply) is LocalReply
    assert (reply.status, reply.reason, reply.body) == (503, FAULT_ABORT, b"fault abort\n")
    assert (filter_.aborted, filter_.delayed) == (1, 0)


def test_abort_percent_0_never_aborts():
    filter_ = fault(random=lambda: 0.0, abort_status=500, abort_percent=0)
    assert filter_.on_request(None) is None
    assert filter_.aborted == 0


def test_abort_percent_is_compared_with_the_draw():
    draws = iter([0.249, 0.25])
    filter_ = fault(random=lambda: next(draws), abort_status=429, abort_percent=25)
    assert filter_.on_request(None).status == 429
    assert filter_.on_request(None) is None
    assert filter_.aborted == 1


def test_an_aborted_request_is_not_delayed():
    filter_ = fault(delay=0.5, abort_status=503)
    assert filter_.on_request(None).reason == FAULT_ABORT
    assert (filter_.aborted, filter_.delayed) == (1, 0)


# ---------------------------------------------------------------- delays


def test_a_delay_resolves_with_none_after_the_delay():
    delay = 0.05

    async def scenario():
        loop = asyncio.get_running_loop()
        filter_ = fault(delay=delay)
        started = loop.time()
        pending = filter_.on_request(None)
        assert type(pending) is Pending and not pending.done()
        answered = loop.create_future()
        pending.when_done(lambda done: answered.set_result(loop.time()))
        ended = await answered
        return filter_, pending, ended - started

    filter_, pending, waited = run(scenario)
    # asyncio may run a timer up to its clock resolution early.
    assert waited >= delay - 0.001
    assert pending.outcome() is None
    assert (filter_.delayed, filter_.aborted) == (1, 0)


def test_delay_percent_0_never_delays():
    filter_ = fault(random=lambda: 0.0, delay=1.0, delay_percent=0)
    assert filter_.on_request(None) is None  # no loop needed: no timer armed
    assert filter_.delayed == 0


def test_cancel_cancels_the_timer_and_nothing_resolves():
    async def scenario():
        loop = asyncio.get_running_loop()
        handles = []
        call_later = loop.call_later

        def recording_call_later(*args):
            handles.append(call_later(*args))
            return handles[-1]

        loop.call_later = recording_call_later
        try:
            pending = fault(delay=0.02).on_request(None)
        finally:
            del loop.call_later
        answers = []
        pending.when_done(answers.append)
        pending.cancel()
        await asyncio.sleep(0.06)
        return pending, handles, answers

    pending, handles, answers = run(scenario)
    assert len(handles) == 1 and handles[0].cancelled()
    assert pending.cancelled() and not pending.done()
    assert answers == []


def test_delay_0_is_a_real_pause_of_one_loop_turn():
    async def scenario():
        pending = fault(delay=0.0).on_request(None)
        paused_at_first = not pending.done()
        await asyncio.sleep(0)
        return paused_at_first, pending

    paused_at_first, pending = run(scenario)
    assert paused_at_first
    assert pending.done() and pending.outcome() is None


def test_delay_0_cancelled_never_resolves():
    async def scenario():
        pending = fault(delay=0.0).on_request(None)
        pending.cancel()
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        return pending

    pending = run(scenario)
    assert pending.cancelled() and not pending.done()


def test_the_chain_pauses_on_a_delay_and_resumes_with_the_rest():
    async def scenario():
        loop = asyncio.get_running_loop()
        chain = FilterChain([fault(delay=0.01)])
        resumed = loop.create_future()
        paused = chain.request.run(None, resumed.set_result)
        outcome = await resumed
        return paused, outcome

    paused, outcome = run(scenario)
    assert type(paused).__name__ == "Paused"
    assert outcome is None


# ---------------------------------------------------------------- dispa validate

BASE = 'listeners: [{name: public, address: "127.0.0.1:0"}]\n'


def test_dispa_validate_accepts_and_refuses_fault_filters(tmp_path, capsys):
    path = tmp_path / "gateway.yaml"
    path.write_text(
        BASE
        + """
filter_definitions:
  chaos: {type: fault, delay: 100ms, delay_percent: 10, abort_status: 503, abort_percent: 1}
routes:
  - name: api
    direct_response: {status: 200}
    filters: [{use: chaos}, {type: fault, abort_status: 418}]
"""
    )
    assert main(["validate", "-c", str(path)]) == 0
    capsys.readouterr()
    path.write_text(
        BASE
        + """
routes:
  - name: api
    direct_response: {status: 200}
    filters: [{type: fault, delay: 10ms, delay_percent: 150}, {type: fault}]
"""
    )
    assert main(["validate", "-c", str(path)]) != 0
    captured = capsys.readouterr()
    output = captured.out + captured.err
    assert "routes[0].filters[0].delay_percent:" in output
    assert "routes[0].filters[1]: a fault filter needs `delay`, `abort_status` or both" in output
