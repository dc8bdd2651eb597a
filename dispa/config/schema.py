"""The gateway config model: strict, with defaults an operator would expect.

Every model forbids unknown fields, so a typo is an error that names its path instead of
a setting silently ignored. Cross-references (a route naming an upstream) are checked in
``validate.py``; this file only describes shapes and single-field rules.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal, Union

from pydantic import (
    AfterValidator,
    Discriminator,
    Field,
    Tag,
    ValidationInfo,
    field_validator,
    model_validator,
)

from dispa.config.acme import Acme
from dispa.config.ai import Ai
from dispa.config.authority import check_allowed_host, check_allowed_origin
from dispa.config.discovery import Discovery, PoolReference
from dispa.config.file_paths import FilePath
from dispa.config.filters import filter_config_models
from dispa.config.filters._rate_limit_key import RateLimitKey, check_rate_limit_key
from dispa.config.filters.headers import HeadersFilter
from dispa.config.filters.local_rate_limit import LocalRateLimitFilter  # noqa: F401
from dispa.config.paths import is_normal, normal_form_hint
from dispa.config.route_regex import header_regex, path_regex
from dispa.config.strict import Strict
from dispa.config.units import Duration, Size

LB_POLICIES = (
    "round_robin",
    "weighted_round_robin",
    "random",
    "least_request",
    "p2c_ewma",
    "ring_hash",
    "maglev",
)
RETRY_CONDITIONS = ("connect_failure", "reset", "502", "503", "504")
# By default only failures where the request cannot have reached the upstream's
# application, or its answer never started, are retried (nginx's `error timeout`; Envoy
# retries nothing without a policy): a 5xx answer is the application's, and retrying it
# doubles the load on an origin that is already failing. 502/503/504 are opt-in.
DEFAULT_RETRY_ON = ("connect_failure", "reset")
_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
# An HTTP field name: a token (RFC 9110 section 5.1), here lower-cased.
_FIELD_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9a-z-]+", re.ASCII)


def _check_address(value: str) -> str:
    host, sep, port = value.rpartition(":")
    # An IPv6 host must be bracketed: unbracketed, "::1" would read as host ":" and port 1.
    bad_ipv6 = ":" in host and not (host.startswith("[") and host.endswith("]"))
    if not sep or not host or bad_ipv6 or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"'{value}' is not an address; write it as host:port, like 127.0.0.1:8080")
    return value


def split_address(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return host.strip("[]"), int(port)


Address = Annotated[str, AfterValidator(_check_address)]


# ---------------------------------------------------------------- listeners and limits


class Http2Limits(Strict):
    """What one HTTP/2 client connection may make the gateway hold or do: the flood
    defences of nginx and Envoy, counted as frames arrive (never by re-reading a list)."""

    max_concurrent_streams: int = Field(
        100,
        ge=1,
        le=1000,
        description="Streams a client may have open at once (advertised in SETTINGS); one "
        "more is refused with RST_STREAM REFUSED_STREAM.",
    )
    max_continuation_frames: int = Field(
        16,
        ge=1,
        le=1024,
        description="CONTINUATION frames in one header block; more -> GOAWAY "
        "ENHANCE_YOUR_CALM. The block's bytes are capped too, at 4 x `max_header_bytes` "
        "and one frame; a header block left unfinished for `header_timeout` ends the "
        "connection.",
    )
    flood_interval: Duration = Field(
        10.0,
        gt=0,
        description="The period over which `max_reset_streams` and `max_control_frames` "
        "are counted; the counts start again at zero every interval.",
    )
    max_reset_streams: int = Field(
        500,
        ge=1,
        description="Streams the client resets (RST_STREAM), or makes the gateway reset or "
        "refuse (malformed, over the stream limit), per `flood_interval`; more -> GOAWAY "
        "ENHANCE_YOUR_CALM (HTTP/2 rapid reset, CVE-2023-44487).",
    )
    max_control_frames: int = Field(
        1000,
        ge=1,
        description="Frames that carry no request per `flood_interval`: SETTINGS (one more "
        "per 10 entries), PING, PRIORITY, GOAWAY, RST_STREAM of a closed stream, DATA "
        "without bytes or end, frames of unknown types; more -> GOAWAY ENHANCE_YOUR_CALM. "
        "WINDOW_UPDATE frames are allowed in proportion to the DATA frames sent.",
    )
    stream_output_buffer: Size = Field(
        256 * 1024,
        ge=16 * 1024,
        description="Response bytes queued for one stream (waiting for the client's "
        "flow-control window or a full socket) past which its upstream stops being read; "
        "it is read again below a quarter of this.",
    )
    connection_output_buffer: Size = Field(
        1024 * 1024,
        ge=64 * 1024,
        description="The same for all the streams of one connection together: past it, "
        "every stream's upstream is paused (those with nothing queued yet too) and new "
        "requests wait, their bodies held back by their windows, until the queue is back "
        "under it.",
    )


class Limits(Strict):
    """Protection against clients that send too much or too slowly."""

    max_header_bytes: Size = 65536  # whole request head; larger -> 431
    max_body_bytes: Size = 0  # 0 = unlimited (bodies stream, memory stays bounded)
    header_timeout: Duration = 10.0  # time to receive a full request head -> 408
    body_timeout: Duration = 60.0  # longest pause between body bytes -> 408
    idle_timeout: Duration = 60.0  # keep-alive connection idle between requests
    max_requests_per_connection: int = Field(0, ge=0)  # 0 = unlimited
    http2: Http2Limits = Field(
        Http2Limits(), description="Limits of HTTP/2 client connections (floods, buffering)."
    )
    # Slow bodies (slow POST): a body must average this many bytes a second once the
    # grace period is over, whatever its pauses (Apache's mod_reqtimeout rule).
    min_body_rate: Size = Field(
        500,
        description="Bytes a second a request body must average after `body_rate_grace` "
        "(the allowance grows by one second per `min_body_rate` bytes received); slower -> "
        "408 `request_body_too_slow`. 0 turns the rule off.",
    )
    body_rate_grace: Duration = Field(
        20.0, description="Time a request body has before `min_body_rate` applies."
    )
    buffer_body_up_to: Size = Field(
        65536,
        le=16 * 1024 * 1024,
        description="A request body with a declared length up to this many bytes is read "
        "whole before an upstream endpoint is picked, so a slow client never holds an "
        "upstream connection (gRPC and bodies of unknown length stream at once). 0 streams "
        "every body at once.",
    )
    max_uploads_per_client: int = Field(
        32,
        ge=0,
        description="Requests from one client address whose body is still being sent to "
        "an upstream, at one time (per worker); more -> 429 `client_upload_limit`. Behind a "
        "proxy that hides client addresses, raise it or set 0 (no limit).",
    )


class CertificateFiles(Strict):
    """One server certificate: PEM files, read when the config is loaded and on reload."""

    cert: FilePath = Field(min_length=1)  # the certificate, then any intermediates
    key: FilePath = Field(min_length=1)  # its private key, unencrypted


class ClientAuth(Strict):
    """Client certificates (mTLS), verified against ``ca``."""

    mode: Literal["off", "optional", "required"] = "off"
    # Checked even when left out, so that a mode without a CA names this field.
    ca: FilePath | None = Field(None, min_length=1, validate_default=True)
    # Sends the verified client identity upstream in this header; a client's own copy is
    # always removed, so it cannot be forged.
    forward_header: str | None = Field(None, pattern=r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")

    @field_validator("mode", mode="before")
    @classmethod
    def _yaml_off(cls, value: object) -> object:
        # YAML 1.1 reads a bare `off` as the boolean false.
        return "off" if value is False else value

    @field_validator("ca")
    @classmethod
    def _ca_for_verification(cls, value: str | None, info: ValidationInfo) -> str | None:
        mode = info.data.get("mode")
        if value is None and mode in ("optional", "required"):
            raise ValueError(f"client_auth mode {mode} needs a ca to verify certificates with")
        return value


class Tls(Strict):
    """TLS termination: certificates chosen by SNI, protocol floor, ALPN, client certs."""

    # Also serve the certificate the cluster obtains by ACME (shared config ``acme:``), for
    # its names; a self-signed placeholder stands in until the first one is issued.
    acme: bool = False
    # Empty only with acme: true, where certificates come from the cluster's ACME manager.
    certificates: tuple[CertificateFiles, ...] = Field((), validate_default=True)
    min_version: Literal["1.2", "1.3"] = "1.2"
    # Both, as a plaintext listener accepts both: gRPC and HTTP/2 clients need h2.
    alpn: tuple[Literal["h2", "http/1.1"], ...] = Field(("h2", "http/1.1"), min_length=1)
    client_auth: ClientAuth = ClientAuth()

    @field_validator("min_version", mode="before")
    @classmethod
    def _version_as_text(cls, value: object) -> object:
        # A bare 1.2 in YAML is a number.
        return str(value) if isinstance(value, float) else value

    @field_validator("alpn")
    @classmethod
    def _alpn_unique(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(value)) != len(value):
            raise ValueError("each protocol may be listed once")
        return value

    @field_validator("certificates")
    @classmethod
    def _certificates_or_acme(cls, value: tuple, info: ValidationInfo) -> tuple:
        if not value and not info.data.get("acme", True):
            raise ValueError("give at least one certificate, or set acme: true (on a core or edge)")
        return value


class Paths(Strict):
    """How request paths are normalised (RFC 3986) before routing; the upstream receives
    the normalised form (docs/life-of-a-request.md, "What the upstream receives")."""

    merge_slashes: bool = Field(
        True,
        description="Merge `//` into `/`, as nginx does by default: most servers read "
        "`//admin` as `/admin`, so a route for `/admin` must too. Turn off only for "
        "upstreams where empty path segments mean something (object stores).",
    )
    escaped_slashes: Literal["reject", "keep", "unescape"] = Field(
        "reject",
        description="Encoded `/` and `\\` (`%2F`, `%5C`) in a path: `reject` answers 400; "
        "`keep` forwards them encoded, as data within a segment (for APIs with encoded "
        "ids, when the upstream does not decode them into separators); `unescape` makes "
        "both a `/` before routing (Envoy's `path_with_escaped_slashes_action`). The "
        "default closes `/x%2F..%2Fadmin` to upstreams that decode before resolving dots.",
    )
    escaped_nul: Literal["reject", "keep"] = Field(
        "reject",
        description="An encoded NUL (`%00`) in a path: `reject` answers 400; `keep` forwards "
        "it (C upstreams may cut the path there).",
    )


class Listener(Strict):
    name: str = Field(pattern=_NAME)
    address: Address
    limits: Limits = Limits()
    tls: Tls | None = None  # None: plain TCP
    paths: Paths = Field(
        Paths(), description="How request paths are normalised before routing and forwarding."
    )


# ---------------------------------------------------------------- upstreams


class EndpointConfig(Strict):
    address: Address
    weight: int = Field(1, ge=1, le=1000)
    # The region (a name from `regions`) the endpoint serves from; used by `geo: nearest`.
    region: str | None = Field(None, pattern=_NAME)


class HashPolicy(Strict):
    """Where ring_hash and maglev take their key from."""

    key: str = "source_ip"  # header:NAME | cookie:NAME | source_ip | path
    bounded_load: float | None = Field(1.25, description="0 or null turns it off")

    @field_validator("key")
    @classmethod
    def _key(cls, value: str) -> str:
        if value in ("source_ip", "path"):
            return value
        kind, _, name = value.partition(":")
        if kind in ("header", "cookie") and name:
            return value
        raise ValueError(
            f"'{value}' is not a hash key; use source_ip, path, header:NAME or cookie:NAME"
        )

    @field_validator("bounded_load")
    @classmethod
    def _bounded_load(cls, value: float | None) -> float | None:
        if value is None or value == 0:
            return None
        if value < 1.0:
            raise ValueError("bounded_load must be at least 1.0 (or 0 to turn it off)")
        return value


class HealthCheck(Strict):
    kind: Literal["http", "grpc"] = Field(
        "http",
        description="`http`: `GET <path>`, healthy when the status is in `expected_status`. "
        "`grpc`: the gRPC health checking protocol (`/grpc.health.v1.Health/Check` for "
        "`service`), healthy when it answers SERVING; needs `protocol: h2`.",
    )
    service: str = Field(
        "", description='For `kind: grpc`: the service asked about ("" = the server).'
    )
    path: str = "/healthz"
    interval: Duration = 5.0
    timeout: Duration = 1.0
    healthy_threshold: int = Field(2, ge=1)
    unhealthy_threshold: int = Field(3, ge=1)
    expected_status: tuple[int, int] = (200, 399)
    host: str | None = None  # Host header for checks; the endpoint address by default

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("a health check path must start with /")
        return value


class Outlier(Strict):
    """Passive outlier detection: eject endpoints that keep failing real requests."""

    consecutive_5xx: int = Field(5, ge=0)  # 0 turns this trigger off
    consecutive_failures: int = Field(5, ge=0)  # connect failures and resets
    base_ejection: Duration = 30.0
    max_ejection: Duration = 300.0
    max_ejected_percent: int = Field(50, ge=0, le=100)


class Circuit(Strict):
    """Circuit breaking: refuse (503) rather than queue without bound."""

    max_connections: int = Field(1024, ge=1)
    max_pending: int = Field(1024, ge=0)
    max_requests: int = Field(1024, ge=1)


class Retry(Strict):
    attempts: int = Field(2, ge=1, le=10)  # total tries, first one included
    # Named retry_on, not "on": in YAML a bare `on:` key reads as the boolean true.
    retry_on: tuple[str, ...] = DEFAULT_RETRY_ON
    per_try_timeout: Duration | None = None
    budget_percent: float = Field(20.0, ge=0, le=100)  # retries as a share of active requests
    min_retry_concurrency: int = Field(3, ge=0)

    @field_validator("retry_on", mode="before")
    @classmethod
    def _statuses_as_text(cls, value: object) -> object:
        # 502, written bare in YAML, is a number: accept it as the condition "502".
        if isinstance(value, list | tuple):
            return tuple(str(item) if isinstance(item, int) else item for item in value)
        return value

    @field_validator("retry_on")
    @classmethod
    def _retry_on(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for item in value:
            if item not in RETRY_CONDITIONS:
                raise ValueError(
                    f"'{item}' is not a retry condition; use {', '.join(RETRY_CONDITIONS)}"
                )
        return value


class Timeouts(Strict):
    connect: Duration = 2.0  # TCP+TLS -> 502 on failure; then again for h2 SETTINGS -> 504
    response: Duration = 30.0  # request sent -> first byte of the response head -> 504
    idle: Duration = 60.0  # longest silence while streaming a response -> 504
    tunnel_idle: Duration | None = None  # silence both ways in a WebSocket tunnel; None: idle
    # gRPC calls: a stream's first message (and its response head) may come at any time.
    grpc_response: Duration | None = Field(
        None,
        description="How long a gRPC call waits for its response head, in place of "
        "`response` (gRPC servers send the head with the first message, which a watch may "
        "send minutes later). Left out: no such wait; the upstream's silence is bounded by "
        "`idle`, before the head as after it, and the client's `grpc-timeout` ends the call "
        "at its deadline. A route's `timeout` and `retry.per_try_timeout` still apply.",
    )


class Pool(Strict):
    max_idle_per_endpoint: int = Field(256, ge=0)
    idle_timeout: Duration = 60.0


class SessionAffinity(Strict):
    """Sticky sessions: a cookie names the endpoint that served a client first."""

    cookie: str = Field("dispa_session", pattern=r"^[A-Za-z0-9_.-]+$")
    ttl: Duration = 3600.0


class UpstreamTls(Strict):
    """TLS from Dispa to an upstream's endpoints (upstream/tls.py builds the context)."""

    verify: bool = Field(
        True,
        description="Verify the endpoint's certificate chain and name. `false` accepts any "
        "certificate: for tests only, since anyone on the path can then read the traffic.",
    )
    ca: FilePath | None = Field(
        None,
        min_length=1,
        description="PEM file of the CAs that endpoint certificates must chain to. Left "
        "out: the system trust store.",
    )
    server_name: str | None = Field(
        None,
        min_length=1,
        pattern=r"^[A-Za-z0-9.-]+$",
        description="Sent as SNI and checked against the endpoint's certificate. Left out: "
        "the endpoint's host when it is a name; an IP address is checked against the "
        "certificate's IP addresses, and no SNI is sent.",
    )
    client_cert: FilePath | None = Field(
        None,
        min_length=1,
        description="PEM client certificate (then any intermediates) for upstreams that "
        "require mutual TLS; needs `client_key`.",
    )
    # Checked even when left out, so a certificate without its key names this field.
    client_key: FilePath | None = Field(
        None,
        min_length=1,
        validate_default=True,
        description="PEM private key of `client_cert`, unencrypted; needs `client_cert`.",
    )
    min_version: Literal["1.2", "1.3"] = Field(
        "1.2", description="The lowest TLS version Dispa accepts from the endpoint."
    )

    @field_validator("min_version", mode="before")
    @classmethod
    def _version_as_text(cls, value: object) -> object:
        # A bare 1.2 in YAML is a number.
        return str(value) if isinstance(value, float) else value

    @field_validator("client_key")
    @classmethod
    def _key_with_certificate(cls, value: str | None, info: ValidationInfo) -> str | None:
        certificate = info.data.get("client_cert")
        if value is None and certificate is not None:
            raise ValueError("client_cert needs its client_key")
        if value is not None and certificate is None and "client_cert" in info.data:
            raise ValueError("client_key needs its client_cert")
        return value


