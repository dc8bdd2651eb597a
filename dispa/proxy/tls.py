"""TLS termination on a listener: certificates chosen by SNI, swapped on reload.

A listening server keeps the SSLContext it was created with for its whole life, so that
context holds no certificate: its SNI callback (called on every handshake, with or without
a server name) moves the connection to the context of the certificate that matches. A
reload that finds new certificate files builds a new ``CertificateSet`` and assigns it to
``ListenerTls.certificates``: new handshakes pick from it, while the listening socket and
the connections already open stay as they are.
"""

from __future__ import annotations

import hashlib
import os
import ssl
import tempfile

from dispa.config.schema import Tls
from dispa.config.validate import read_certificates, tls_file_problems
from dispa.proxy.tls_alpn import watch_client_hellos

_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}
_VERIFY_MODES = {
    "off": ssl.CERT_NONE,
    "optional": ssl.CERT_OPTIONAL,
    "required": ssl.CERT_REQUIRED,
}


class TlsSetupError(Exception):
    """Certificate files could not be loaded; ``problems`` name each field path."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


def certificate_names(certificate) -> list[str]:
    """The DNS names a certificate is for: its subjectAltName, else its common name
    (RFC 6125 ignores the CN when there is a SAN)."""
    # Imported here: a gateway without TLS listeners never loads cryptography (memory).
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    try:
        alt_names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        names = alt_names.value.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        names = []
    if not names:
        names = [
            value
            for attribute in certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
            if isinstance(value := attribute.value, str)
        ]
    return [name.lower().rstrip(".") for name in names]


class CertificateSet:
    """The contexts of a listener's certificates, indexed by name; built once, never
    changed. Exact names win over wildcards, an earlier certificate over a later one, and
    a name no certificate covers (or no name at all) gets the first certificate."""

    __slots__ = ("default", "exact", "fingerprint", "wildcard")

    def __init__(self, contexts: list[tuple[list[str], ssl.SSLContext]], fingerprint: bytes):
        self.fingerprint = fingerprint
        self.default = contexts[0][1]
        self.exact: dict[str, ssl.SSLContext] = {}
        self.wildcard: dict[str, ssl.SSLContext] = {}  # "example.com" for *.example.com
        for names, context in contexts:
            for name in names:
                if name.startswith("*."):
                    self.wildcard.setdefault(name[2:], context)
                elif "*" not in name:
                    self.exact.setdefault(name, context)

    def context_for(self, server_name: str | None) -> ssl.SSLContext:
        if not server_name:
            return self.default
        name = server_name.lower().rstrip(".")
        context = self.exact.get(name)
        if context is not None:
            return context
        # A wildcard covers exactly one label: *.example.com matches a.example.com only.
        parent = name.partition(".")[2]
        return self.wildcard.get(parent, self.default) if parent else self.default


def files_fingerprint(tls: Tls, where: str) -> bytes:
    """A digest of every file the section names, to tell a renewal from no change."""
    digest = hashlib.sha256()
    fields = [
        (f"{where}.certificates[{index}].{kind}", getattr(files, kind))
        for index, files in enumerate(tls.certificates)
        for kind in ("cert", "key")
    ]
    if tls.client_auth.ca is not None:
        fields.append((f"{where}.client_auth.ca", tls.client_auth.ca))
    for field, path in fields:
        try:
            with open(path, "rb") as file:
                content = file.read()
        except OSError as error:
            raise TlsSetupError([f"{field}: cannot read {path}: {error.strerror}"]) from None
        name = os.fsencode(path)
        digest.update(b"%d:%b%d:%b" % (len(name), name, len(content), content))
    return digest.digest()


def _settings(context: ssl.SSLContext, tls: Tls) -> ssl.SSLContext:
    context.minimum_version = _VERSIONS[tls.min_version]
    context.options |= ssl.OP_NO_RENEGOTIATION
    context.set_alpn_protocols(list(tls.alpn))
    context.verify_mode = _VERIFY_MODES[tls.client_auth.mode]
    return context


_placeholder_pem: bytes | None = None


def placeholder_pem() -> bytes:
    """A self-signed certificate and its key, made once per process: what an ``acme: true``
    listener serves until the cluster has obtained a certificate (as Traefik and Caddy do),
    so the listener can start, and clients see a clear certificate error, not a refusal."""
    global _placeholder_pem
    if _placeholder_pem is None:
        import datetime

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dispa acme placeholder")])
        now = datetime.datetime.now(datetime.UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=3650))
            .sign(key, hashes.SHA256())
        )
        _placeholder_pem = certificate.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    return _placeholder_pem


def _placeholder_certificates(tls: Tls, fingerprint: bytes) -> CertificateSet:
    context = _settings(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER), tls)
    # OpenSSL loads certificates from files only: a private temporary one, removed at once.
    with tempfile.NamedTemporaryFile("wb", suffix=".pem") as file:
        file.write(placeholder_pem())
        file.flush()
        context.load_cert_chain(file.name)
    if tls.client_auth.ca is not None:
        context.load_verify_locations(cafile=tls.client_auth.ca)
    return CertificateSet([([], context)], fingerprint)


def build_certificates(tls: Tls, where: str) -> CertificateSet:
    """Load every certificate of the section; TlsSetupError names what failed."""
    fingerprint = files_fingerprint(tls, where)
    problems = tls_file_problems(tls, where)
    if problems:
        raise TlsSetupError(problems)
    if not tls.certificates:  # acme: true, and no certificate obtained yet
        return _placeholder_certificates(tls, fingerprint)
    contexts = []
    for index, files in enumerate(tls.certificates):
        context = _settings(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER), tls)
        try:
            context.load_cert_chain(files.cert, files.key)
            if tls.client_auth.ca is not None:
                context.load_verify_locations(cafile=tls.client_auth.ca)
            names = certificate_names(read_certificates(files.cert)[0])
        except (OSError, ValueError) as error:  # ssl.SSLError is an OSError
            # The files passed the checks above but changed since, or OpenSSL refuses them.
            raise TlsSetupError([f"{where}.certificates[{index}]: {error}"]) from None
        contexts.append((names, context))
    return CertificateSet(contexts, fingerprint)


class ListenerTls:
    """The TLS side of one listening server: ``context`` goes to ``create_server``;
    ``certificates`` is what its SNI callback picks from, swapped on reload."""

    def __init__(self, tls: Tls, certificates: CertificateSet) -> None:
        self.config = tls
        self.certificates = certificates
        # OpenSSL takes the protocol versions and verify mode from the context a handshake
        # starts with, and the certificate, CA store and ALPN from the one the callback
        # switches to: so this context gets every setting but the files.
        self.context = _settings(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER), tls)
        self.context.sni_callback = self._pick_certificate
        # What each client offers by ALPN, read before the SNI callback switches contexts:
        # an offer with nothing this listener accepts is logged (tls_alpn.py).
        watch_client_hellos(self.context, tls.alpn)

    def _pick_certificate(self, ssl_object, server_name, _initial_context) -> None:
        ssl_object.context = self.certificates.context_for(server_name)

    def renewed_certificates(self, where: str) -> CertificateSet | None:
        """New certificates when the files changed since they were loaded, else None."""
        if files_fingerprint(self.config, where) == self.certificates.fingerprint:
            return None
        return build_certificates(self.config, where)
