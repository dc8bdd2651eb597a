"""HTTP/1.1 parsing with httptools (llhttp): bytes in, events out, no I/O.

``RequestParser.feed`` and ``ResponseParser.feed`` return the events the bytes completed.
Limits are enforced while parsing so an oversized head is refused before it is buffered.
"""

from __future__ import annotations

import httptools

from dispa.proxy.events import (
    Data,
    EndOfMessage,
    InterimResponse,
    RepeatedHeaders,
    Request,
    Response,
    Trailers,
)
from dispa.proxy.http1.writer import names_more_hop_by_hop, without_connection_tokens
from dispa.proxy.request_target import (
    DEFAULT_RULES,
    PathRefused,
    PathRules,
    origin_form,
    valid_authority,
)

# Events are built with tuple.__new__ directly: a NamedTuple's own __new__ is a Python
# function, a frame per event on the hot path.
_new = tuple.__new__
# Host header values and methods repeat from one request to the next: decoding each once
# (in bounded tables) spares the hot path a few string operations per request.
_HOST_CACHE_SIZE = 512
_hosts: dict[bytes, str] = {}
_methods: dict[bytes, str] = {}
# Clients send the same head again and again (one path, Host, User-Agent, the cookies of a
# session), and upstreams answer with the same head but for its Date: llhttp reads a head
# once, and later reads of exactly the same bytes, arriving between two messages, mean what
# they meant then (measured by bench/hot_path.py: most of the parsing cost is the Python
# called back per head, not llhttp). Only messages after which llhttp is back where it
# started are remembered: complete, HTTP/1.1, keep-alive, framed by their length, nothing
# upgraded. Keys are bounded in size and number: with the heads each entry's header list
# remembers (http1.writer._STARTS_LIMIT), a table holds a few MiB at the very most.
_KNOWN_LIMIT = 256
_KNOWN_HEAD_BYTES = 2048
# The entries are the messages themselves, with stream id 0 (HTTP/1.1 has no streams):
# the connections take them as they are, shared, with no copy made per message.
_known_requests: dict[bytes, Request] = {}
_known_responses: dict[bytes, Response] = {}
# Request heads are remembered per set of path rules (few: one per distinct listener
# ``paths`` setting), since the same bytes normalise differently under other rules.
_known_request_tables: dict[PathRules, dict[bytes, Request]] = {DEFAULT_RULES: _known_requests}
# What one upstream response's head (interim heads and trailers included) may hold: what
# Envoy allows by default (60 KiB), rounded up. Past it the response is a protocol error.
MAX_RESPONSE_HEAD_BYTES = 64 * 1024
# What each interim (1xx) head counts against that bound besides its fields: its status
# line and empty line, so that heads with no field at all are not free either.
_INTERIM_HEAD_COST = 32
# Lengths of the request header names read while parsing (host, x-request-id, expect,
# content-length, transfer-encoding, upgrade, connection).
_READ_LENGTHS = frozenset({4, 12, 6, 14, 17, 7, 10})


