"""Per-request state that filters and the access log read and write."""

from __future__ import annotations


class RequestContext:
    __slots__ = (
        "attempts",
        "bytes_in",
        "bytes_out",
        "client_identity",
        "client_ip",
        "client_port",
        "endpoint",
        "listener",
        "reason",
        "region",
        "request",
        "request_headers",
        "request_id",
        "response_cookie",
        "route",
        "route_name",
        "scheme",
        "started",
        "status",
        "upstream_name",
        "values",
    )

    def __init__(
        self, request, client_ip: str, client_port: int, listener: str, scheme: str, started: float
    ) -> None:
        self.request = request
        self.request_headers = request.headers  # filters replace it, never edit in place
        self.client_ip = client_ip
        self.client_port = client_port
        # The verified client certificate (mTLS) as a ClientIdentity: subject and SANs.
        self.client_identity = None
        self.listener = listener
        self.scheme = scheme
        self.started = started
        self.request_id = ""
        self.response_cookie: bytes | None = None  # Set-Cookie for a new sticky session
        self.route = None
        self.route_name = ""
        self.upstream_name = ""
        self.endpoint = None
        self.status = 0
        self.reason = None  # set when Dispa answered locally
        self.attempts = 0
        self.region: str | None = None  # chosen by a `geo: nearest` route
        self.bytes_in = 0
        self.bytes_out = 0
        self.values: dict | None = None  # free slot for filters that need per-request state
