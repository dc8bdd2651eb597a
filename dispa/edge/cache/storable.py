"""May a shared cache store this response? (RFC 9111 section 3, 3.1 and 3.5.)

``why_not_storable`` names the first rule a response breaks, so a refusal can be counted
and logged by cause; ``is_storable`` is the yes-or-no form.
"""

from __future__ import annotations

from dispa.edge.cache.cache_control import cache_control_of
from dispa.edge.cache.fields import AnyHeaders, field_lines, has_field, list_members
from dispa.edge.cache.freshness import HEURISTICALLY_CACHEABLE, has_explicit_expiry
from dispa.edge.cache.targeted import response_cache_control
from dispa.proxy.events import Headers

# RFC 9110 section 7.6.1 and RFC 9111 section 3.1: meaningful for one connection only.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authenticate",
        b"proxy-authentication-info",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)


def is_storable(
    method: str,
    request_headers: AnyHeaders,
    status: int,
    response_headers: AnyHeaders,
    targeted_fields: tuple[bytes, ...] = (),
) -> bool:
    return (
        why_not_storable(method, request_headers, status, response_headers, targeted_fields) is None
    )


def why_not_storable(
    method: str,
    request_headers: AnyHeaders,
    status: int,
    response_headers: AnyHeaders,
    targeted_fields: tuple[bytes, ...] = (),
) -> str | None:
    """None if the response may be stored, else a short machine-friendly reason.

    ``targeted_fields``: this cache's target list (targeted.py); the first of them the
    response carries rules over its Cache-Control and Expires."""
    # Only GET is stored; HEAD requests are answered from the GET entry (see key.py).
    if method != "GET":
        return "method"
    if not understands_status(status):
        return "status"
    response = response_cache_control(response_headers, targeted_fields)
    if response.no_store or cache_control_of(request_headers).no_store:
        return "no_store"
    if response.private:
        return "private"
    explicitly_shared = response.public or response.s_maxage is not None
    # 3.5: a shared cache may reuse an authenticated response only where the origin said so.
    if has_field(request_headers, b"authorization") and not (
        explicitly_shared or response.must_revalidate
    ):
        return "authorization"
    if b"*" in list_members(field_lines(response_headers, b"vary")):
        return "vary_star"  # matches no later request (4.1), so storing it is pointless
    # A Set-Cookie served to every client would hand one user's session to the others. We
    # store such a response, cookie and all, only when the origin explicitly marks it as
    # shared (public or s-maxage); otherwise not at all. Stripping the cookie instead would
    # serve a response the origin never sent.
    if has_field(response_headers, b"set-cookie") and not explicitly_shared:
        return "set_cookie"
    # Section 3 wants explicit freshness, public, or a status cacheable by default. A
    # validator alone is not on that list: such a response would always be revalidated.
    if not (
        has_explicit_expiry(response_headers, response)
        or response.public
        or status in HEURISTICALLY_CACHEABLE
    ):
        return "no_freshness"
    return None


def understands_status(status: int) -> bool:
    """Final statuses this cache can replay as they are. Not 206 (serving a stored part
    needs range logic this cache lacks) and not 304 (it updates an entry, see
    validators.py); 1xx are not final responses."""
    return 200 <= status <= 599 and status not in (206, 304)


def headers_to_store(headers: AnyHeaders) -> Headers:
    """The response headers less the hop-by-hop ones and those Connection names (3.1)."""
    dropped = set(HOP_BY_HOP)
    dropped.update(member.lower() for member in list_members(field_lines(headers, b"connection")))
    return [(name, value) for name, value in headers if name.lower() not in dropped]