class ProtocolError(Exception):
    """A peer broke HTTP/1.1; ``status`` is the local reply owed to a client (400, 413, 431)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class UpgradeRequested(Exception):
    """The client asked for a tunnel (CONNECT) that this parser refuses."""


class _Surplus(Exception):
    """Bytes after the end of the response, raised from a callback to stop llhttp there."""


class RequestParser:
    """Parses a stream of requests from one client connection (keep-alive, pipelining)."""

    __slots__ = (
        "_body_bytes",
        "_events",
        "_head_bytes",
        "_head_spill",
        "_headers",
        "_held",
        "_in_head",
        "_known_requests",
        "_max_body",
        "_max_head",
        "_parser",
        "_path_rules",
        "_stream_id",
        "_url",
        "batch_body_bytes",
        "in_message",
        "upgrade_pending",
    )

    def __init__(
        self, max_head_bytes: int, max_body_bytes: int = 0, path_rules: PathRules = DEFAULT_RULES
    ) -> None:
        self._max_head = max_head_bytes
        self._max_body = max_body_bytes
        # How request targets are normalised (the listener's ``paths``); the heads this
        # parser remembers are those read under the same rules, since they are what the
        # bytes meant under them.
        self._path_rules = path_rules
        self._known_requests = _known_request_tables.setdefault(path_rules, {})
        self._parser = httptools.HttpRequestParser(self)
        self._events: list = []
        self._stream_id = 0
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._head_bytes = 0
        self._head_spill = 0
        self._in_head = False
        self._body_bytes = 0
        self.in_message = False  # a request has begun and not yet ended
        self.batch_body_bytes = 0  # body bytes in the events of the last feed
        # After a WebSocket upgrade request, bytes are held unparsed until the upstream
        # answers: a 101 makes them tunnel bytes, anything else HTTP/1.1 again.
        self.upgrade_pending = False
        self._held = bytearray()

    @property
    def held_bytes(self) -> int:
        return len(self._held)

    def take_tunnel_bytes(self) -> bytes:
        """The upgrade was accepted: what came after the request belongs to the tunnel."""
        held = bytes(self._held)
        self._held = bytearray()
        return held

    def resume_after_refused_upgrade(self) -> list:
        """The upgrade was refused: parse what was held as HTTP/1.1 again."""
        self.upgrade_pending = False
        held = bytes(self._held)
        self._held = bytearray()
        return self.feed(held) if held else []

    def feed(self, data: bytes) -> list:
        if self.upgrade_pending:
            self._held += data
            return []
        self.batch_body_bytes = 0
        between_messages = not self.in_message
        if between_messages:
            request = self.known_request(data)
            if request is not None:  # numbered, as events from llhttp are
                stream_id = self._stream_id
                return [_new(Request, (stream_id, *request[1:])), _new(EndOfMessage, (stream_id,))]
        head_of = self._stream_id if self._in_head else None
        try:
            self._parser.feed_data(data)
            # httptools holds a header line until it ends, unseen by on_header, so a header
            # line that never ends would grow without bound. Count whole reads that a head
            # spans, and refuse once they alone exceed the limit.
            if self._in_head and head_of == self._stream_id:
                self._head_spill += len(data)
                if self._head_spill > self._max_head:
                    raise ProtocolError(431, "request header too large")
        except ProtocolError:
            raise
        except httptools.HttpParserUpgrade as upgrade:
            # RFC 9110 7.8 lets a server ignore Upgrade: the request (already parsed, its
            # end included) is answered as plain HTTP/1.1, and the hop-by-hop Upgrade header
            # is not forwarded. llhttp stops after an upgrade, so parsing goes on afresh.
            # A WebSocket upgrade is the exception: it is forwarded, and what follows waits.
            return self._after_ignored_upgrade(data, upgrade)
        except httptools.HttpParserError as exc:
            cause = exc.__context__
            if isinstance(cause, ProtocolError):
                raise cause from None
            raise ProtocolError(400, "malformed request") from None
        events, self._events = self._events, []
        if between_messages and len(events) == 2 and not self.in_message:
            return self._remember(data, events)
        return events

    def known_request(self, data: bytes) -> Request | None:
        """The request (whole, without a body) that a read holds when its bytes are a head
        read before and it comes between two requests; else None, and ``feed`` reads it.
        The request is the table's own, shared, with stream id 0."""
        if self.in_message or self.upgrade_pending:
            return None
        known = self._known_requests.get(data)
        # The size test keeps a smaller listener limit in force: a head is never longer
        # than its bytes.
        if known is None or len(data) > self._max_head:
            return None
        self._stream_id += 1
        self.batch_body_bytes = 0
        return known

    def _remember(self, data: bytes, events: list) -> list:
        """A read that was one whole request without a body: keep what it meant, with
        its header list shared from now on (RepeatedHeaders)."""
        request = events[0]
        if (
            type(request) is not Request
            or request.has_body
            or request.content_length is not None
            or request.upgrade is not None
            or not request.keep_alive
            or request.http_version != "1.1"
            or len(data) > _KNOWN_HEAD_BYTES
        ):
            return events
        meaning = (*request[1:6], RepeatedHeaders(request.headers), *request[7:])
        known_requests = self._known_requests
        if len(known_requests) >= _KNOWN_LIMIT:
            known_requests.clear()
        known_requests[data] = _new(Request, (0, *meaning))
        events[0] = _new(Request, (request.stream_id, *meaning))
        return events

    def _after_ignored_upgrade(self, data: bytes, upgrade: Exception) -> list:
        requests = [e for e in self._events if type(e) is Request]
        if requests and requests[-1].method == "CONNECT":
            raise UpgradeRequested()  # a tunnel is not a request to answer: refused (501)
        offset = upgrade.args[0] if upgrade.args and isinstance(upgrade.args[0], int) else None
        self._parser = httptools.HttpRequestParser(self)
        self._in_head = False
        self.in_message = False
        events, self._events = self._events, []
        rest = data[offset:] if offset is not None else b""
        if requests and requests[-1].upgrade is not None:
            self.upgrade_pending = True
            self._held += rest
            return events
        if rest:
            events += self.feed(rest)
        return events

    # httptools callbacks ------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._stream_id += 1
        self._url = b""
        self._headers = []
        self._head_bytes = 0
        self._head_spill = 0
        self._in_head = True
        self._body_bytes = 0
        self.in_message = True

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._head_bytes += len(url)
        if self._head_bytes > self._max_head:
            raise ProtocolError(431, "request header too large")

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))
        self._head_bytes += len(name) + len(value) + 4
        if self._head_bytes > self._max_head:
            raise ProtocolError(431, "request header too large")

    def on_headers_complete(self) -> None:
        self._in_head = False
        parser = self._parser
        url = self._url
        host = None
        host_header = None
        request_id = None
        expect_continue = False
        content_length = None
        chunked = chunked_seen = False
        upgrade_to = None
        connection_upgrade = names_fields = False
        for name, value in self._headers:
            length = len(name)
            if length not in _READ_LENGTHS:
                continue  # most headers: none of those read below (same length at least)
            if length == 4 and name.lower() == b"host":
                # RFC 9112 3.2: two Host fields are a 400; else the router could follow one
                # and the upstream the other.
                if host is not None:
                    raise ProtocolError(400, "more than one host header")
                host_header = value
                host = _hosts.get(value)
                if host is None:
                    # Checked once per distinct value (the table remembers valid ones).
                    # Empty is allowed: RFC 9112 3.2, a target without an authority.
                    if value and not valid_authority(value):
                        raise ProtocolError(400, "malformed host header")
                    host = _host_only(value)
                    if len(_hosts) >= _HOST_CACHE_SIZE:
                        _hosts.clear()
                    _hosts[value] = host
            elif length == 12 and name.lower() == b"x-request-id":
                request_id = value or None
            elif length == 6 and name.lower() == b"expect":
                expect_continue = value.strip().lower() == b"100-continue"
            elif length == 14 and name.lower() == b"content-length":
                try:
                    content_length = int(value)
                except ValueError:
                    raise ProtocolError(400, "bad content-length") from None
            elif length == 17 and name.lower() == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
                chunked_seen = True
            elif length == 7 and name.lower() == b"upgrade":
                upgrade_to = value
            elif length == 10 and name.lower() == b"connection":
                connection_upgrade = connection_upgrade or _has_token(value, b"upgrade")
                names_fields = names_fields or names_more_hop_by_hop(value)
        version = parser.get_http_version()
        if version != "1.1" and version != "1.0":
            # "HTTP/2.0" (or 0.9, 3.0) in a request line is not HTTP/1.x (RFC 9112 2.3).
            raise ProtocolError(505, "unsupported HTTP version")
        if chunked_seen and version == "1.0":
            # RFC 9112 6.1: Transfer-Encoding in HTTP/1.0 means faulty framing; a gateway
            # that forwarded it as chunked would read the body one way and send it another.
            raise ProtocolError(400, "transfer-encoding in an HTTP/1.0 request")
        raw_method = parser.get_method()
        method = _methods.get(raw_method)
        if method is None:
            method = raw_method.decode("latin-1")
            if len(_methods) < 64:  # the standard methods, and a few more
                _methods[raw_method] = method
        if method == "CONNECT":
            # Authority-form: a tunnel, refused once parsed (UpgradeRequested, 501).
            target, path, query, authority = url, url, b"", None
        else:
            # The one form routing, filters, the cache key and the upstream all see.
            try:
                target, path, query, authority = origin_form(url, method, self._path_rules)
            except PathRefused:
                raise ProtocolError(400, "malformed request target") from None
        upgrade = None
        if (
            upgrade_to is not None
            and connection_upgrade
            and parser.should_upgrade()
            and method == "GET"
            and version == "1.1"
            and not chunked
            and not content_length
            and _has_token(upgrade_to, b"websocket")
        ):
            upgrade = b"websocket"
        if host is None:
            if version != "1.0":
                raise ProtocolError(400, "missing host header")  # RFC 9112 3.2: MUST be 400
            host = ""
        if authority is not None:
            # RFC 9112 3.2.2: an absolute-form target's authority is the request's host,
            # and the Host field sent on is made from it, never the client's own.
            host = _host_only(authority)
            if host_header != authority:
                host_header = authority
                self._headers = _with_host(self._headers, authority)
        if content_length is not None and self._max_body and content_length > self._max_body:
            raise ProtocolError(413, "request body too large")
        self._events.append(
            _new(
                Request,
                (
                    self._stream_id,
                    method,
                    target,
                    path.decode("latin-1"),
                    query,
                    host,
                    self._headers if not names_fields else _without_named(self._headers),
                    version,
                    parser.should_keep_alive(),
                    chunked or bool(content_length),
                    None if chunked else content_length,
                    host_header,
                    request_id,
                    expect_continue,
                    upgrade,
                ),
            )
        )
        # Fields llhttp reports from now on are the trailer section of a chunked body: they
        # go to a list of their own, never into the head already handed over (where a
        # "Host" trailer would be a second Host the router never saw).
        self._headers = []

    def on_body(self, body: bytes) -> None:
        self.batch_body_bytes += len(body)
        if self._max_body:
            self._body_bytes += len(body)
            if self._body_bytes > self._max_body:
                raise ProtocolError(413, "request body too large")
        self._events.append(_new(Data, (self._stream_id, body)))

    def on_message_complete(self) -> None:
        self.in_message = False
        trailers = self._headers
        if trailers:
            self._headers = []
            self._events.append(_new(Trailers, (self._stream_id, trailers)))
        self._events.append(_new(EndOfMessage, (self._stream_id,)))


