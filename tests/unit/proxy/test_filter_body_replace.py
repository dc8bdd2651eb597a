"""The `body_replace` filter: config validation, and its body phases inline and on a real
filter executor."""

import asyncio
import threading

import pytest
from pydantic import ValidationError

from dispa.cli import main
from dispa.config.filters.body_replace import BodyReplaceFilter
from dispa.config.schema import Gateway
from dispa.proxy.filters.base import BodyNeed
from dispa.proxy.filters.body_replace import INLINE_LIMIT, BodyReplace
from dispa.proxy.filters.executor import FilterExecutor
from dispa.proxy.filters.pending import Pending
from dispa.proxy.filters.registry import FilterServices, build_filter
from dispa.proxy.filters.route_chain import FilterChain
from dispa.proxy.local_reply import FILTER_EXECUTOR_FULL, LocalReply

RULE = {"find": "hello", "replace": "bye"}


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


def body_replace(executor=None, **fields) -> BodyReplace:
    return BodyReplace(BodyReplaceFilter(type="body_replace", **fields), executor)


class Ctx:
    """The request context's one attribute this filter uses."""

    values = None


def run(scenario):
    return asyncio.run(asyncio.wait_for(scenario(), 10))


# ---------------------------------------------------------------- config


def test_good_configs_parse_with_defaults():
    config = gateway(
        {"type": "body_replace", "response": [RULE]},
        {"type": "body_replace", "request": [RULE, {"find": "x", "replace": ""}]},
        {"type": "body_replace", "response": [RULE], "max_body": "64MiB"},
        {"type": "body_replace", "request": [RULE], "max_body": "1KiB"},
    )
    response, request, biggest, smallest = config.routes[0].filters
    assert (response.request, response.max_body) == ((), 1 << 20)
    assert response.response[0].find == "hello" and response.response[0].replace == "bye"
    assert [(r.find, r.replace) for r in request.request] == [("hello", "bye"), ("x", "")]
    assert (biggest.max_body, smallest.max_body) == (64 << 20, 1024)


def test_a_filter_without_replacements_is_refused_naming_the_filter():
    [(where, message)] = problems({"type": "body_replace", "max_body": "2MiB"})
    assert "body_replace" in where
    assert "a body_replace filter needs `request` or `response` replacements" in message


@pytest.mark.parametrize(
    "fields, field",
    [
        ({"request": [{"find": "", "replace": "x"}]}, "request.0.find"),
        ({"response": [{"find": "a"}]}, "response.0.replace"),
        ({"response": [{"find": "a", "replace": "b", "regex": True}]}, "response.0.regex"),
        ({"response": [RULE], "max_body": "1000"}, "max_body"),
        ({"response": [RULE], "max_body": "65MiB"}, "max_body"),
        ({"response": [RULE], "max_body": "lots"}, "max_body"),
    ],
)
def test_bad_fields_are_refused_naming_the_field(fields, field):
    [(where, _)] = problems({"type": "body_replace", **fields})
    assert where.endswith(f"body_replace.{field}"), where


# ---------------------------------------------------------------- inline


def test_a_body_is_replaced_inline_and_none_when_nothing_matched():
    filter_ = body_replace(request=[RULE], response=[{"find": "a", "replace": "AA"}])
    assert filter_.on_request_body(None, b"hello, hello world", True) == b"bye, bye world"
    assert filter_.on_request_body(None, b"nothing here", True) is None
    assert filter_.on_response_body(Ctx(), b"banana", True) == b"bAAnAAnAA"


def test_replacements_apply_in_order_on_utf8_bytes():
    filter_ = body_replace(
        response=[{"find": "café", "replace": "thé"}, {"find": "thé", "replace": "tea ☕"}]
    )
    body = "un café".encode()
    assert filter_.on_response_body(Ctx(), body, True) == "un tea ☕".encode()


def test_a_big_body_without_an_executor_is_replaced_inline():
    filter_ = body_replace(response=[RULE])
    body = b"x" * INLINE_LIMIT + b"hello"
    assert filter_.on_response_body(Ctx(), body, True) == b"x" * INLINE_LIMIT + b"bye"


def test_each_side_declares_a_whole_need_only_when_it_has_rules():
    only_response = body_replace(response=[RULE], max_body="2MiB")
    assert only_response.request_body is None
    assert only_response.response_body == BodyNeed("whole", 2 << 20)
    chain = FilterChain([only_response])
    assert chain.request_body is None and chain.request_body_need is None
    assert chain.response_body is not None
    assert chain.response_body_need == BodyNeed("whole", 2 << 20)

    only_request = body_replace(request=[RULE])
    chain = FilterChain([only_request])
    assert chain.response_body is None and chain.response_body_need is None
    assert chain.request_body_need == BodyNeed("whole", 1 << 20)
    assert only_request.handler("on_response_body") is None
    assert only_request.handler("on_request") is None  # no head phase either
    assert only_request.handler("on_upstream_request") is None
    assert only_request.handler("on_response") is None