class Upstream(Strict):
    name: str = Field(pattern=_NAME)
    protocol: Literal["http1", "h2"] = Field(
        "http1",
        description="How Dispa speaks to the endpoints. `http1`: HTTP/1.1 on a keep-alive "
        "pool. `h2`: HTTP/2, each request a stream on a multiplexed connection per endpoint "
        "(prior-knowledge h2c on plain TCP; h2 by ALPN with `tls`), as gRPC needs; trailers "
        "pass end to end. WebSocket upgrades to an `h2` upstream are answered 501.",
    )
    lb: Literal[LB_POLICIES] = "round_robin"
    hash: HashPolicy | None = None
    # "pool@provider": the endpoints come from that pool of a discovery provider.
    discovery: PoolReference | None = None
    endpoints: tuple[EndpointConfig, ...] = Field((), validate_default=True)
    health: HealthCheck | None = None
    outlier: Outlier = Outlier()
    circuit: Circuit = Circuit()
    retry: Retry = Retry()
    timeouts: Timeouts = Timeouts()
    pool: Pool = Pool()
    session_affinity: SessionAffinity | None = None
    tls: UpstreamTls | None = Field(
        None,
        description="Connect to the endpoints over TLS (HTTPS), for proxied requests, "
        "WebSocket upgrades and active health checks alike. Left out: plain TCP.",
    )
    capacity_rps: float | None = Field(
        None,
        gt=0,
        description="Requests per second the upstream can take (tries, retries included). "
        "While the AI forecast for the next `ai.forecast_horizon` steps exceeds it, a "
        "capacity alert is raised: a log line, `dispa_ai_capacity_alert` and `/api/v1/ai`.",
    )

    @field_validator("endpoints")
    @classmethod
    def _endpoints_or_discovery(
        cls, value: tuple[EndpointConfig, ...], info: ValidationInfo
    ) -> tuple[EndpointConfig, ...]:
        # A discovered upstream may start empty (503 until its pool has endpoints). A bad
        # discovery value is reported on its own field, not here as well.
        if not value and "discovery" in info.data and info.data["discovery"] is None:
            raise ValueError("an upstream needs endpoints, or discovery: POOL@PROVIDER")
        return value

    @field_validator("health")
    @classmethod
    def _grpc_health_needs_h2(
        cls, value: HealthCheck | None, info: ValidationInfo
    ) -> HealthCheck | None:
        protocol = info.data.get("protocol")
        if value is not None and value.kind == "grpc" and protocol not in (None, "h2"):
            raise ValueError(f"health kind 'grpc' needs protocol: h2, not {protocol}")
        return value

    # A field validator (not a model one) so the problem is reported even when another field
    # of the same upstream is wrong: pydantic skips "after" model validators in that case.
    @field_validator("hash")
    @classmethod
    def _hash_needs_hashing_policy(
        cls, value: HashPolicy | None, info: ValidationInfo
    ) -> HashPolicy | None:
        lb = info.data.get("lb")
        if value is not None and lb is not None and lb not in ("ring_hash", "maglev"):
            raise ValueError(f"'hash' applies only to lb ring_hash or maglev, not {lb}")
        return value


