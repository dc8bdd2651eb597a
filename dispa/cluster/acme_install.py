"""Serving the replicated ACME state on a core or an edge, with no change to the data plane.

The certificate and its key are written to the node's data directory and added to the
listeners that say ``tls: {acme: true}``; a renewal rewrites the same files, which the
gateway notices and loads for new handshakes (``tls.py``), keeping its sockets. Challenge
answers become direct-response routes for exactly the managed names and tokens, ahead of
every other route of those names.
"""

from __future__ import annotations

import json
import logging
import os

from dispa.config.acme import Acme
from dispa.config.bounds import bound_problems, load_json
from dispa.config.schema import CertificateFiles, Gateway, Route
from dispa.private_files import make_private_dir, write_private_file

log = logging.getLogger("dispa.acme")

CHALLENGE_PREFIX = "/.well-known/acme-challenge/"


def _write_private(path: str, text: str) -> bool:
    """Write ``text`` atomically, readable by this user only; False when unchanged."""
    try:
        with open(path) as handle:
            if handle.read() == text:
                return False
    except OSError:
        pass
    write_private_file(path, text.encode())
    return True


def challenge_routes(domains: tuple[str, ...], challenges: dict) -> list[Route]:
    routes = []
    for index, (token, challenge) in enumerate(sorted(challenges.items())):
        routes.append(
            Route.model_validate(
                {
                    "name": f"acme-challenge-{index}",
                    "match": {"host": challenge["domain"], "path_exact": CHALLENGE_PREFIX + token},
                    "direct_response": {
                        "status": 200,
                        "body": challenge["answer"],
                        "headers": {"content-type": "application/octet-stream"},
                    },
                }
            )
        )
    # Any other token of a managed name: not ours to forward upstream.
    for index, domain in enumerate(domains):
        routes.append(
            Route.model_validate(
                {
                    "name": f"acme-unknown-token-{index}",
                    "match": {"host": domain, "path_prefix": CHALLENGE_PREFIX},
                    "direct_response": {"status": 404, "body": "no such ACME challenge\n"},
                }
            )
        )
    return routes


def _saved_state_problem(served: object) -> str | None:
    """Why a saved state read back cannot be taken (None: it can): ``take`` and the
    routes built from it read these fields without asking."""
    problems = bound_problems(served)
    if problems:
        return problems[0]
    if not isinstance(served, dict) or not isinstance(served.get("challenges", {}), dict):
        return "not an ACME state"
    certificate = served.get("certificate")
    if certificate is not None and not (
        isinstance(certificate, dict)
        and isinstance(certificate.get("key"), str)
        and isinstance(certificate.get("chain"), str)
    ):
        return "not an ACME state: a certificate without its key and chain"
    return None


class ManagedCertificates:
    """The ACME state one node serves: what it was handed last and the files written."""

    def __init__(self, data_dir: str) -> None:
        self.directory = os.path.join(data_dir, "acme")
        self.served: dict = {"seq": -1, "challenges": {}, "certificate": None}
        self.applied_seq = -1  # the seq the gateway serves (set once an apply succeeded)

    def take(self, served: dict) -> bool:
        """Hold a new served state (``AcmeState.served()``); True when it differs."""
        if served == self.served:
            return False
        certificate = served.get("certificate")
        if certificate is not None:
            make_private_dir(self.directory)
            _write_private(self._path("key"), certificate["key"])
            _write_private(self._path("cert"), certificate["chain"])
        self.served = served
        return True

    def save(self) -> None:
        """Keep what is served across a restart (an edge may restart with no core up)."""
        make_private_dir(self.directory)
        _write_private(os.path.join(self.directory, "served.json"), json.dumps(self.served))

    def load(self) -> None:
        path = os.path.join(self.directory, "served.json")
        try:
            with open(path) as handle:
                served = load_json(handle.read())  # nested too deep: a ValueError
        except FileNotFoundError:
            return
        except (OSError, ValueError) as error:
            log.error("cannot read the saved ACME certificate state %s: %s", path, error)
            return
        problem = _saved_state_problem(served)
        if problem is not None:
            log.error(
                "the saved ACME certificate state %s is damaged (%s): ignoring it", path, problem
            )
            return
        self.take(served)

    def _path(self, kind: str) -> str:
        return os.path.join(self.directory, "certificate.pem" if kind == "cert" else "key.pem")

    def overlay(self, config: Gateway, acme: Acme | None) -> Gateway:
        """``config`` with the managed certificate on ``acme: true`` listeners and the
        challenge answers as routes."""
        listeners = config.listeners
        if self.served.get("certificate") is not None:
            managed = CertificateFiles(cert=self._path("cert"), key=self._path("key"))
            listeners = tuple(
                listener.model_copy(
                    update={
                        "tls": listener.tls.model_copy(
                            update={"certificates": (*listener.tls.certificates, managed)}
                        )
                    }
                )
                if listener.tls is not None and listener.tls.acme
                else listener
                for listener in listeners
            )
        routes = config.routes
        if acme is not None:
            routes = (*challenge_routes(acme.domains, self.served.get("challenges", {})), *routes)
        return config.model_copy(update={"listeners": listeners, "routes": routes})

    def status(self) -> dict:
        certificate = self.served.get("certificate")
        return {
            "applied_seq": self.applied_seq,
            "challenges": len(self.served.get("challenges", {})),
            "certificate": {
                "domains": certificate["domains"],
                "serial": certificate["serial"],
                "not_after": certificate["not_after"],
            }
            if certificate
            else None,
        }
