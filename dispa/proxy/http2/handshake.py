"""How the opening of an HTTP/2 connection to an upstream fails when the endpoint is silent.

Dispa sends a request on a new HTTP/2 connection only once the endpoint's SETTINGS have
come (they say how many streams it takes). An endpoint that accepts the connection but
never sends them (a hung process, a server that speaks only HTTP/1.1 and waits for a
request line, a TLS box with h2 turned off) would otherwise look like any failed
connect. It gets ``timeouts.connect`` from the moment TCP (and TLS) was up, then fails
with this error, which the exchange answers ``504 upstream_h2_handshake_timeout``.

Its own module, without h2: the exchange knows it without loading the HTTP/2 side.
"""

from __future__ import annotations


class H2HandshakeTimeout(TimeoutError):
    """The endpoint accepted the connection but sent no SETTINGS in time. No request went
    out on it, so it is a connect failure for retries, outlier detection and the circuit
    breaker."""