# ---------------------------------------------------------------- filters


# The filter types' config models live in dispa/config/filters/, one module each; these
# names stay importable from here. Kept for existing imports: _check_rate_limit_key.
_check_rate_limit_key = check_rate_limit_key


class RateLimit(Strict):
    """A global rate limit: at most ``limit`` requests per ``window`` for each key, counted
    across every node of a cluster (leased quota); a single gateway counts alone."""

    name: str = Field(pattern=_NAME)
    key: RateLimitKey = "source_ip"
    limit: int = Field(ge=1)
    window: Duration = 1.0
    routes: tuple[str, ...] = ()  # route names it applies to; empty = every route

    @field_validator("window")
    @classmethod
    def _window(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("a rate-limit window must be longer than 0")
        return value


class FilterReference(Strict):
    """A filter entry that names an instance of `filter_definitions` instead of a type."""

    use: str = Field(
        pattern=_NAME,
        description="The name of a filter defined once under `filter_definitions`: that one "
        "instance (and its state, a rate limit's buckets say) serves every place that uses it.",
    )


# Every registered filter type, chosen by its `type` (the union is built from the registry
# in dispa/config/filters/, so a new type needs no edit here).
FilterTypeConfig = Annotated[
    Union[tuple(filter_config_models().values())],  # noqa: UP007 (built at run time)
    Field(discriminator="type"),
]


def _filter_entry_kind(value: object) -> str | None:
    if isinstance(value, dict):
        return "use" if "use" in value else value.get("type")
    return "use" if isinstance(value, FilterReference) else getattr(value, "type", None)


# An entry of a `filters` list: a filter written inline, or `{use: NAME}`.
FilterConfig = Annotated[
    Union[  # noqa: UP007 (built at run time)
        tuple(
            [Annotated[model, Tag(name)] for name, model in filter_config_models().items()]
            + [Annotated[FilterReference, Tag("use")]]
        )
    ],
    Discriminator(_filter_entry_kind),
]


class FiltersExecutor(Strict):
    """The gateway's threads for filter work that blocks (crypto, a WAF engine)."""

    threads: int = Field(
        4, ge=1, le=256, description="Worker threads; each runs one filter job at a time."
    )
    queue: int = Field(
        256,
        ge=0,
        le=65536,
        description="Jobs that may wait for a free thread. A job submitted beyond it is not "
        "queued: the request gets 503 `filter_executor_full` at once.",
    )


# ---------------------------------------------------------------- routes


class HeaderMatch(Strict):
    name: str
    exact: str | None = None
    regex: str | None = None
    present: bool | None = None

    @field_validator("regex")
    @classmethod
    def _linear_regex(cls, value: str | None) -> str | None:
        # Compiled as the router compiles it (RE2, over bytes), so what passes here never
        # fails at snapshot time.
        if value is not None:
            header_regex(value)
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> HeaderMatch:
        kinds = [k for k in ("exact", "regex", "present") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError("give exactly one of exact, regex or present")
        return self


def _normal_path(value: str | None) -> str | None:
    """A route path must be in the form requests are matched in (paths.py), or it could
    never match; the message says how to write it."""
    if value is None:
        return value
    if not value.startswith("/"):
        raise ValueError(f"path '{value}' must start with /")
    if not is_normal(value):
        hint = normal_form_hint(value)
        fix = f"; write '{hint}'" if hint else ""
        raise ValueError(
            f"path '{value}' is not in normal form (RFC 3986): requests are matched once "
            f"normalised, so it would never match{fix}"
        )
    return value


class Match(Strict):
    host: str = "*"  # exact, *.example.com, or *
    path_prefix: str | None = None
    path_exact: str | None = None
    path_regex: str | None = None
    methods: tuple[str, ...] = ()
    headers: tuple[HeaderMatch, ...] = ()

    _normal_paths = field_validator("path_prefix", "path_exact")(_normal_path)

    @field_validator("path_regex")
    @classmethod
    def _linear_regex(cls, value: str | None) -> str | None:
        if value is not None:
            path_regex(value)
        return value

    @model_validator(mode="after")
    def _one_path_kind(self) -> Match:
        kinds = [k for k in ("path_prefix", "path_exact", "path_regex") if getattr(self, k)]
        if len(kinds) > 1:
            raise ValueError(
                f"give at most one of path_prefix, path_exact, path_regex, not {kinds}"
            )
        host = self.host
        # "*." alone would match every host ending in a dot: a wildcard needs a suffix.
        wildcard_ok = host.startswith("*.") and len(host) > 2 and "*" not in host[2:]
        if host != "*" and "*" in host and not wildcard_ok:
            raise ValueError(f"host '{host}' may use * only as a leading '*.' label, or be '*'")
        return self

    @field_validator("methods")
    @classmethod
    def _methods(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(m.upper() for m in value)


class Redirect(Strict):
    status: Literal[301, 302, 303, 307, 308] = 302
    scheme: str | None = None
    host: str | None = None
    path: str | None = None  # replaces the whole path
    prefix: str | None = None  # replaces the matched path_prefix


class DirectResponse(Strict):
    status: int = Field(200, ge=100, le=599)
    body: str = ""
    headers: dict[str, str] = {}


class Route(Strict):
    name: str | None = Field(None, pattern=_NAME)
    match: Match = Match()
    upstream: str | None = None
    prefix_rewrite: str | None = None
    headers: HeadersFilter | None = None  # per-route header edits, same fields as the filter
    redirect: Redirect | None = None
    direct_response: DirectResponse | None = None
    filters: tuple[FilterConfig, ...] = ()
    timeout: Duration | None = None  # overrides the upstream's response timeout
    # nearest: each client goes to the endpoints of the nearest region that has a healthy
    # one (edge nodes locate clients with their geo database).
    geo: Literal["off", "nearest"] = "off"
    # Responses of this route may be stored in an edge's shared cache (RFC 9111 rules).
    cache: bool = False

    @model_validator(mode="before")
    @classmethod
    def _headers_type(cls, data: object) -> object:
        # Route header edits reuse the headers filter model without making users write type.
        if isinstance(data, dict) and isinstance(data.get("headers"), dict):
            data = {**data, "headers": {"type": "headers", **data["headers"]}}
        return data

    @model_validator(mode="after")
    def _one_action(self) -> Route:
        actions = [a for a in ("upstream", "redirect", "direct_response") if getattr(self, a)]
        if len(actions) != 1:
            raise ValueError(
                "a route needs exactly one of upstream, redirect or direct_response"
                + (f", not {' and '.join(actions)}" if actions else "")
            )
        if self.prefix_rewrite is not None and self.match.path_prefix is None:
            raise ValueError("prefix_rewrite needs match.path_prefix")
        return self


# ---------------------------------------------------------------- regions


class Region(Strict):
    """Where a region's endpoints are: for `geo: nearest`, clients go to the nearest one."""

    name: str = Field(pattern=_NAME)
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)
    # Used when the geo database has no coordinates (country databases): continent codes
    # (EU, NA, AS, ...) and ISO country codes (GB, US, ...) this region serves first.
    continents: tuple[str, ...] = ()
    countries: tuple[str, ...] = ()

    @field_validator("continents", "countries")
    @classmethod
    def _upper_codes(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(v.strip().upper() for v in values)


# ---------------------------------------------------------------- admin, logs, whole file


class Admin(Strict):
    address: Address = "127.0.0.1:9901"
    allowed_hosts: tuple[Annotated[str, AfterValidator(check_allowed_host)], ...] = Field(
        (),
        description="Host header values the admin API answers besides its own address (the "
        "`address` above and the address a connection arrived on; `localhost`, `127.0.0.1` "
        "and `[::1]` on loopback): the names it is reached by through DNS, a proxy or a "
        "port mapping. `name` allows that name on any port, `name:port` on that port only; "
        "`*` turns the check off (not recommended: it lets DNS rebinding read the API). "
        "Other Host values are answered 421, which keeps a web page that rebinds its own "
        "domain to this address from reading it.",
    )
    allowed_origins: tuple[Annotated[str, AfterValidator(check_allowed_origin)], ...] = Field(
        (),
        description="Web origins (`https://console.example.com`) whose pages may call the admin "
        "API from a browser, besides the admin's own origin. A request with any other "
        "`Origin` header is refused with 403.",
    )


class AccessLog(Strict):
    enabled: bool = True
    path: FilePath = "-"  # "-" is standard output
    buffer_bytes: Size = 65536
    flush_interval: Duration = 1.0


class CacheSettings(Strict):
    """The response cache of routes with `cache: true`: an edge's, or a single gateway's."""

    memory: Size = 64 * 1024 * 1024  # bytes of (compressed) responses held in memory
    disk_dir: FilePath | None = None  # an optional disk tier, for what memory evicts
    disk_size: Size = 1024 * 1024 * 1024
    max_entry: Size = 8 * 1024 * 1024  # larger responses are passed through, not stored
    targeted_fields: tuple[str, ...] = Field(
        ("cdn-cache-control",),
        description="Targeted cache-control fields this cache obeys (RFC 9213), in order of "
        "precedence. The first one a response carries with a valid value rules what the "
        "cache stores and for how long, over `Cache-Control` and `Expires`; all of them "
        "still reach the client unchanged. Names are case-insensitive; `[]` turns this "
        "off, so only `Cache-Control` and `Expires` count.",
    )

    @field_validator("targeted_fields")
    @classmethod
    def _targeted_field_names(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        lowered = tuple(name.lower() for name in names)
        for name in lowered:
            if not _FIELD_NAME.fullmatch(name):
                raise ValueError(f"'{name}' is not a field name (a token, like cdn-cache-control)")
            if name == "cache-control":
                raise ValueError("list targeted fields only, not Cache-Control itself")
        if len(set(lowered)) != len(lowered):
            raise ValueError("a field is named twice")
        return lowered


class Gateway(Strict):
    """One whole gateway config file."""

    listeners: tuple[Listener, ...] = Field(min_length=1)
    upstreams: tuple[Upstream, ...] = ()
    routes: tuple[Route, ...] = Field(min_length=1)
    filters: tuple[FilterConfig, ...] = ()
    filter_definitions: dict[str, FilterTypeConfig] = Field(
        {},
        description="Named filter instances, each built once and used by name (`{use: NAME}`) "
        "in `filters` or a route's `filters`.",
    )
    filters_executor: FiltersExecutor = FiltersExecutor()
    rate_limits: tuple[RateLimit, ...] = ()
    regions: tuple[Region, ...] = ()
    admin: Admin = Admin()
    access_log: AccessLog = AccessLog()
    drain_timeout: Duration = 15.0  # SIGTERM: longest wait for in-flight requests
    discovery: Discovery = Discovery()  # providers of upstream endpoints
    cache: CacheSettings = Field(
        CacheSettings(),
        description="The response cache of a single gateway (`dispa run`) for its routes "
        "with `cache: true`; an edge has the same section in its own file, and core nodes do "
        "not cache. Made when a route first caches (none before: no cost); left out, a "
        "64 MiB memory cache. Kept across reloads with what it stored, new sizes applied; "
        "with `--workers`, one per worker (see the operator guide, Cache responses).",
    )
    ai: Ai = Field(
        Ai(),
        description="Online learning: request-rate forecasts, per-endpoint anomaly scores and "
        "the steering of balancing weights (docs/ai.md).",
    )
    # Certificates by ACME: ordered by a core cluster's leader (not by a single gateway).
    acme: Acme | None = None