class ResponseParser:
    """Parses responses from one upstream connection.

    llhttp cannot know that a response answers a HEAD request, so the caller says so with
    ``expect_no_body`` before feeding it; the parser then ends the message at the head and
    starts afresh for the next response.

    Interim (1xx) heads are ``InterimResponse`` events before the final ``Response``. A
    read that goes on after the end of the response (a body longer than its
    Content-Length, a body to HEAD, a response nothing asked for) stops there: the rest
    is dropped and ``surplus`` says so, since the connection is out of step for good.
    """

    __slots__ = (
        "_between_messages",
        "_ended",
        "_events",
        "_head_bytes",
        "_head_spill",
        "_headers",
        "_in_head",
        "_interim",
        "_parser",
        "_reason",
        "expect_no_body",
        "stream_id",
        "surplus",
        "tunnel_bytes",
    )

    def __init__(self) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self._events: list = []
        self._headers: list[tuple[bytes, bytes]] = []
        self._reason = b""
        self._head_bytes = 0  # of the message being read: head, interim heads, trailers
        self._in_head = False
        self._head_spill = 0  # bytes of the reads a head spans (see RequestParser.feed)
        self._interim = False  # the head just parsed was a 1xx: its end is not an event
        self._between_messages = True  # llhttp holds no byte of an unfinished response
        self._ended = False  # a final response ended in the read being fed
        self.surplus = False  # bytes came after the end of a response: never reuse
        self.stream_id = 0
        self.expect_no_body = False
        # Bytes that followed a 101 head in the same read: the first of the new protocol.
        self.tunnel_bytes = b""

    def known_response(self, data: bytes) -> Response | None:
        """The response that a read holds when it is a head read before and its whole body
        (see _known_responses), arriving between two responses; else None (``feed``)."""
        if not self._between_messages or self.expect_no_body:
            return None
        head_end = data.find(b"\r\n\r\n") + 4
        known = _known_responses.get(data[:head_end])
        if known is None or head_end + known.content_length != len(data):
            return None
        if self.stream_id:  # numbered by the caller: a copy with its number
            return _new(Response, (self.stream_id, *known[1:]))
        return known

    def feed(self, data: bytes) -> list:
        between_messages = self._between_messages and not self.expect_no_body
        if between_messages:
            response = self.known_response(data)
            if response is not None:
                stream_id = self.stream_id
                end = _new(EndOfMessage, (stream_id,))
                length = response.content_length
                if length:
                    return [response, _new(Data, (stream_id, data[-length:])), end]
                return [response, end]
        self._ended = False
        try:
            self._parser.feed_data(data)
            if self._in_head:
                # A header line that never ends is held by httptools, unseen by on_header.
                self._head_spill += len(data)
                if self._head_spill > MAX_RESPONSE_HEAD_BYTES:
                    raise ProtocolError(502, "response header too large")
        except ProtocolError:
            raise
        except httptools.HttpParserUpgrade as upgrade:
            # A 101 (Switching Protocols): llhttp stops at the end of its head. What follows
            # is not HTTP; the caller tunnels it, or drops the connection.
            offset = upgrade.args[0] if upgrade.args and isinstance(upgrade.args[0], int) else 0
            self.tunnel_bytes = data[offset:]
        except httptools.HttpParserError as exc:
            if self._ended and self._parser.get_status_code() != 101:
                # After the end of a response (a _Surplus from a callback, or data after
                # "Connection: close"): what it was is forwarded, the rest dropped. (A 101
                # that llhttp will not take for an upgrade is no response to forward.)
                self.surplus = True
            elif isinstance(exc.__context__, ProtocolError):
                raise exc.__context__ from None
            else:
                raise ProtocolError(502, "malformed response from upstream") from None
        events, self._events = self._events, []
        if between_messages and self._between_messages and 2 <= len(events) <= 3:
            self._remember(data, events)
        return events

    def _remember(self, data: bytes, events: list) -> None:
        """A read that was one whole response framed by its length: keep what its head
        meant, with its header list shared from now on (RepeatedHeaders)."""
        response = events[0]
        if type(response) is not Response:  # an InterimResponse first: not one whole answer
            return
        length = response.content_length
        head_end = data.find(b"\r\n\r\n") + 4
        if (
            type(events[-1]) is not EndOfMessage
            or not 200 <= response.status < 600
            or length is None
            or head_end + length != len(data)
            or not response.keep_alive
            or response.http_version != "1.1"
            or head_end > _KNOWN_HEAD_BYTES
        ):
            return
        meaning = (*response[1:3], RepeatedHeaders(response.headers), *response[4:])
        if len(_known_responses) >= _KNOWN_LIMIT:
            _known_responses.clear()
        _known_responses[data[:head_end]] = _new(Response, (0, *meaning))
        events[0] = _new(Response, (response.stream_id, *meaning))

    def on_message_begin(self) -> None:
        if self._ended:
            # A second response in the read: nothing asked for it (an upstream connection
            # carries one request at a time).
            raise _Surplus()
        self._between_messages = False
        self._in_head = True
        self._head_spill = 0

    def on_status(self, status: bytes) -> None:
        self._reason += status

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))
        # Head and trailers of one response share one bound: an upstream cannot make the
        # gateway hold more than that for it (llhttp's own limits are per line).
        self._head_bytes += len(name) + len(value) + 4
        if self._head_bytes > MAX_RESPONSE_HEAD_BYTES:
            raise ProtocolError(502, "response header too large")

    def on_headers_complete(self) -> None:
        self._in_head = False
        parser = self._parser
        headers = self._headers
        reason = self._reason
        self._headers = []
        self._reason = b""
        status = parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            self._interim_head(status, reason, headers)
            return
        content_length = None
        chunked = names_fields = False
        for name, value in headers:
            length = len(name)
            if length == 14 and name.lower() == b"content-length":
                try:
                    content_length = int(value)
                except ValueError:
                    content_length = None
            elif length == 17 and name.lower() == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif length == 10 and name.lower() == b"connection":
                names_fields = names_fields or names_more_hop_by_hop(value)
        if names_fields:
            headers = _without_named(headers)
        events = self._events
        events.append(
            _new(
                Response,
                (
                    self.stream_id,
                    status,
                    reason,
                    headers,
                    parser.get_http_version(),
                    parser.should_keep_alive(),
                    None if chunked else content_length,
                ),
            )
        )
        if self.expect_no_body:
            events.append(_new(EndOfMessage, (self.stream_id,)))
            # Start over so the next response is parsed from a clean state. (llhttp goes on
            # with the rest of this read: body bytes there are surplus, see on_body.)
            self._parser = httptools.HttpResponseParser(self)
            self.expect_no_body = False
            self._between_messages = True
            self._head_bytes = 0
            self._ended = True

    def _interim_head(self, status: int, reason: bytes, headers: list) -> None:
        """A 1xx head: an event of its own, and the response goes on. It counts against
        the bound of the response's heads, with its status line."""
        self._interim = True
        self._head_bytes += len(reason) + _INTERIM_HEAD_COST
        if self._head_bytes > MAX_RESPONSE_HEAD_BYTES:
            raise ProtocolError(502, "response header too large")
        for name, value in headers:
            if len(name) == 10 and name.lower() == b"connection":
                if names_more_hop_by_hop(value):
                    headers = _without_named(headers)
                break
        self._events.append(_new(InterimResponse, (self.stream_id, status, reason, headers)))

    def on_body(self, body: bytes) -> None:
        if self._ended:
            raise _Surplus()  # a body after the end of a HEAD response
        self._events.append(_new(Data, (self.stream_id, body)))

    def on_message_complete(self) -> None:
        if self._interim:
            # The final response is still to come: not between two responses yet, and
            # its heads go on counting against one bound.
            self._interim = False
            return
        self._between_messages = True
        self._head_bytes = 0
        self._ended = True
        trailers = self._headers
        if trailers:
            # The trailer section of a chunked response: its own event, and the list is
            # not the next response's header list (that is how one client's Set-Cookie
            # trailer became every later client's header).
            self._headers = []
            self._events.append(_new(Trailers, (self.stream_id, trailers)))
        self._events.append(_new(EndOfMessage, (self.stream_id,)))


