"""The acme: section and tls.acme, with errors that name the field and the fix."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from dispa.config.acme import Acme
from dispa.config.cluster import SharedConfig
from dispa.config.schema import Tls

BASE = {"directory": "https://ca.example/dir", "domains": ["www.example.com"]}


def problem(**fields) -> str:
    with pytest.raises(ValidationError) as caught:
        Acme.model_validate({**BASE, **fields})
    return str(caught.value)


def test_defaults_and_normalised_names():
    acme = Acme.model_validate({**BASE, "domains": ["WWW.Example.com."], "renew_before": "10d"})
    assert acme.domains == ("www.example.com",)
    assert acme.renew_before == 10 * 86400
    assert Acme.model_validate(BASE).renew_before == 30 * 86400


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"directory": "ftp://x"}, "is not a directory URL"),
        ({"email": "nobody"}, "is not an email address"),
        ({"domains": ["*.example.com"]}, "needs a DNS-01 challenge"),
        ({"domains": ["localhost"]}, "is not a DNS name"),
        ({"domains": ["a.example.com", "A.example.com"]}, "listed once"),
        ({"domains": []}, "at least 1"),
        ({"renew_before": "0s"}, "longer than 0"),
    ],
)
def test_bad_values_are_named(fields, message):
    assert message in problem(**fields)


def test_shared_config_carries_it():
    shared = SharedConfig.model_validate(
        {"routes": [{"direct_response": {}}], "acme": {**BASE, "email": "ops@example.com"}}
    )
    assert shared.acme.email == "ops@example.com"
    assert SharedConfig.model_validate({"routes": [{"direct_response": {}}]}).acme is None


def test_a_tls_listener_needs_certificates_or_acme():
    with pytest.raises(ValidationError, match="at least one certificate, or set acme: true"):
        Tls.model_validate({})
    assert Tls.model_validate({"acme": True}).certificates == ()
