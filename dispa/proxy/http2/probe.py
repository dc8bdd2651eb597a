"""An active health probe over HTTP/2, for ``protocol: h2`` upstreams: prior-knowledge
h2c, or h2 over TLS with the context the endpoint's pool connects with.

Like the HTTP/1.1 probe: a fresh connection, ``GET <path>``, the status of the response
head, then the connection is closed with GOAWAY. The h2 library frames; this only moves
bytes, within ``config.timeout``.
"""

from __future__ import annotations

import asyncio

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import ConnectionTerminated, ResponseReceived, StreamReset

from dispa.config.schema import HealthCheck
from dispa.proxy.upstream.endpoint import Endpoint
from dispa.proxy.upstream.tls import EndpointTls


class H2ProbeError(Exception):
    """The probe got no response head (a reset stream, a GOAWAY, a closed connection)."""


async def probe_status_h2(
    endpoint: Endpoint, config: HealthCheck, authority: str, tls: EndpointTls | None = None
) -> int:
    h2 = H2Connection(H2Configuration(client_side=True, header_encoding=None))
    h2.initiate_connection()
    stream_id = h2.get_next_available_stream_id()
    h2.send_headers(
        stream_id,
        [
            (b":method", b"GET"),
            (b":scheme", b"https" if tls is not None else b"http"),
            (b":authority", authority.encode("latin-1")),
            (b":path", config.path.encode("latin-1")),
            (b"user-agent", b"dispa-health"),
        ],
        end_stream=True,
    )
    async with asyncio.timeout(config.timeout):
        reader, writer = await asyncio.open_connection(
            endpoint.host,
            endpoint.port,
            ssl=tls.context if tls is not None else None,
            server_hostname=tls.server_name if tls is not None else None,
        )
        try:
            writer.write(h2.data_to_send())
            while True:
                data = await reader.read(65536)
                if not data:
                    raise H2ProbeError("connection closed before a response head")
                for event in h2.receive_data(data):
                    if isinstance(event, ResponseReceived) and event.stream_id == stream_id:
                        status = dict(event.headers)[b":status"]
                        h2.close_connection()
                        writer.write(h2.data_to_send())
                        return int(status)
                    if isinstance(event, StreamReset | ConnectionTerminated):
                        raise H2ProbeError(f"{type(event).__name__} before a response head")
                writer.write(h2.data_to_send())  # SETTINGS acknowledgements, PINGs
        finally:
            writer.close()
