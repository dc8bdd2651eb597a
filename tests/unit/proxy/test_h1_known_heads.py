"""Heads read once and remembered (h1_parser's tables, RepeatedHeaders): a parser that
remembers gives exactly the events of one that reads every byte with llhttp, whatever the
messages and however they are split into reads."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dispa.config.schema import HeadersFilter
from dispa.proxy.events import Data, EndOfMessage, RepeatedHeaders, Request, Response
from dispa.proxy.filters.headers import HeadersEdit
from dispa.proxy.http1 import parser as h1_parser
from dispa.proxy.http1.parser import ProtocolError, RequestParser, ResponseParser
from dispa.proxy.http1.writer import request_head, response_head

GET = b"GET /a?b=1 HTTP/1.1\r\nHost: a.test\r\nUser-Agent: t/1\r\nX-Forwarded-For: 9.9.9.9\r\n\r\n"
OTHER = b"GET /other HTTP/1.1\r\nHost: b.test\r\n\r\n"
POST = b"POST /p HTTP/1.1\r\nHost: a.test\r\nContent-Length: 3\r\n\r\nabc"
CLOSE = b"GET /c HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n"
OLD = b"GET /o HTTP/1.0\r\nHost: a.test\r\n\r\n"
CHUNKED = b"PUT /u HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nxyz\r\n0\r\n\r\n"

OK = b"HTTP/1.1 200 OK\r\nServer: up\r\nContent-Length: 2\r\n\r\nok"
EMPTY = b"HTTP/1.1 204 No Content\r\nServer: up\r\n\r\n"
NOT_FOUND = b"HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\nX-Request-Id: up-1\r\n\r\nnope"
CHUNKED_RESPONSE = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n"
ZERO = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"


@pytest.fixture(autouse=True)
def empty_tables():
    h1_parser._known_requests.clear()
    h1_parser._known_responses.clear()
    yield
    h1_parser._known_requests.clear()
    h1_parser._known_responses.clear()


def read_with_llhttp_only(parser, data: bytes) -> list:
    """What the parser gives when it remembers nothing."""
    h1_parser._known_requests.clear()
    h1_parser._known_responses.clear()
    return parser.feed(data)


def test_a_repeated_request_head_means_what_it_meant_the_first_time() -> None:
    parser = RequestParser(65536)
    first = parser.feed(GET)
    assert GET in h1_parser._known_requests
    second = parser.feed(GET)
    assert [type(e) for e in second] == [Request, EndOfMessage]
    assert (first[0].stream_id, second[0].stream_id, second[1].stream_id) == (1, 2, 2)
    assert second[0][1:] == first[0][1:]
    assert second[0].path == "/a" and second[0].query == b"?b=1" and second[0].host == "a.test"
    # One list for every request with these bytes, marked so nobody edits it in place.
    assert type(second[0].headers) is RepeatedHeaders
    assert second[0].headers is first[0].headers
    # Another connection's parser knows the head too.
    third = RequestParser(65536).feed(GET)
    assert third[0].stream_id == 1 and third[0].headers is first[0].headers


def test_messages_that_change_the_connection_or_carry_a_body_are_not_remembered() -> None:
    for data in (POST, CLOSE, OLD, CHUNKED):
        parser = RequestParser(65536)
        once, again = parser.feed(data), RequestParser(65536).feed(data)
        assert data not in h1_parser._known_requests
        assert once == again
    body = RequestParser(65536).feed(POST)
    assert [type(e) for e in body] == [Request, Data, EndOfMessage]


def test_known_bytes_in_the_middle_of_a_request_are_read_as_its_rest() -> None:
    parser = RequestParser(65536)
    parser.feed(OTHER)
    parser.feed(b"GET /first HTTP/1.1\r\nX-Note: ")
    events = parser.feed(OTHER)  # the rest of a header value, then the head's end
    assert [type(e) for e in events] == [Request, EndOfMessage]
    assert events[0].path == "/first"
    assert events[0].headers == [(b"X-Note", b"GET /other HTTP/1.1"), (b"Host", b"b.test")]


def test_a_smaller_head_limit_still_refuses_a_known_head() -> None:
    RequestParser(65536).feed(GET)
    with pytest.raises(ProtocolError) as refused:
        RequestParser(40).feed(GET)
    assert refused.value.status == 431


def test_the_table_stays_bounded() -> None:
    parser = RequestParser(65536)
    for i in range(h1_parser._KNOWN_LIMIT + 10):
        parser.feed(b"GET /%d HTTP/1.1\r\nHost: a\r\n\r\n" % i)
    assert len(h1_parser._known_requests) <= h1_parser._KNOWN_LIMIT
    huge = (
        b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + b"x" * h1_parser._KNOWN_HEAD_BYTES + b"\r\n\r\n"
    )
    parser.feed(huge)
    assert huge not in h1_parser._known_requests


def test_a_repeated_response_head_means_what_it_meant_the_first_time() -> None:
    parser = ResponseParser()
    first = parser.feed(OK)
    assert OK[:-2] in h1_parser._known_responses
    other = ResponseParser()
    other.stream_id = 5
    second = other.feed(OK)
    assert [type(e) for e in second] == [Response, Data, EndOfMessage]
    assert second[0][1:] == first[0][1:] and second[0].stream_id == 5
    assert second[0].headers is first[0].headers
    assert second[1] == Data(5, b"ok") and second[2] == EndOfMessage(5)
    parser.feed(ZERO)
    assert parser.feed(ZERO) == [
        Response(0, 200, b"OK", [(b"Content-Length", b"0")], "1.1", True, 0),
        EndOfMessage(0),
    ]


def test_a_known_response_head_with_its_body_split_is_read_by_llhttp() -> None:
    ResponseParser().feed(OK)
    parser = ResponseParser()
    first = parser.feed(OK[:-1])
    assert [type(e) for e in first] == [Response, Data]
    assert first[1].data == b"o"
    assert parser.feed(b"k") == [Data(0, b"k"), EndOfMessage(0)]
    assert parser.feed(OK)[1].data == b"ok"


def test_responses_without_a_length_or_to_head_are_not_taken_from_the_table() -> None:
    for data in (EMPTY, CHUNKED_RESPONSE):
        ResponseParser().feed(data)
    assert not h1_parser._known_responses
    parser = ResponseParser()
    parser.feed(OK)
    parser.expect_no_body = True
    head_only = parser.feed(OK[:-2])  # the answer to a HEAD: its length is not a body
    assert [type(e) for e in head_only] == [Response, EndOfMessage]
    assert parser.feed(OK)[1].data == b"ok"  # and the next one is whole again


@st.composite
def reads(draw, messages: list[bytes]):
    """Some of the messages, repeated, joined, and cut into reads at random places."""
    chosen = draw(st.lists(st.sampled_from(messages), min_size=1, max_size=8))
    stream = b"".join(chosen)
    cuts = sorted(draw(st.lists(st.integers(0, len(stream)), max_size=6)))
    points = [0, *cuts, len(stream)]
    whole = draw(st.booleans())
    if whole:  # read by read, one message each: the case the tables serve
        return chosen
    return [stream[a:b] for a, b in itertools.pairwise(points) if b > a]


@settings(max_examples=150, deadline=None)
@given(reads([GET, OTHER, POST, CHUNKED, GET + OTHER]))
def test_requests_parse_alike_with_and_without_the_table(chunks) -> None:
    # Each read goes first to a parser that must use llhttp (it also fills the table),
    # then to one that takes whatever the table offers.
    remembering, forgetting = RequestParser(65536), RequestParser(65536)
    for data in chunks:
        expected = read_with_llhttp_only(forgetting, data)
        assert remembering.feed(data) == expected


@st.composite
def response_reads(draw, messages: list[bytes]):
    """Some of the responses, each cut into reads at random places: a read never holds
    the end of one and bytes of the next, as an upstream answers one request at a time
    (bytes after a response's end are surplus: test_h1_response_framing.py)."""
    out = []
    for message in draw(st.lists(st.sampled_from(messages), min_size=1, max_size=8)):
        cuts = sorted(draw(st.lists(st.integers(1, len(message) - 1), max_size=3)))
        points = [0, *cuts, len(message)]
        out += [message[a:b] for a, b in itertools.pairwise(points) if b > a]
    return out


@settings(max_examples=150, deadline=None)
@given(response_reads([OK, NOT_FOUND, ZERO, CHUNKED_RESPONSE]))
def test_responses_parse_alike_with_and_without_the_table(chunks) -> None:
    remembering, forgetting = ResponseParser(), ResponseParser()
    for data in chunks:
        expected = read_with_llhttp_only(forgetting, data)
        assert remembering.feed(data) == expected
    assert not remembering.surplus and not forgetting.surplus


def test_two_responses_in_one_read_are_one_response_and_surplus() -> None:
    for _ in range(2):  # the second time, the first head is a known one
        parser = ResponseParser()
        events = parser.feed(OK + NOT_FOUND)
        assert [type(e) for e in events] == [Response, Data, EndOfMessage]
        assert events[0].status == 200 and parser.surplus


def test_the_head_writer_renders_a_repeated_list_as_a_plain_one() -> None:
    fields = [
        (b"Host", b"a"),
        (b"Via", b"1.0 x"),
        (b"Connection", b"keep-alive, X-P"),
        (b"X-P", b"1"),
        (b"X-Forwarded-For", b"9.9.9.9"),
    ]
    shared = RepeatedHeaders(fields)
    for client, rid in (("10.0.0.1", b"r1"), ("10.0.0.2", b"r2")):
        kwargs = dict(
            client_ip=client,
            scheme="http",
            host=b"a",
            request_id=rid,
            content_length=None,
            chunked=False,
        )
        assert request_head("GET", b"/", shared, **kwargs) == request_head(
            "GET", b"/", fields, **kwargs
        )
    assert shared.request_fields is not None
    answer = [(b"Server", b"up"), (b"X-Request-Id", b"up-1"), (b"Via", b"1.1 cdn")]
    shared = RepeatedHeaders(answer)
    for keep_alive in (True, False):
        kwargs = dict(content_length=2, chunked=False, keep_alive=keep_alive, request_id=b"r")
        assert response_head(200, b"OK", shared, **kwargs) == response_head(
            200, b"OK", answer, **kwargs
        )
    rendered = response_head(
        200, b"OK", shared, content_length=2, chunked=False, keep_alive=True, request_id=b"r"
    )
    assert b"x-request-id: r\r\n" not in rendered and b"X-Request-Id: up-1\r\n" in rendered
    # A local reply (not proxied) keeps an upstream-less Via as it is: never the memo's.
    local = response_head(
        200, b"OK", shared, content_length=2, chunked=False, keep_alive=True, proxied=False
    )
    assert b"Via: 1.1 cdn\r\n" in local


def test_the_headers_filter_edits_a_repeated_list_once() -> None:
    edit = HeadersEdit(
        HeadersFilter(type="headers", request_add={"x-a": "1"}, response_remove=["server"])
    )

    class Ctx:
        request_headers = None

    shared = RepeatedHeaders([(b"Host", b"a"), (b"X-A", b"old")])
    outputs = []
    for _ in range(2):
        ctx = Ctx()
        ctx.request_headers = shared
        edit.on_request(ctx)
        outputs.append(ctx.request_headers)
    assert outputs[0] is outputs[1] and type(outputs[0]) is RepeatedHeaders
    assert outputs[0] == [(b"Host", b"a"), (b"x-a", b"1")]
    plain = Ctx()
    plain.request_headers = [(b"Host", b"b")]
    edit.on_request(plain)
    assert plain.request_headers == [(b"Host", b"b"), (b"x-a", b"1")]
    answer = RepeatedHeaders([(b"Server", b"up"), (b"X-B", b"2")])
    first, second = edit.on_response(Ctx(), answer), edit.on_response(Ctx(), answer)
    assert first is second and first == [(b"X-B", b"2")]
    other = RepeatedHeaders([(b"Server", b"up"), (b"X-C", b"3")])
    assert edit.on_response(Ctx(), other) == [(b"X-C", b"3")]


def test_the_connections_take_the_tables_entries_as_they_are() -> None:
    # The lanes of the connections use the entries without a copy: stream id 0, shared.
    RequestParser(65536).feed(GET)
    parser = RequestParser(65536)
    first, second = parser.known_request(GET), parser.known_request(GET)
    assert first is second and first.stream_id == 0 and first.path == "/a"
    assert parser.feed(GET)[0].stream_id == 3  # feed still numbers what it returns
    assert parser.known_request(OTHER) is None  # not read before
    ResponseParser().feed(OK)
    upstream = ResponseParser()
    assert upstream.known_response(OK) is upstream.known_response(OK)
    assert upstream.known_response(OK[:-1]) is None  # its body is not all there
