"""Host names with an optional port (``host``, ``host:port``, ``[::1]:9901``) and web
origins (``https://host:port``), parsed one way for the config and for the admin API's
Host and Origin checks, so both agree on what a name is."""

from __future__ import annotations

import re

_NAME = re.compile(r"^[a-z0-9_]([a-z0-9_.-]*[a-z0-9_.])?$")
_IPV6 = re.compile(r"^\[[0-9a-f:.]+\]$")
DEFAULT_PORTS = {"http": 80, "https": 443}


def parse_authority(text: str) -> tuple[str, int | None] | None:
    """``(host, port)`` lowercased, port None when absent; None when ``text`` is not a
    plain host name, IPv4 address or bracketed IPv6 address with an optional port."""
    text = text.strip().lower()
    if text.startswith("["):
        host, _, rest = text.partition("]")
        host += "]"
        if rest and not rest.startswith(":"):
            return None
        port_text = rest[1:] if rest else None
        if not _IPV6.match(host):
            return None
    else:
        host, sep, port_text = text.partition(":")
        if not sep:
            port_text = None
        if not _NAME.match(host):
            return None
    if port_text is None:
        return host, None
    if not port_text.isdigit() or len(port_text) > 5 or int(port_text) > 65535:
        return None
    return host, int(port_text)


def parse_origin(text: str) -> tuple[str, str, int] | None:
    """``(scheme, host, port)`` of a serialized origin, the port filled in from the scheme;
    None for anything else (``null``, a path, a scheme other than http and https)."""
    scheme, sep, authority = text.strip().lower().partition("://")
    if not sep or scheme not in DEFAULT_PORTS or not authority or "/" in authority:
        return None
    parsed = parse_authority(authority)
    if parsed is None:
        return None
    host, port = parsed
    return scheme, host, port if port is not None else DEFAULT_PORTS[scheme]


def check_allowed_host(value: str) -> str:
    """A config entry of ``admin.allowed_hosts``: a name, with a port or not, or ``*``."""
    if value.strip() == "*":
        return "*"
    if parse_authority(value) is None:
        raise ValueError(
            f"'{value}' is not a host name; write it like admin.example.com, "
            "admin.example.com:9901 or [::1]:9901 (no scheme, no path)"
        )
    return value.strip().lower()


def check_allowed_origin(value: str) -> str:
    """A config entry of ``admin.allowed_origins``: ``scheme://host[:port]``."""
    parsed = parse_origin(value.rstrip("/"))
    if parsed is None:
        raise ValueError(
            f"'{value}' is not a web origin; write it like https://console.example.com or "
            "http://127.0.0.1:8080 (http or https, no path; * and null are not allowed)"
        )
    scheme, host, port = parsed
    return f"{scheme}://{host}:{port}"
