"""Which Host and Origin an admin API answers, decided from the headers and the address
a connection arrived on."""

from __future__ import annotations

import pytest

from dispa.admin.access import AdminAccess
from dispa.config.schema import Admin

LOOPBACK = AdminAccess.for_address("127.0.0.1:9901")


@pytest.mark.parametrize(
    "host", ["127.0.0.1:9901", "localhost:9901", "LOCALHOST:9901", "[::1]:9901"]
)
def test_loopback_names_are_answered_on_loopback(host):
    assert LOOPBACK.host_problem(host, "127.0.0.1", 9901) is None


@pytest.mark.parametrize(
    "host",
    [
        "evil.example:9901",  # DNS rebinding: the attacker's own domain
        "evil.example",
        "localhost",  # no port means 80, not the admin's
        "localhost:80",
        "127.0.0.1:9902",
        "localhost.:9901",
        "0.0.0.0:9901",
        "evil.example:9901, localhost:9901",
        "",
    ],
)
def test_other_hosts_are_not(host):
    problem = LOOPBACK.host_problem(host, "127.0.0.1", 9901)
    assert problem is not None and "Host" in problem


def test_a_missing_host_is_refused():
    assert LOOPBACK.host_problem(None, "127.0.0.1", 9901) == "a Host header is required"


def test_a_wildcard_bind_answers_the_address_a_connection_arrived_on():
    wildcard = AdminAccess.for_address("0.0.0.0:9901")
    assert wildcard.host_problem("10.0.0.5:9901", "10.0.0.5", 9901) is None
    assert wildcard.host_problem("10.0.0.5:9901", "::ffff:10.0.0.5", 9901) is None
    assert wildcard.host_problem("10.0.0.6:9901", "10.0.0.5", 9901) is not None
    assert wildcard.host_problem("0.0.0.0:9901", "10.0.0.5", 9901) is not None
    # Loopback names only for a connection that came in on loopback.
    assert wildcard.host_problem("localhost:9901", "10.0.0.5", 9901) is not None
    assert wildcard.host_problem("localhost:9901", "127.0.0.1", 9901) is None
    six = AdminAccess.for_address("[::]:9901")
    assert six.host_problem("[fd00::5]:9901", "fd00::5", 9901) is None


def test_the_configured_name_and_port_zero():
    named = AdminAccess.for_address("core-1:9911")
    assert named.host_problem("core-1:9911", "172.18.0.4", 9911) is None
    assert named.host_problem("core-2:9911", "172.18.0.4", 9911) is not None
    # Asked for port 0: the bound port is the one the connection arrived on.
    any_port = AdminAccess.for_address("127.0.0.1:0")
    assert any_port.host_problem("127.0.0.1:40123", "127.0.0.1", 40123) is None


def test_allowed_hosts_with_and_without_a_port():
    access = AdminAccess.from_config(
        Admin(address="10.0.0.5:9901", allowed_hosts=["admin.example.com", "lb.example.com:443"])
    )
    assert access.host_problem("admin.example.com", "10.0.0.5", 9901) is None
    assert access.host_problem("admin.example.com:8443", "10.0.0.5", 9901) is None
    assert access.host_problem("lb.example.com:443", "10.0.0.5", 9901) is None
    assert access.host_problem("lb.example.com", "10.0.0.5", 9901) is not None  # port 80
    assert access.host_problem("other.example.com", "10.0.0.5", 9901) is not None
    anything = AdminAccess.from_config(Admin(allowed_hosts=["*"]))
    assert anything.host_problem("whatever.example", "127.0.0.1", 9901) is None
    assert anything.host_problem("not a host", "127.0.0.1", 9901) is not None


def test_only_the_admins_own_origin_and_listed_ones_pass():
    access = AdminAccess.from_config(
        Admin(address="127.0.0.1:9901", allowed_origins=["https://console.example.com"])
    )
    own = "127.0.0.1:9901"
    assert access.origin_problem("http://127.0.0.1:9901", own) is None
    assert access.origin_problem("https://console.example.com", own) is None
    assert access.origin_problem("https://console.example.com:443", own) is None
    for origin in (
        "http://evil.example",
        "null",
        "http://127.0.0.1:9902",
        "http://localhost:9901",  # another origin than the Host the request was sent to
        "https://console.example.com:8443",
        "",
    ):
        problem = access.origin_problem(origin, own)
        assert problem is not None and "Origin" in problem, origin
    # Behind a TLS proxy: Host without a port, the origin's scheme gives it.
    assert access.origin_problem("https://admin.example.com", "admin.example.com") is None
    assert access.is_listed_origin("https://console.example.com")
    assert not access.is_listed_origin("http://127.0.0.1:9901")
