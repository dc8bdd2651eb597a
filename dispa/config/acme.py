"""The ``acme:`` section of a cluster's shared config: certificates ordered from an ACME
server (Let's Encrypt, or any RFC 8555 server) and replicated to every core and edge.

One certificate covers every name in ``domains``. Names are proven with HTTP-01
challenges, which every node answers on its plaintext listeners, so the ACME server may
reach any of them.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from dispa.config.file_paths import FilePath
from dispa.config.units import Duration

# A DNS name of letters, digits and hyphens, at least two labels (RFC 1123).
_LABEL = r"(?!-)[a-z0-9-]{1,63}(?<!-)"
_DNS_NAME = re.compile(rf"^{_LABEL}(\.{_LABEL})+$")


class Strict(BaseModel):
    # As in schema.py, which imports this file (so this one cannot import it).
    model_config = ConfigDict(extra="forbid", frozen=True)


class Acme(Strict):
    directory: str  # the ACME server's directory URL
    email: str | None = None  # the account's contact, for expiry notices from the CA
    domains: tuple[str, ...] = Field(min_length=1, max_length=100)
    renew_before: Duration = 30 * 86400.0  # renew when the certificate expires within this
    ca_bundle: FilePath | None = Field(None, min_length=1)  # PEM roots for the directory's TLS

    @field_validator("directory")
    @classmethod
    def _directory(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("https", "http") or not parts.netloc:
            raise ValueError(
                f"'{value}' is not a directory URL; write it like "
                "https://acme-v02.api.letsencrypt.org/directory"
            )
        return value

    @field_validator("email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", value):
            raise ValueError(f"'{value}' is not an email address")
        return value

    @field_validator("domains")
    @classmethod
    def _domains(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        names = tuple(value.strip().lower().rstrip(".") for value in values)
        for name in names:
            if name.startswith("*."):
                raise ValueError(
                    f"'{name}': a wildcard name needs a DNS-01 challenge; Dispa answers "
                    "HTTP-01 only, so list each name"
                )
            if not _DNS_NAME.match(name):
                raise ValueError(f"'{name}' is not a DNS name like www.example.com")
        if len(set(names)) != len(names):
            raise ValueError("each domain may be listed once")
        return names

    @field_validator("renew_before")
    @classmethod
    def _renew_before(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("renew_before must be longer than 0")
        return value