def _without_named(headers: list) -> list:
    """The fields less those a Connection header names (RFC 9110 7.6.1), removed once, on
    receipt: filters that add a field later never see it dropped for that name, and Host
    is never hop-by-hop (``Connection: host`` would leave the upstream without one)."""
    return without_connection_tokens(headers, keep=_NEVER_HOP_BY_HOP)


_NEVER_HOP_BY_HOP = frozenset({b"host"})


def _has_token(value: bytes, token: bytes) -> bool:
    """A comma-separated header names ``token`` (lower case), whatever the case or spaces."""
    return any(t.strip().lower() == token for t in value.split(b","))


def _host_only(value: bytes) -> str:
    """The host routes are matched against: lower-cased, without its port, and without a
    trailing dot (``example.com.`` names the same site as ``example.com``: left on, it
    would slip past a route for that host while the upstream served that host)."""
    host = value.decode("latin-1").strip().lower()
    if host.startswith("["):  # IPv6 literal
        end = host.find("]")
        return host[: end + 1] if end > 0 else host
    colon = host.rfind(":")
    if colon >= 0:
        host = host[:colon]
    return host.rstrip(".") if host.endswith(".") else host


def _with_host(headers: list, authority: bytes) -> list:
    """The fields with the client's Host (if any) replaced by ``authority``, first."""
    return [(b"Host", authority), *(f for f in headers if f[0].lower() != b"host")]