def test_with_response_rules_the_upstream_is_asked_for_an_uncompressed_answer():
    f = body_replace(response=[RULE])
    headers = [(b"host", b"a"), (b"Accept-Encoding", b"gzip, br"), (b"x-a", b"1")]
    assert f.on_upstream_request(None, headers) == [(b"host", b"a"), (b"x-a", b"1")]
    assert headers[1] == (b"Accept-Encoding", b"gzip, br")  # the input is not edited
    assert f.on_upstream_request(None, [(b"host", b"a")]) is None


def test_a_response_that_comes_compressed_anyway_is_left_alone():
    f = body_replace(response=[RULE])
    ctx = Ctx()
    assert f.on_response(ctx, [(b"content-encoding", b"gzip")]) is None
    assert f.on_response_body(ctx, b"hello", True) is None  # passed on untouched
    plain = Ctx()
    assert f.on_response(plain, [(b"content-encoding", b"identity")]) is None
    assert f.on_response_body(plain, b"hello", True) == b"bye"


def test_build_filter_hands_over_the_gateway_executor():
    config = gateway({"type": "body_replace", "response": [RULE]}).routes[0].filters[0]
    executor = FilterExecutor(threads=1, queue=0)
    built = build_filter(config, FilterServices(executor=executor))
    assert isinstance(built, BodyReplace) and built.executor is executor
    assert build_filter(config).executor is None


# ---------------------------------------------------------------- on the executor


def test_a_small_body_stays_inline_even_with_an_executor():
    async def scenario():
        executor = FilterExecutor(threads=1, queue=0)
        executor.start(asyncio.get_running_loop())
        try:
            answer = body_replace(executor, request=[RULE]).on_request_body(None, b"hello", True)
            return answer, executor.submitted
        finally:
            executor.stop()

    assert run(scenario) == (b"bye", 0)


def test_a_big_body_is_replaced_on_the_executor():
    body = b"hello " * (INLINE_LIMIT // 6 + 1)
    assert len(body) > INLINE_LIMIT

    async def scenario():
        loop = asyncio.get_running_loop()
        executor = FilterExecutor(threads=1, queue=0)
        executor.start(loop)
        try:
            filter_ = body_replace(executor, response=[RULE])
            pending = filter_.on_response_body(Ctx(), body, True)
            assert type(pending) is Pending
            answered = loop.create_future()
            pending.when_done(answered.set_result)
            await answered
            unmatched = filter_.on_response_body(Ctx(), b"z" * (INLINE_LIMIT + 1), True)
            answered = loop.create_future()
            unmatched.when_done(answered.set_result)
            await answered
            return pending.outcome(), unmatched.outcome(), executor.submitted
        finally:
            executor.stop()

    replaced, unmatched, submitted = run(scenario)
    assert replaced == body.replace(b"hello", b"bye")
    assert unmatched is None
    assert submitted == 2


def test_the_chain_pauses_on_the_executor_and_resumes_with_the_new_body():
    body = b"<p>hello</p>" * (INLINE_LIMIT // 10)

    async def scenario():
        loop = asyncio.get_running_loop()
        executor = FilterExecutor(threads=1, queue=0)
        executor.start(loop)
        try:
            chain = FilterChain([body_replace(executor, request=[RULE])])
            resumed = loop.create_future()
            paused = chain.request_body.run(None, body, True, resumed.set_result)
            return paused, await resumed
        finally:
            executor.stop()

    paused, outcome = run(scenario)
    assert type(paused).__name__ == "Paused"
    assert outcome == body.replace(b"hello", b"bye")


def test_a_full_executor_answers_503_as_is():
    async def scenario():
        loop = asyncio.get_running_loop()
        executor = FilterExecutor(threads=1, queue=0)
        executor.start(loop)
        release = threading.Event()
        try:
            busy = executor.submit(release.wait, 5)
            assert type(busy) is Pending
            answer = body_replace(executor, response=[RULE]).on_response_body(
                Ctx(), b"hello" * INLINE_LIMIT, True
            )
            return answer, executor.rejected
        finally:
            release.set()
            executor.stop()

    answer, rejected = run(scenario)
    assert type(answer) is LocalReply
    assert (answer.status, answer.reason) == (503, FILTER_EXECUTOR_FULL)
    assert rejected == 1


# ---------------------------------------------------------------- dispa validate

BASE = 'listeners: [{name: public, address: "127.0.0.1:0"}]\n'


def test_dispa_validate_accepts_and_refuses_body_replace_filters(tmp_path, capsys):
    path = tmp_path / "gateway.yaml"
    path.write_text(
        BASE
        + """
filter_definitions:
  rebrand:
    type: body_replace
    response: [{find: "Acme Corp", replace: "Example Inc"}]
    max_body: 256KiB
routes:
  - name: api
    direct_response: {status: 200}
    filters:
      - use: rebrand
      - {type: body_replace, request: [{find: "v1/", replace: "v2/"}]}
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
    filters:
      - {type: body_replace, response: [{find: "", replace: x}]}
      - {type: body_replace, max_body: 128MiB}
"""
    )
    assert main(["validate", "-c", str(path)]) != 0
    captured = capsys.readouterr()
    output = captured.out + captured.err
    assert "routes[0].filters[0].response[0].find:" in output
    assert "routes[0].filters[1].max_body:" in output
