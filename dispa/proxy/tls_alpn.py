"""ALPN offers a TLS listener refuses: read from the ClientHello, told in the log.

A client that offers only protocols the listener does not accept (gRPC offers just
``h2``; some tools offer ``h3``) gets a handshake with no protocol chosen (Python's ssl
does not send RFC 7301's no_application_protocol alert), then fails with an error of its
own ("missing selected ALPN property"); nothing in the handshake told the gateway. The ssl
module does not show a server what a client offered, so the listener's context reads each
ClientHello as it passes (``watch_client_hellos``) and notes a refused offer on the
connection's SSLObject; once the handshake is over, the connection's first protocol calls
``warn_if_alpn_refused``, which logs it with the client's address, at most once a minute
per listener (a misconfigured fleet would otherwise write a line per connection).

The ClientHello parser is a pure function over bytes a client chose: bounds-checked,
never raising, and its output is capped before it reaches a log line.
"""

from __future__ import annotations

import logging
import ssl
import time

log = logging.getLogger("dispa.tls")

WARNING_INTERVAL = 60.0  # seconds between two lines for one listener
_HANDSHAKE = 22  # TLS record content type
_CLIENT_HELLO = 1  # handshake message type
_ALPN_EXTENSION = 16
_SHOWN_PROTOCOLS = 8  # at most this many offered names in a log line ...
_SHOWN_NAME = 32  # ... each cut to this many characters
_ATTRIBUTE = "dispa_refused_alpn"  # set on the SSLObject of a connection with a refused offer

_last_warning: dict[str, float] = {}  # listener name -> when its last line was written


def offered_alpn(message: bytes) -> tuple[bytes, ...]:
    """The protocol names of a ClientHello handshake message's ALPN extension (RFC 7301),
    in the client's order; () when it has none or the message is malformed."""
    try:
        return _offered_alpn(message)
    except (IndexError, ValueError):
        return ()


def _u16(data: bytes, at: int) -> int:
    if at + 2 > len(data):
        raise IndexError(at)
    return (data[at] << 8) | data[at + 1]


def _offered_alpn(message: bytes) -> tuple[bytes, ...]:
    if len(message) < 4 or message[0] != _CLIENT_HELLO:
        return ()
    end = min(len(message), 4 + int.from_bytes(message[1:4], "big"))
    at = 4 + 2 + 32  # header, legacy_version, random
    at += 1 + message[at]  # legacy_session_id
    at += 2 + _u16(message, at)  # cipher_suites
    at += 1 + message[at]  # legacy_compression_methods
    if at + 2 > end:
        return ()  # no extensions
    extensions_end = min(end, at + 2 + _u16(message, at))
    at += 2
    while at + 4 <= extensions_end:
        kind, size = _u16(message, at), _u16(message, at + 2)
        at += 4
        if kind == _ALPN_EXTENSION:
            return _protocol_names(message, at, min(at + size, extensions_end))
        at += size
    return ()


def _protocol_names(data: bytes, at: int, end: int) -> tuple[bytes, ...]:
    list_end = min(end, at + 2 + _u16(data, at))
    at += 2
    names = []
    while at < list_end:
        size = data[at]
        name = data[at + 1 : at + 1 + size]
        if not size or len(name) != size:
            raise ValueError("malformed ALPN protocol name")
        names.append(name)
        at += 1 + size
    return tuple(names)


def watch_client_hellos(context: ssl.SSLContext, accepted: tuple[str, ...]) -> None:
    """Have ``context`` note, on each connection's SSLObject, an ALPN offer with none of
    ``accepted`` in it. Read in the ClientHello, before the SNI callback moves the
    handshake to a certificate's context: that one has no such callback, so the rest of
    the connection's records cost nothing. (``_msg_callback`` is the ssl module's own
    debugging hook, the one place it shows what a client sent; without it, no warning.)"""
    if not hasattr(context, "_msg_callback"):
        return
    accepted_names = frozenset(name.encode() for name in accepted)

    def read_client_hello(conn, direction, version, content_type, message_type, data) -> None:
        if content_type != _HANDSHAKE or message_type != _CLIENT_HELLO or direction != "read":
            return
        try:
            offered = offered_alpn(data)
            if offered and accepted_names.isdisjoint(offered):
                setattr(conn, _ATTRIBUTE, offered)
        except Exception:  # a log line never costs a handshake
            log.debug("could not read a ClientHello's ALPN offer", exc_info=True)

    context._msg_callback = read_client_hello


def warn_if_alpn_refused(ssl_object, transport, listener) -> None:
    """After a handshake that chose no protocol: log a client whose ALPN offer the
    listener (its config) refused, once a minute per listener at most."""
    offered = getattr(ssl_object, _ATTRIBUTE, None)
    if offered is None or listener.tls is None:
        return
    now = time.monotonic()
    last = _last_warning.get(listener.name)
    if last is not None and now - last < WARNING_INTERVAL:
        return
    _last_warning[listener.name] = now
    peer = transport.get_extra_info("peername")
    client = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) and len(peer) >= 2 else "?"
    log.warning(
        "listener %s: TLS client %s offered only ALPN protocols this listener refuses "
        "(offered %s, listeners[].tls.alpn is %s): it got none and will likely fail "
        "(gRPC and HTTP/2 clients need h2). Further such clients of this listener are not "
        "logged for %d s.",
        listener.name,
        client,
        shown_protocols(offered),
        "[" + ", ".join(listener.tls.alpn) + "]",
        WARNING_INTERVAL,
    )


def shown_protocols(offered: tuple[bytes, ...]) -> str:
    """The offered names for a log line: printable, capped in count and length."""
    # ascii() escapes control and non-ASCII bytes: a client cannot write into the log.
    shown = [
        ascii(name[:_SHOWN_NAME].decode("latin-1"))[1:-1] for name in offered[:_SHOWN_PROTOCOLS]
    ]
    if len(offered) > _SHOWN_PROTOCOLS:
        shown.append(f"... {len(offered) - _SHOWN_PROTOCOLS} more")
    return "[" + ", ".join(shown) + "]"
