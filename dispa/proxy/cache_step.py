"""The exchange's cache steps: consult the cache before going upstream, tee and store
what comes back, answer from it (hits, 304 revalidations, stale-if-error, waits behind a
fetch), and drop what a successful write changed.

A base class of ``Exchange`` (its state lives in the exchange's slots): the journey in
exchange.py calls these steps only when the gateway has a cache and the route or the
method involves it, so a route that does not cache pays nothing for them.
"""

from __future__ import annotations

import logging
import time

from dispa.proxy import local_reply as reasons
from dispa.proxy.caching import (
    FETCH,
    INVALIDATE,
    NULL_DOWNSTREAM,
    REFUSE,
    SERVE,
    WAIT,
    CachedAnswer,
)
from dispa.proxy.context import RequestContext
from dispa.proxy.events import Response
from dispa.proxy.local_reply import LocalReply, error_reply

log = logging.getLogger("dispa.exchange")


class CacheSteps:
    __slots__ = ()

    def _consult_cache(self) -> bool:
        """Ask the cache; True when it answered (or the exchange now waits for a fetch)."""
        cache = self.gateway.cache
        verdict = cache.lookup(self.request, self.ctx, time.time())
        action = verdict.action
        if action == SERVE:
            if verdict.refresh is not None:
                self._refresh_in_background(verdict.refresh)
            self._serve_cached(verdict.answer)
            return True
        if action == WAIT and not self._waited:
            # Coalescing: one fetch per key; this request waits for it, once.
            self._waited = True
            cache.wait(verdict.key, self._after_wait)
            return True
        if action == REFUSE:
            self.reply(error_reply(504, reasons.NOT_CACHED))
            return True
        if action == FETCH:
            self._cache = verdict
            if verdict.request_headers is not None:
                self.ctx.request_headers = verdict.request_headers
        return False

    def _after_wait(self) -> None:
        if self.finished:
            return
        try:
            if not self._consult_cache():
                self._go_upstream()
        except Exception:
            self.gateway.internal_error(self)

    def _serve_cached(self, answer: CachedAnswer) -> None:
        ctx = self.ctx
        ctx.status = answer.status
        headers = answer.headers
        phase = self.route.response_phase
        if phase is not None:
            headers = self._cached_response_filters(phase, answer, headers)
            if headers is None:
                return  # answered by the filters, or sent when they are done
        self._send_cached(answer, headers)

    def _send_cached(self, answer: CachedAnswer, headers) -> None:
        ctx = self.ctx
        self.response_started = True
        self.response_done = True
        no_body = self.request.method == "HEAD" or answer.status in (204, 304)
        downstream = self.downstream
        downstream.send_response(
            answer.status,
            answer.reason,
            headers,
            None if answer.status == 304 else len(answer.body),
            no_body,
            ctx.request_id.encode("latin-1"),
        )
        if not no_body:
            downstream.send_body(answer.body)
            ctx.bytes_out += len(answer.body)
        downstream.send_end()
        if not self.request_done and self.request.has_body:
            downstream.close_after_exchange()
        self._finish()

    def _refresh_in_background(self, verdict) -> None:
        """stale-while-revalidate: the client has its stale answer; a request with no
        client behind it fetches the fresh one into the cache."""
        ctx = self.ctx
        background_ctx = RequestContext(
            self.request, ctx.client_ip, ctx.client_port, ctx.listener, ctx.scheme, ctx.started
        )
        background_ctx.request_id = ctx.request_id
        background_ctx.route = self.route
        background_ctx.route_name = ctx.route_name
        # The exchange's own class: this module cannot import exchange.py (it is a base).
        background = type(self)(
            self.gateway, self.snapshot, NULL_DOWNSTREAM, self.request, background_ctx
        )
        background.route = self.route
        background.request_done = True
        background._cache = verdict
        background_ctx.request_headers = verdict.request_headers
        try:
            background._go_upstream()
        except Exception:
            log.exception("a background cache refresh failed to start")

    def _reply_upstream_error(self, answer: LocalReply) -> None:
        """An upstream failure: a stale stored answer wins where stale-if-error allows."""
        verdict = self._cache
        if verdict is not None:
            stale = self.gateway.cache.stale_on_error(verdict, self.request, time.time())
            if stale is not None:
                self._drop_connection()
                self._serve_cached(stale)
                return
        self.reply(answer)

    def _cache_tee(self, data: bytes) -> bool:
        """Keep a copy of body bytes for the cache; True when they must not reach the
        client (a cached answer replaces this response)."""
        if self._cache_plan_answer is not None:
            return True
        body = self._cache_body
        if body is not None:
            self._cache_bytes += len(data)
            if self._cache_bytes > self._cache_max:
                self._cache_body = None  # too large to store: it only streams through
            else:
                body.append(data)
        return False

    def _cache_ended(self, clean: bool) -> bool:
        """The fetched response ended: store it, or answer from the cache instead. True
        when the exchange is over (answered from the cache)."""
        answer = self._cache_plan_answer
        if answer is not None:
            self._cache_plan_answer = None
            self._release_endpoint()
            self._serve_cached(answer)
            return True
        body = self._cache_body
        if body is not None and clean:
            self._cache_body = None
            verdict = self._cache
            reason, headers = verdict.response
            try:
                self.gateway.cache.store(
                    verdict,
                    self.request,
                    self.ctx.status,
                    reason,
                    headers,
                    b"".join(body),
                    time.time(),
                )
            except Exception:  # a cache failure must not break the answer
                log.exception("storing a response in the cache failed")
        return False

    def _plan_cached_response(self, response: Response, headers):
        """The fetched response's head, seen by the cache: the headers to send on, or None
        when a stored answer replaces the response (304 revalidation, stale-if-error) and
        the upstream's message is read to its end and dropped."""
        verdict = self._cache
        plan = self.gateway.cache.plan_response(
            verdict, self.request, response.status, response.reason, headers, time.time()
        )
        if plan.answer is not None:
            self._cache_plan_answer = plan.answer
            return None
        if plan.store:
            self._cache_body = []
            self._cache_max = plan.max_bytes
            verdict.response = (response.reason, response.headers)
        elif verdict.action == INVALIDATE:
            self._cache = None  # done at the head: the body is nothing to the cache
        return plan.headers
