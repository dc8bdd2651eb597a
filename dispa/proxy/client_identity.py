"""Who a TLS client is, from the certificate it presented and the listener verified (mTLS).

Read once per connection; every request on it carries the same ``ClientIdentity`` as
``ctx.client_identity``, and a listener with ``client_auth.forward_header`` sends it
upstream in that header, in this format::

    Subject="CN=client,O=Example";DNS="client.example.com";URI="spiffe://example.com/a"

``Subject`` (RFC 4514 text) comes first, then one ``KIND="value"`` per subjectAltName
entry in certificate order, KIND being DNS, URI, Email or IP. Values are always quoted; a
``"`` or ``\\`` inside is escaped with a backslash, and control characters as ``\\xNN``.
"""

from __future__ import annotations

import logging
from typing import NamedTuple

from dispa.proxy.events import Headers

log = logging.getLogger("dispa.tls")


def _san_kinds() -> tuple:
    # cryptography is imported only once a TLS client shows a certificate: a plain
    # listener never loads it (it costs several MiB of memory).
    from cryptography import x509

    return (
        (x509.DNSName, "DNS"),
        (x509.UniformResourceIdentifier, "URI"),
        (x509.RFC822Name, "Email"),
        (x509.IPAddress, "IP"),
    )


class ClientIdentity(NamedTuple):
    subject: str  # RFC 4514, as "CN=client,O=Example"
    sans: tuple[str, ...]  # "DNS:client.example.com", "URI:spiffe://...", "Email:", "IP:"
    header_value: bytes  # the forwarded form, built once per connection


def peer_identity(ssl_object) -> ClientIdentity | None:
    """The identity of a verified client certificate; None when the client sent none."""
    # The dict form is empty unless the certificate was verified; an unverifiable one
    # already failed the handshake, so this is the presence test.
    if ssl_object is None or not ssl_object.getpeercert():
        return None
    from cryptography import x509

    try:
        certificate = x509.load_der_x509_certificate(ssl_object.getpeercert(binary_form=True))
        alt_names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        alt_names = None
    except ValueError as error:
        # OpenSSL verified it, but cryptography parses more strictly: no identity then,
        # rather than a failed connection.
        log.warning("a verified client certificate could not be read: %s", error)
        return None
    sans: list[str] = []
    if alt_names is not None:
        for name in alt_names.value:
            for kind, label in _san_kinds():
                if isinstance(name, kind):
                    sans.append(f"{label}:{name.value}")
    subject = certificate.subject.rfc4514_string()
    return ClientIdentity(subject, tuple(sans), _header_value(subject, sans))


def _quote(text: str) -> str:
    out = []
    for char in text:
        if char in '"\\':
            out.append("\\" + char)
        elif char < " " or char == "\x7f":
            out.append(f"\\x{ord(char):02x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def _header_value(subject: str, sans: list[str]) -> bytes:
    fields = [f"Subject={_quote(subject)}"]
    for san in sans:
        label, _, value = san.partition(":")
        fields.append(f"{label}={_quote(value)}")
    return ";".join(fields).encode("utf-8")


def with_identity_header(headers: Headers, name: bytes, identity: ClientIdentity | None) -> Headers:
    """``headers`` without any header called ``name`` (lower case), plus the identity in
    it when there is one: a client can never pass its own value through."""
    kept = [(key, value) for key, value in headers if key.lower() != name]
    if identity is not None:
        kept.append((name, identity.header_value))
    return kept
