from __future__ import annotations

import pytest
from pydantic import ValidationError

from dispa.config.authority import parse_authority, parse_origin
from dispa.config.schema import Admin


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("example.com", ("example.com", None)),
        ("Example.COM:9901", ("example.com", 9901)),
        ("127.0.0.1:80", ("127.0.0.1", 80)),
        ("[::1]:9901", ("[::1]", 9901)),
        ("[::1]", ("[::1]", None)),
        ("core_1:9911", ("core_1", 9911)),
    ],
)
def test_authorities_are_parsed_lowercased(text, parsed):
    assert parse_authority(text) == parsed


@pytest.mark.parametrize(
    "text",
    [
        "",
        ":80",
        "a b",
        "evil.com@127.0.0.1",
        "host:99999",
        "host:8o",
        "host:",
        "::1",  # IPv6 unbracketed
        "[::1]x",
        "[zz]:1",
        "http://host",
        "host/path",
        "-host",
        "host\r\nx: y",
    ],
)
def test_anything_else_is_not_an_authority(text):
    assert parse_authority(text) is None


def test_origins_fill_in_the_default_port_and_refuse_the_rest():
    assert parse_origin("https://Console.example.com") == ("https", "console.example.com", 443)
    assert parse_origin("http://127.0.0.1:9901") == ("http", "127.0.0.1", 9901)
    for bad in ("null", "file://", "ftp://host", "https://host/path", "host:1", "*"):
        assert parse_origin(bad) is None, bad


def test_the_admin_section_normalises_and_explains_bad_entries():
    admin = Admin(
        allowed_hosts=["Admin.Example.com", "x:9901", "*"],
        allowed_origins=["https://Console.example.com/", "http://a:8080"],
    )
    assert admin.allowed_hosts == ("admin.example.com", "x:9901", "*")
    assert admin.allowed_origins == ("https://console.example.com:443", "http://a:8080")
    with pytest.raises(ValidationError, match="is not a host name"):
        Admin(allowed_hosts=["https://admin.example.com"])
    with pytest.raises(ValidationError, match="is not a web origin"):
        Admin(allowed_origins=["null"])
    with pytest.raises(ValidationError, match="is not a web origin"):
        Admin(allowed_origins=["*"])
