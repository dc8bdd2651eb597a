"""How the data plane talks to a response cache (an edge hands one in as ``gateway.cache``).

The cache owns the HTTP caching rules (RFC 9111, RFC 5861) and the storage; the exchange
owns the mechanics: answer from a stored response, wait for a fetch already in flight for
the same key (request coalescing), tee a storable response into the cache while it
streams to the client, and refresh a stale entry in the background. The data plane never
imports the edge: it sees this protocol only.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

# What ``lookup`` tells the exchange to do.
SERVE = "serve"  # answer with ``answer`` (fresh, or stale while it is refreshed)
FETCH = "fetch"  # go upstream with ``request_headers``; this exchange fetches for the key
WAIT = "wait"  # another exchange fetches this key now: wait for it, then look again
REFUSE = "refuse"  # only-if-cached and nothing usable is stored: 504
# What ``invalidation`` hands an unsafe request (POST, PUT, DELETE ...), on any route: the
# exchange goes upstream as usual, and ``plan_response`` drops what the write changed.
INVALIDATE = "invalidate"


class CachedAnswer(NamedTuple):
    status: int
    reason: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes


class CacheVerdict:
    __slots__ = (
        "action",
        "answer",
        "entry",
        "key",
        "refresh",
        "request_headers",
        "request_time",
        "response",
    )

    def __init__(
        self,
        action: str,
        key: str = "",
        answer: CachedAnswer | None = None,
        entry=None,
        request_headers=None,
        request_time: float = 0.0,
        refresh: CacheVerdict | None = None,
    ) -> None:
        self.action = action
        self.key = key
        self.answer = answer
        self.entry = entry  # the stored response being revalidated (FETCH), if any
        self.request_headers = request_headers  # headers to send upstream (FETCH)
        self.request_time = request_time  # wall clock when the fetch started
        self.refresh = refresh  # with SERVE: a FETCH to run in the background
        self.response = None  # (reason, headers) of the upstream response being stored


class ResponsePlan(NamedTuple):
    """What to do with the upstream's response head, for a fetch the cache asked for."""

    headers: list[tuple[bytes, bytes]]  # to send to the client (e.g. with X-Cache)
    store: bool  # tee the body into the cache
    max_bytes: int  # give up storing past this many body bytes
    answer: CachedAnswer | None  # answer with this instead (304 refreshed, stale-if-error)


class ResponseCache(Protocol):
    def lookup(self, request, ctx, now: float) -> CacheVerdict: ...

    def invalidation(self, request, ctx) -> CacheVerdict | None:
        """An INVALIDATE verdict for a request whose method is not safe (None for a safe
        one): its response head goes to ``plan_response``, which invalidates when it
        succeeded."""

    def wait(self, key: str, resume) -> None:
        """Call ``resume()`` once the fetch in flight for ``key`` is done."""

    def fetch_done(self, key: str) -> None:
        """The fetch for ``key`` ended (stored or not): wake its waiters."""

    def plan_response(
        self, verdict: CacheVerdict, request, status: int, reason: bytes, headers, now: float
    ) -> ResponsePlan: ...

    def store(
        self, verdict: CacheVerdict, request, status, reason, headers, body: bytes, now: float
    ) -> None: ...

    def stale_on_error(self, verdict: CacheVerdict, request, now: float) -> CachedAnswer | None:
        """A stale answer allowed when the upstream failed (stale-if-error), else None."""


class NullDownstream:
    """The client side of a background refresh: there is no client, so output goes
    nowhere; the cache still stores the response."""

    keep_alive = False

    def send_response(self, *args, **kwargs) -> None:
        pass

    def send_body(self, data: bytes) -> None:
        pass

    def send_end(self) -> None:
        pass

    def send_whole(self, *args) -> None:
        pass

    def send_trailers(self, headers) -> None:
        pass

    def send_interim(self, status: int, reason: bytes, headers) -> None:
        pass

    def flush(self) -> None:
        pass

    def send_local_reply(self, answer, head_only: bool) -> None:
        pass

    def pause_reading(self, reason: str) -> None:
        pass

    def resume_reading(self, reason: str) -> None:
        pass

    def close_after_exchange(self) -> None:
        pass

    def abort(self) -> None:
        pass

    def exchange_finished(self, exchange, client_gone: bool) -> None:
        pass


NULL_DOWNSTREAM = NullDownstream()
