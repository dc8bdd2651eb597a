"""Robustness: thousands of malformed and mutated requests against a real gateway process.

A real ``dispa run`` sits in front of a real demo upstream. A seeded mutator (the same
cases on every run; ``DISPA_FUZZ_SEED`` and ``DISPA_FUZZ_CASES`` change them) takes valid
requests and flips bytes, truncates, duplicates and bloats headers, breaks chunk sizes,
mixes Content-Length with Transfer-Encoding, adds NUL bytes, huge request lines, bogus
methods and versions, pipelines garbage behind good requests, and sends a malformed rest
after a pause, once the request is already on its way upstream. Each case has its own
connection and a short deadline. The run happens once per module; each property is its
own test:

- whatever comes back is HTTP/1.1 that llhttp parses, every status line ``HTTP/1.1 NNN``;
- the gateway closes every connection within the client's timeout plus its header_timeout
  (header, body and idle timeouts are 1 s here), so nothing hangs;
- the process is alive at the end, still proxies a GET with 200, and admin /healthz is 200;
- no exception reaches the log (the data plane turns every failure into a local reply);
- no upstream connection outlives its exchange (pooled ones expire after 1 s here).
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import socket
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httptools
import pytest
from conftest import (
    HOST,
    Processes,
    http_get,
    make_config,
    raw_connection,
    read_response,
    wait_until,
)

SEED = int(os.environ.get("DISPA_FUZZ_SEED", "20240611"))
CASES = int(os.environ.get("DISPA_FUZZ_CASES", "5000"))
CONCURRENCY = 96
HEADER_TIMEOUT = 1.0  # limits.header_timeout (and body and idle) in the gateway config
CLIENT_TIMEOUT = 2.0  # the short socket timeout of each case
HANG_LIMIT = CLIENT_TIMEOUT + HEADER_TIMEOUT  # past this, an open connection is a hang
TIME_BUDGET = 50.0  # no new cases start after this many seconds
MAX_HEADER_BYTES = 16384
STATUS_LINE = re.compile(rb"^HTTP/1\.1 [1-5][0-9][0-9] ")


# ---------------------------------------------------------------- the mutator

BASE_REQUESTS = [
    b"GET / HTTP/1.1\r\nHost: fuzz.test\r\nUser-Agent: fuzz\r\nAccept: */*\r\n\r\n",
    b"GET /headers?a=1&b=two HTTP/1.1\r\nHost: fuzz.test\r\nX-Request-Id: r1\r\n"
    b"Cookie: a=b\r\n\r\n",
    b"POST /count HTTP/1.1\r\nHost: fuzz.test\r\nContent-Type: text/plain\r\n"
    b"Content-Length: 11\r\n\r\nhello world",
    b"POST /echo HTTP/1.1\r\nHost: fuzz.test\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    b"PUT /count HTTP/1.1\r\nHost: fuzz.test\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"3;ext=1\r\nabc\r\n0\r\nX-Trailer: t\r\n\r\n",
    b"GET /status/404 HTTP/1.1\r\nHost: fuzz.test\r\nConnection: close\r\n\r\n",
    b"GET /bytes/300 HTTP/1.1\r\nHost: fuzz.test\r\n\r\n",
    b"GET /direct HTTP/1.1\r\nHost: fuzz.test\r\n\r\n",
    b"GET /old/page?x=1 HTTP/1.1\r\nHost: fuzz.test:8080\r\n\r\n",
    b"GET http://fuzz.test/headers HTTP/1.1\r\nHost: fuzz.test\r\n\r\n",
    b"GET / HTTP/1.0\r\nHost: [::1]:80\r\nConnection: keep-alive\r\n\r\n",
    b"OPTIONS * HTTP/1.1\r\nHost: fuzz.test\r\n\r\n",
    b"DELETE /x HTTP/1.1\r\nHost: fuzz.test\r\nContent-Length: 0\r\nExpect: 100-continue\r\n\r\n",
    b"GET /ws HTTP/1.1\r\nHost: fuzz.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
]
INTERESTING_BYTES = b'\x00\r\n :;,\t\x7f\xff/?#%"\\'
BOGUS_METHODS = [b"get", b"G\x00T", b"FOO", b"GETT", b"X" * 300, b"", b"P OST", b"\xc3\xa9"]
BOGUS_VERSIONS = [
    b"HTTP/1.2",
    b"HTTP/2.0",
    b"HTTP/0.9",
    b"HTTP/1.1.1",
    b"HTTPS/1.1",
    b"http/1.1",
    b"HTTP/1",
    b"HTTP/11",
    b"",
    b"HTTP/1.1 x",
]
BAD_CHUNK_SIZES = [
    b"zz",
    b"-1",
    b"ffffffffffffffffffff",
    b"",
    b" 5",
    b"5 ",
    b"0x5",
    b"5;",
    b"\x00",
    b"fffffffffffffff",
    b"1" * 40,
]
FRAMING_CONFLICTS = [
    b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
    b"Content-Length: 5\r\nContent-Length: 6\r\n",
    b"Content-Length: 5, 5\r\n",
    b"Content-Length: -5\r\n",
    b"Content-Length: 99999999999999999999999\r\n",
    b"Content-Length: 1e3\r\n",
    b"Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n",
    b"Transfer-Encoding: xchunked\r\n",
    b"Transfer-Encoding: chunked, gzip\r\n",
    b"Transfer-Encoding:\tchunked\r\n",
    b"Transfer-Encoding: chunked\r\n Content-Length: 3\r\n",
    b"Content-Length : 5\r\n",
    b"Host: second.test\r\n",
]


def _head_and_body(data: bytes) -> tuple[bytes, bytes]:
    end = data.find(b"\r\n\r\n")
    return (data, b"") if end < 0 else (data[: end + 2], data[end + 4 :])


def _join(head: bytes, body: bytes) -> bytes:
    return head + b"\r\n" + body


def flip_bytes(rng: random.Random, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        if out:
            out[rng.randrange(len(out))] = rng.choice(
                INTERESTING_BYTES + bytes([rng.randrange(256)])
            )
    return bytes(out)


def truncate(rng: random.Random, data: bytes) -> bytes:
    return data[: rng.randrange(len(data))]


def insert_bytes(rng: random.Random, data: bytes) -> bytes:
    at = rng.randrange(len(data) + 1)
    noise = bytes(rng.choice(INTERESTING_BYTES) for _ in range(rng.randint(1, 8)))
    return data[:at] + noise + data[at:]


def delete_span(rng: random.Random, data: bytes) -> bytes:
    at = rng.randrange(len(data))
    return data[:at] + data[at + rng.randint(1, 16) :]


def duplicate_header(rng: random.Random, data: bytes) -> bytes:
    head, body = _head_and_body(data)
    lines = head.split(b"\r\n")
    if len(lines) < 3:
        return data
    line = lines[rng.randrange(1, len(lines) - 1)]
    copies = rng.choice([1, 2, 50, 500])
    return _join(b"\r\n".join(lines[:-1] + [line] * copies) + b"\r\n", body)


def oversized_header(rng: random.Random, data: bytes) -> bytes:
    head, body = _head_and_body(data)
    size = rng.choice([MAX_HEADER_BYTES - 200, MAX_HEADER_BYTES + 1, 4 * MAX_HEADER_BYTES, 200_000])
    name = rng.choice([b"X-Big", b"Cookie", b"X" * 2000])
    return _join(head + name + b": " + b"v" * size + b"\r\n", body)


def many_headers(rng: random.Random, data: bytes) -> bytes:
    head, body = _head_and_body(data)
    extra = b"".join(b"X-H%d: %d\r\n" % (i, i) for i in range(rng.choice([100, 1000, 3000])))
    return _join(head + extra, body)


def framing_conflict(rng: random.Random, data: bytes) -> bytes:
    head, body = _head_and_body(data)
    return _join(head + rng.choice(FRAMING_CONFLICTS), body or b"hello")


def bad_chunks(rng: random.Random, data: bytes) -> bytes:
    head = (
        b"POST /echo HTTP/1.1\r\nHost: fuzz.test\r\nTransfer-Encoding: chunked\r\n\r\n"
        if rng.random() < 0.5
        else _head_and_body(BASE_REQUESTS[3])[0] + b"\r\n"
    )
    size = rng.choice(BAD_CHUNK_SIZES)
    tail = rng.choice([b"\r\nabc\r\n0\r\n\r\n", b"\r\n", b"\r\nhello\r\n", b"\nabc\n0\n\n", b""])
    return head + b"5\r\nhello\r\n" * rng.randint(0, 2) + size + tail


def nul_bytes(rng: random.Random, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        out.insert(rng.randrange(len(out) + 1), 0)
    return bytes(out)


def huge_request_line(rng: random.Random, data: bytes) -> bytes:
    target = b"/" + b"a" * rng.choice([8000, MAX_HEADER_BYTES + 10, 100_000, 1_000_000])
    return b"GET " + target + b" HTTP/1.1\r\nHost: fuzz.test\r\n\r\n"


def bogus_method(rng: random.Random, data: bytes) -> bytes:
    _, _, rest = data.partition(b" ")
    return rng.choice(BOGUS_METHODS) + b" " + rest


def bogus_version(rng: random.Random, data: bytes) -> bytes:
    line, sep, rest = data.partition(b"\r\n")
    parts = line.split(b" ")
    parts[-1] = rng.choice(BOGUS_VERSIONS)
    return b" ".join(parts) + sep + rest


def line_endings(rng: random.Random, data: bytes) -> bytes:
    return data.replace(b"\r\n", rng.choice([b"\n", b"\r", b"\n\r", b"\r\r\n"]), rng.randint(1, 4))


def pipelined_garbage(rng: random.Random, data: bytes) -> bytes:
    good = b"".join(rng.choice(BASE_REQUESTS[:9]) for _ in range(rng.randint(1, 4)))
    garbage = rng.choice(
        [
            bytes(rng.randrange(256) for _ in range(rng.randint(1, 200))),
            b"\r\n\r\n\r\n",
            b"GET / HTTP/1.1\r\n\r\n",
            flip_bytes(rng, data),
            b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03",  # TLS on a plain port
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",  # an HTTP/2 preface
        ]
    )
    return good + garbage + (data if rng.random() < 0.3 else b"")


# Sent in two parts with a pause between: by the time the malformed rest arrives, the
# request is already with the upstream, which answers later (/slow) or waits for the rest
# of the body for ever (/count).
LATE_HEADS = [
    b"GET /slow?ms=300 HTTP/1.1\r\nHost: fuzz.test\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5\r\nhello\r\n",
    b"POST /count HTTP/1.1\r\nHost: fuzz.test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
    b"GET /slow?ms=300 HTTP/1.1\r\nHost: fuzz.test\r\n\r\n",
]
LATE_RESTS = [
    b"zz\r\n",  # a bad chunk size: 400
    b"800\r\n" + b"x" * 2100 + b"\r\n",  # past max_body_bytes: 413
    b"\x00\x01garbage\r\n\r\n",  # garbage pipelined behind the request
    b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",  # a bad second request
]
LATE_PAUSE = 0.05

MUTATIONS = [
    flip_bytes,
    truncate,
    insert_bytes,
    delete_span,
    duplicate_header,
    oversized_header,
    many_headers,
    framing_conflict,
    bad_chunks,
    nul_bytes,
    huge_request_line,
    bogus_method,
    bogus_version,
    line_endings,
    pipelined_garbage,
]


@dataclass
class Case:
    index: int
    payload: bytes
    mutations: list[str]
    half_close: bool  # shut our side after sending: the gateway then knows nothing follows
    pieces: int  # sent in this many writes, a few ms apart
    pause_at: int = 0  # if set: send this many bytes, pause LATE_PAUSE, send the rest


def build_cases(seed: int, count: int) -> list[Case]:
    rng = random.Random(seed)
    cases = []
    for index in range(count):
        payload = rng.choice(BASE_REQUESTS)
        applied = []
        if rng.random() < 0.03:
            head = rng.choice(LATE_HEADS)
            payload = head + rng.choice(LATE_RESTS)
            cases.append(Case(index, payload, ["late_error"], rng.random() < 0.5, 1, len(head)))
            continue
        if rng.random() < 0.05:
            applied.append("none")  # some valid requests keep the gateway honest
        else:
            for mutation in rng.sample(MUTATIONS, rng.choice([1, 1, 1, 2, 2, 3])):
                if payload:
                    payload = mutation(rng, payload)
                    applied.append(mutation.__name__)
        pieces = 1 if rng.random() < 0.85 else rng.randint(2, 5)
        cases.append(Case(index, payload, applied, rng.random() < 0.6, pieces))
    return cases


# ---------------------------------------------------------------- the client


@dataclass
class Outcome:
    case: Case
    received: bytes = b""
    elapsed: float = 0.0
    closed_by_gateway: bool = False
    reset: bool = False
    hung: bool = False
    send_error: str = ""
    problems: list[str] = field(default_factory=list)


async def run_case(case: Case, port: int) -> Outcome:
    outcome = Outcome(case)
    started = time.monotonic()
    deadline = started + HANG_LIMIT
    writer = None
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST, port), CLIENT_TIMEOUT)
        try:
            if case.pause_at:
                parts = [case.payload[: case.pause_at], case.payload[case.pause_at :]]
            else:
                size = max(1, len(case.payload) // case.pieces + 1)
                parts = [case.payload[i : i + size] for i in range(0, len(case.payload), size)]
            for number, part in enumerate(parts):
                if number:
                    await asyncio.sleep(LATE_PAUSE if case.pause_at else 0.005)
                writer.write(part)
                await asyncio.wait_for(writer.drain(), CLIENT_TIMEOUT)
            if case.half_close and writer.can_write_eof():
                writer.write_eof()
        except (OSError, TimeoutError) as error:  # OSError: reset, not connected
            # The gateway may answer and close before a large payload is all sent.
            outcome.send_error = type(error).__name__
        received = bytearray()
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                outcome.hung = True
                break
            try:
                piece = await asyncio.wait_for(reader.read(65536), remaining)
            except TimeoutError:
                outcome.hung = True
                break
            except OSError:
                outcome.reset = True
                break
            if not piece:
                outcome.closed_by_gateway = True
                break
            received += piece
        outcome.received = bytes(received)
    finally:
        outcome.elapsed = time.monotonic() - started
        if writer is not None:
            writer.transport.abort()
    check_received(outcome)
    return outcome


class _ResponseCollector:
    def __init__(self) -> None:
        self.statuses: list[int] = []
        self.parser: httptools.HttpResponseParser | None = None

    def on_headers_complete(self) -> None:
        self.statuses.append(self.parser.get_status_code())


def check_received(outcome: Outcome) -> None:
    """Everything the gateway sent must be HTTP/1.1 that llhttp accepts."""
    data = outcome.received
    if not data:
        return
    if not STATUS_LINE.match(data):
        outcome.problems.append(f"does not start with a valid status line: {data[:80]!r}")
        return
    if b"HEAD " in outcome.case.payload:
        return  # a HEAD answer's length cannot be told from the bytes alone
    collector = _ResponseCollector()
    parser = collector.parser = httptools.HttpResponseParser(collector)
    try:
        parser.feed_data(data)
    except httptools.HttpParserError as error:
        outcome.problems.append(f"the responses do not parse ({error}): {data[:200]!r}")
        return
    for status in collector.statuses:
        if not 100 <= status <= 599:
            outcome.problems.append(f"status {status}")


async def run_all(cases: list[Case], port: int) -> tuple[list[Outcome], float]:
    semaphore = asyncio.Semaphore(CONCURRENCY)
    started = time.monotonic()

    async def guarded(case: Case) -> Outcome | None:
        async with semaphore:
            if time.monotonic() - started > TIME_BUDGET:
                return None
            return await run_case(case, port)

    results = await asyncio.gather(*(guarded(case) for case in cases))
    return [r for r in results if r is not None], time.monotonic() - started


# ---------------------------------------------------------------- the run, once


@dataclass(repr=False)
class FuzzRun:
    gateway: object
    upstream: object
    cases: list[Case]
    outcomes: list[Outcome]
    elapsed: float
    summary: str

    def __repr__(self) -> str:  # pytest shows it on failure: megabytes of payloads would not do
        return f"FuzzRun({self.summary})"


def normal_get(port: int) -> tuple[int, bytes]:
    with raw_connection(port, timeout=5.0) as (sock, stream):
        sock.sendall(b"GET / HTTP/1.1\r\nHost: fuzz.test\r\nConnection: close\r\n\r\n")
        response = read_response(stream)
    return response.status, response.body


def upstream_connections(port: int) -> int:
    """Established TCP connections to ``port`` from elsewhere (the gateway's side of them)."""
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local_port = int(fields[1].rpartition(":")[2], 16)
        remote_port = int(fields[2].rpartition(":")[2], 16)
        if fields[3] == "01" and remote_port == port and local_port != port:
            count += 1
    return count


@pytest.fixture(scope="module")
def fuzz_run(module_processes: Processes, tmp_path_factory: pytest.TempPathFactory) -> FuzzRun:
    upstream = module_processes.demo_upstream("fuzz")
    one_second = f"{int(HEADER_TIMEOUT * 1000)}ms"
    limits = {
        "header_timeout": one_second,
        "body_timeout": one_second,
        "idle_timeout": one_second,
        "max_header_bytes": MAX_HEADER_BYTES,
        "max_body_bytes": "2KiB",
    }
    config = make_config(
        [
            {
                "name": "fuzz",
                "endpoints": [{"address": upstream.address}],
                "timeouts": {"connect": "1s", "response": "2s", "idle": "2s"},
                "pool": {"idle_timeout": "1s"},
            }
        ],
        [
            {"match": {"path_exact": "/direct"}, "direct_response": {"status": 200, "body": "d\n"}},
            {"match": {"path_prefix": "/old/"}, "redirect": {"prefix": "/new/"}},
            {
                "match": {
                    "path_prefix": "/",
                    "headers": [{"name": "x-request-id", "regex": "r.*"}],
                },
                "upstream": "fuzz",
                "headers": {"response_add": {"x-matched": "header-route"}},
            },
            {"match": {"path_prefix": "/"}, "upstream": "fuzz"},
        ],
        listeners=[{"name": "public", "limits": limits}],
    )
    gateway = module_processes.gateway(config, tmp_path_factory.mktemp("fuzz-gateway"))
    assert normal_get(gateway.port) == (200, b"hello from fuzz\n")

    cases = build_cases(SEED, CASES)
    outcomes, elapsed = asyncio.run(run_all(cases, gateway.port))
    statuses = Counter()
    for outcome in outcomes:
        for match in re.finditer(rb"HTTP/1\.1 ([1-5][0-9][0-9]) ", outcome.received):
            statuses[int(match.group(1))] += 1
    summary = (
        f"seed {SEED}: {len(outcomes)} of {len(cases)} cases in {elapsed:.1f}s; "
        f"statuses {dict(sorted(statuses.items()))}; "
        f"closed by gateway {sum(o.closed_by_gateway for o in outcomes)}, "
        f"reset {sum(o.reset for o in outcomes)}, "
        f"slowest {max(o.elapsed for o in outcomes):.2f}s"
    )
    print(summary)
    return FuzzRun(gateway, upstream, cases, outcomes, elapsed, summary)


def describe(outcomes: list[Outcome], limit: int = 5) -> str:
    return "; ".join(
        f"case {o.case.index} {o.case.mutations}: {(o.problems or ['-'])[0]} "
        f"(sent {o.case.payload[:120]!r})"
        for o in outcomes[:limit]
    )


# ---------------------------------------------------------------- the properties


def test_thousands_of_cases_ran_within_the_budget(fuzz_run):
    assert len(fuzz_run.outcomes) >= min(len(fuzz_run.cases), 1000), fuzz_run.summary
    assert fuzz_run.elapsed < TIME_BUDGET + HANG_LIMIT + 5, fuzz_run.summary


def test_every_answer_is_valid_http_11(fuzz_run):
    broken = [o for o in fuzz_run.outcomes if o.problems]
    assert not broken, f"{len(broken)} cases: " + describe(broken)
    answered = sum(bool(o.received) for o in fuzz_run.outcomes)
    assert answered > len(fuzz_run.outcomes) // 2, fuzz_run.summary


def test_no_connection_hangs(fuzz_run):
    hung = [o for o in fuzz_run.outcomes if o.hung]
    assert not hung, f"{len(hung)} connections still open after {HANG_LIMIT}s: " + describe(hung)


def test_the_gateway_survives_and_still_serves(fuzz_run):
    gateway = fuzz_run.gateway
    assert gateway.process.alive(), gateway.stderr()[-4000:]
    assert normal_get(gateway.port) == (200, b"hello from fuzz\n")
    assert http_get(f"http://{HOST}:{gateway.admin_port}/healthz")[0] == 200
    assert fuzz_run.upstream.process.alive()


def test_no_exception_reaches_the_log(fuzz_run):
    stderr = fuzz_run.gateway.stderr()
    count = stderr.count("Traceback")
    first = stderr[max(0, stderr.find("Traceback") - 300) :][:2500] if count else ""
    assert count == 0, f"{count} tracebacks in the gateway's log; the first:\n{first}"


def test_no_upstream_connection_outlives_its_exchange(fuzz_run):
    # Pooled idle connections expire after 1 s; one still open after that belongs to an
    # exchange that ended without closing it, and counts against the circuit breaker.
    port = fuzz_run.upstream.port
    try:
        wait_until(lambda: upstream_connections(port) == 0, timeout=6.0, what="no connections")
    except AssertionError:
        raise AssertionError(
            f"{upstream_connections(port)} gateway connections to the upstream are still open"
        ) from None


# ---------------------------------------------------------------- the harness itself


def test_the_mutator_is_deterministic_and_covers_every_mutation():
    first, second = build_cases(SEED, 500), build_cases(SEED, 500)
    assert [c.payload for c in first] == [c.payload for c in second]
    used = {name for case in first for name in case.mutations}
    assert {m.__name__ for m in MUTATIONS} | {"late_error"} <= used


def test_the_hang_limit_is_enforced_by_the_client_itself():
    # A listener that accepts and never answers: the case must end as "hung", on time.
    server = socket.socket()
    server.bind((HOST, 0))
    server.listen(8)
    try:
        case = Case(0, BASE_REQUESTS[0], ["none"], half_close=False, pieces=1)
        outcome = asyncio.run(run_case(case, server.getsockname()[1]))
    finally:
        server.close()
    assert outcome.hung
    assert HANG_LIMIT <= outcome.elapsed < HANG_LIMIT + 1.0


def test_received_bytes_are_checked():
    good = Outcome(Case(0, b"GET / HTTP/1.1\r\n\r\n", [], False, 1))
    good.received = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokHTTP/1.1 400 Bad\r\n"
    check_received(good)
    assert good.problems == []
    for received in (
        b"HTTP/1.0 200 OK\r\n\r\n",
        b"garbage",
        b"HTTP/1.1 200 OK\r\nbad header\r\n\r\n",
    ):
        bad = Outcome(Case(0, b"GET / HTTP/1.1\r\n\r\n", [], False, 1))
        bad.received = received
        check_received(bad)
        assert bad.problems, received
