"""How a node serves the replicated ACME state: files with the certificate, listeners that
take it, challenge answers as routes ahead of the others, and what survives a restart."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from dispa.cluster.acme_install import CHALLENGE_PREFIX, ManagedCertificates, challenge_routes
from dispa.config.acme import Acme
from dispa.config.schema import Gateway, Tls
from dispa.proxy.router import CompiledRoute, Router
from dispa.proxy.tls import build_certificates
from tests.tls_certs import TestCA

ACME = Acme(directory="https://ca.example/dir", domains=["a.example.com"])


def gateway(cert_files: list[dict] | None = None) -> Gateway:
    return Gateway.model_validate(
        {
            "listeners": [
                {"name": "http", "address": "127.0.0.1:0"},
                {
                    "name": "https",
                    "address": "127.0.0.1:0",
                    "tls": {"acme": True, "certificates": cert_files or []},
                },
            ],
            "routes": [{"name": "site", "match": {"host": "a.example.com"}, "direct_response": {}}],
        }
    )


def served(tmp_path, seq=1, challenges=None, with_certificate=True) -> dict:
    issued = TestCA().issue("a.example.com", dns_names=("a.example.com",))
    return {
        "seq": seq,
        "challenges": challenges or {},
        "certificate": {
            "domains": ["a.example.com"],
            "chain": issued.cert_pem.decode(),
            "key": issued.key_pem.decode(),
            "not_after": 2e9,
            "serial": "ab",
        }
        if with_certificate
        else None,
    }


def test_the_certificate_is_written_privately_and_added_to_acme_listeners(tmp_path):
    managed = ManagedCertificates(str(tmp_path))
    state = served(tmp_path)
    assert managed.take(state) and not managed.take(state)
    config = managed.overlay(gateway(), ACME)
    http, https = config.listeners
    assert http.tls is None
    (files,) = https.tls.certificates
    assert Path(files.cert).read_text() == state["certificate"]["chain"]
    assert stat.S_IMODE(os.stat(files.key).st_mode) == 0o600
    certificates = build_certificates(https.tls, "listeners[1].tls")
    assert "a.example.com" in certificates.exact


def test_challenge_answers_win_over_the_routes_of_their_name(tmp_path):
    managed = ManagedCertificates(str(tmp_path))
    answers = {"tok": {"domain": "a.example.com", "answer": "tok.thumb"}}
    managed.take(served(tmp_path, challenges=answers, with_certificate=False))
    config = managed.overlay(gateway(), ACME)
    router = Router([CompiledRoute(r.match, i, r) for i, r in enumerate(config.routes)])
    hit = router.match("a.example.com", CHALLENGE_PREFIX + "tok", "GET", []).target
    assert hit.direct_response.body == "tok.thumb"
    unknown = router.match("a.example.com", CHALLENGE_PREFIX + "other", "GET", []).target
    assert unknown.direct_response.status == 404
    assert router.match("a.example.com", "/", "GET", []).target.name == "site"
    # No certificate yet: the listener keeps none of its own, and gets the placeholder.
    assert config.listeners[1].tls.certificates == ()


def test_no_acme_section_adds_no_routes():
    assert challenge_routes((), {}) == []
    managed = ManagedCertificates("/nonexistent")
    assert managed.overlay(gateway(), None).routes == gateway().routes


def test_what_is_served_survives_a_restart(tmp_path):
    first = ManagedCertificates(str(tmp_path))
    first.take(served(tmp_path, seq=7))
    first.save()
    again = ManagedCertificates(str(tmp_path))
    again.load()
    assert again.served == first.served
    assert again.status()["certificate"]["serial"] == "ab"


def test_a_damaged_saved_state_is_ignored(tmp_path, caplog):
    os.makedirs(tmp_path / "acme")
    (tmp_path / "acme" / "served.json").write_text("{not json")
    managed = ManagedCertificates(str(tmp_path))
    managed.load()
    assert managed.served["seq"] == -1
    assert "cannot read the saved ACME certificate state" in caplog.text
    ManagedCertificates(str(tmp_path / "none")).load()  # nothing saved: nothing to do


def test_an_acme_listener_without_a_certificate_serves_a_placeholder():
    certificates = build_certificates(Tls(acme=True), "listeners[0].tls")
    assert certificates.exact == {}
    assert certificates.context_for("a.example.com") is certificates.default
