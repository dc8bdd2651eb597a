"""TLS from Dispa to upstream endpoints: the client SSLContext, and what each endpoint's
connections need from it.

A context is built once per upstream config (when a snapshot's upstream runtimes are
prepared) and shared by the endpoints' pools and active health probes: OpenSSL then loads
the CA file and client certificate once, not per connection. A reload that changes the
``tls`` block builds new contexts; connections made with the old one finish their work.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass

from dispa.config.schema import Upstream, UpstreamTls

_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


class UpstreamTlsError(Exception):
    """The files of an upstream's ``tls`` block could not be loaded."""


def client_context(tls: UpstreamTls, alpn: list[str] | None = None) -> ssl.SSLContext:
    """An SSL client context for ``tls``; ``alpn`` offers those protocols (``["h2"]``).

    Raises UpstreamTlsError naming the field whose file does not load.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies chain and name by default
    context.minimum_version = _VERSIONS[tls.min_version]
    context.options |= ssl.OP_NO_RENEGOTIATION
    if tls.verify and tls.ca is not None:
        _load(context.load_verify_locations, "ca", tls.ca)
    elif tls.verify:
        context.load_default_certs()  # the system trust store
    else:
        context.check_hostname = False  # must come before the verify mode
        context.verify_mode = ssl.CERT_NONE
    if tls.client_cert is not None:
        _load(context.load_cert_chain, "client_cert", tls.client_cert, tls.client_key)
    if alpn:
        context.set_alpn_protocols(alpn)
    return context


def _load(method, field: str, *paths: str | None) -> None:
    try:
        method(*paths)
    except (OSError, ValueError) as error:  # ssl.SSLError is an OSError
        reason = getattr(error, "strerror", None) or error
        raise UpstreamTlsError(f"tls.{field}: cannot load {paths[0]}: {reason}") from None


def server_name_for(tls: UpstreamTls, host: str) -> str:
    """What ``server_hostname`` the connection gets: ``tls.server_name``, else the
    endpoint's host. Python sends no SNI for an IP address and checks it against the
    certificate's IP addresses instead, which is what an IP endpoint wants."""
    return tls.server_name or host


@dataclass(frozen=True, slots=True)
class EndpointTls:
    """What the connections to one endpoint need: the upstream's shared context and the
    name to verify. ``config`` tells a changed ``tls`` block from an unchanged one."""

    context: ssl.SSLContext
    server_name: str
    upstream: str
    config: UpstreamTls


class UpstreamTlsContext:
    """The context of one upstream config, built once; ``for_endpoint`` per endpoint."""

    __slots__ = ("config", "context", "upstream")

    def __init__(self, upstream: Upstream, alpn: list[str] | None = None) -> None:
        assert upstream.tls is not None
        self.upstream = upstream.name
        self.config = upstream.tls
        try:
            self.context = client_context(upstream.tls, alpn)
        except UpstreamTlsError as error:
            raise UpstreamTlsError(f"upstream {upstream.name}: {error}") from None

    def for_endpoint(self, host: str) -> EndpointTls:
        return EndpointTls(
            self.context, server_name_for(self.config, host), self.upstream, self.config
        )


def describe_handshake_error(error: BaseException) -> str:
    """A one-line reason for a failed handshake, without a traceback."""
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"certificate verification failed: {error.verify_message or error.reason}"
    if isinstance(error, ssl.SSLError):
        reason = error.reason or str(error)
        if "ALERT_" in reason:  # the endpoint refused: TLSV13_ALERT_CERTIFICATE_REQUIRED
            alert = reason.partition("ALERT_")[2].replace("_", " ").lower()
            return f"the endpoint ended the TLS handshake with alert '{alert}'"
        return f"TLS handshake failed: {reason}"
    return f"TLS handshake failed: {error}"
