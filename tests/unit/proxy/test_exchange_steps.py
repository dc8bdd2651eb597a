"""Exchange's steps live in modules of their own (cache_step.py, grpc/exchange_steps.py) as
its bases: the exchange must stay a slotted object (no per-request __dict__), and each
step must be found on it where the journey calls it."""

from __future__ import annotations

from dispa.proxy.cache_step import CacheSteps
from dispa.proxy.exchange import Exchange
from dispa.proxy.filter_steps import FilterSteps
from dispa.proxy.grpc.exchange_steps import GrpcSteps
from dispa.proxy.request_head_steps import RequestHeadSteps
from dispa.proxy.tunnel_steps import TunnelSteps


def test_every_base_is_slotted_so_an_exchange_has_no_dict():
    for base in Exchange.__mro__[:-1]:
        assert "__slots__" in base.__dict__, f"{base.__name__} declares no __slots__"
    assert not hasattr(Exchange, "__dictoffset__") or Exchange.__dictoffset__ == 0
    assert "__dict__" not in dir(Exchange)


def test_the_steps_are_the_exchanges_own_methods():
    for step in (
        "_consult_cache",
        "_serve_cached",
        "_cache_tee",
        "_cache_ended",
        "_plan_cached_response",
        "_reply_upstream_error",
    ):
        assert getattr(Exchange, step) is CacheSteps.__dict__[step]
    for step in (
        "_start_grpc",
        "body_may_pause",
        "_arm_grpc_wait",
        "_on_grpc_deadline",
        "_end_grpc_stream",
    ):
        assert getattr(Exchange, step) is GrpcSteps.__dict__[step]
    for step in (
        "_request_filters_stopped",
        "_run_upstream_request_filters",
        "_response_filters_stopped",
        "_start_request_pump",
        "_start_response_pump",
        "_cancel_filter_work",
        "_on_filter_timeout",
    ):
        assert getattr(Exchange, step) is FilterSteps.__dict__[step]
    for step in ("_build_head", "_build_block"):
        assert getattr(Exchange, step) is RequestHeadSteps.__dict__[step]
    for step in ("_begin_tunnel", "_on_tunnel_idle_check", "tunnel_closed"):
        assert getattr(Exchange, step) is TunnelSteps.__dict__[step]
    # The journey does not keep a copy of a step that has moved out.
    moved = set()
    for base in (CacheSteps, GrpcSteps, FilterSteps, RequestHeadSteps, TunnelSteps):
        moved |= set(base.__dict__)
    assert not (
        moved
        - {
            "__module__",
            "__slots__",
            "__doc__",
            "__qualname__",
            "__firstlineno__",
            "__static_attributes__",
        }
    ) & set(Exchange.__dict__)
