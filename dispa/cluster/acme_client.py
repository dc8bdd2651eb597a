"""Talking to an ACME server (RFC 8555) with the ``acme`` library: blocking calls, run by
the manager in a thread. Every answer is plain data; every failure is ``AcmeFailure``
with a message an operator can act on.

Keys are made here too (``new_account_key``, ``new_certificate_key``), by the leader, and
handed to the replicated state as arguments, so every node stores the same bytes.
"""

from __future__ import annotations

import datetime

import josepy as jose
import requests
from acme import challenges, client, crypto_util, errors, messages
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

USER_AGENT = "dispa-acme"
TIMEOUT = 10  # seconds per HTTP request to the ACME server


class AcmeFailure(Exception):
    """The ACME server refused, or could not be reached; the message says which."""


def _pem(private_key) -> str:
    return private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def new_account_key() -> str:
    return _pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))


def new_certificate_key() -> str:
    return _pem(ec.generate_private_key(ec.SECP256R1()))


def certificate_request(key_pem: str, domains: list[str]) -> str:
    return crypto_util.make_csr(key_pem.encode(), list(domains)).decode()


def describe_certificate(chain_pem: str) -> dict:
    """Validity and serial of the first certificate of a chain (what the state records)."""
    leaf = x509.load_pem_x509_certificates(chain_pem.encode())[0]
    return {
        "not_before": leaf.not_valid_before_utc.timestamp(),
        "not_after": leaf.not_valid_after_utc.timestamp(),
        "serial": f"{leaf.serial_number:x}",
    }


def _problem(error: BaseException) -> str:
    if isinstance(error, messages.Error):
        return f"{error.typ or 'error'}: {error.detail or error.title or ''}".strip()
    if isinstance(error, requests.exceptions.SSLError):
        return f"TLS to the ACME server failed (set acme.ca_bundle?): {error}"
    if isinstance(error, requests.RequestException):
        return f"cannot reach the ACME server: {error}"
    return str(error) or type(error).__name__


class AcmeServer:
    """One ACME account at one directory."""

    def __init__(
        self, directory: str, account_key: str, account_url: str | None, ca_bundle: str | None
    ):
        key = serialization.load_pem_private_key(account_key.encode(), password=None)
        self.key = jose.JWKRSA(key=key)
        account = (
            messages.RegistrationResource(body=messages.Registration(), uri=account_url)
            if account_url
            else None
        )
        self.net = client.ClientNetwork(
            self.key,
            account=account,
            user_agent=USER_AGENT,
            verify_ssl=ca_bundle or True,
            timeout=TIMEOUT,
        )
        try:
            self.client = client.ClientV2(
                client.ClientV2.get_directory(directory, self.net), self.net
            )
        except (errors.Error, messages.Error, requests.RequestException, ValueError) as error:
            raise AcmeFailure(f"directory {directory}: {_problem(error)}") from None

    def _call(self, what: str, action):
        try:
            return action()
        except (errors.Error, messages.Error, requests.RequestException, ValueError) as error:
            raise AcmeFailure(f"{what}: {_problem(error)}") from None

    def _get(self, url: str) -> dict:
        """POST-as-GET (RFC 8555 6.3) of an object, as plain JSON."""
        return self._call(
            f"reading {url}",
            lambda: self.net.post(
                url, None, new_nonce_url=self.client.directory["newNonce"]
            ).json(),
        )

    # ---------------------------------------------------------------- account

    def register(self, email: str | None) -> str:
        """The account URL; registering the same key again finds the same account."""
        registration = messages.NewRegistration.from_data(email=email, terms_of_service_agreed=True)

        def register() -> str:
            try:
                return self.client.new_account(registration).uri
            except errors.ConflictError as existing:  # this key already has an account
                self.net.account = messages.RegistrationResource(
                    body=messages.Registration(), uri=existing.location
                )
                return existing.location

        return self._call("registering the account", register)

    # ---------------------------------------------------------------- orders

    def new_order(self, csr_pem: str) -> str:
        return self._call("creating the order", lambda: self.client.new_order(csr_pem.encode()).uri)

    def find_order(self, domains: list[str], skip: set[str]) -> str | None:
        """A live order of this account for exactly ``domains``, not one of ``skip``: the
        order a leader made but died before recording."""
        account = self._get(self.net.account.uri)
        url = account.get("orders")
        wanted = sorted(domains)
        for _page in range(20):  # bounded: a page holds a few orders
            if not url:
                return None
            response = self._call(
                "listing orders",
                lambda url=url: self.net.post(
                    url, None, new_nonce_url=self.client.directory["newNonce"]
                ),
            )
            for order_url in response.json().get("orders", []):
                if order_url in skip:
                    continue
                order = self._get(order_url)
                names = sorted(i.get("value") for i in order.get("identifiers", []))
                if names == wanted and order.get("status") != "invalid":
                    return order_url
            url = next(iter(self.client._get_links(response, "next")), None)
        return None

    def order(self, url: str) -> dict:
        """The order with its authorizations: {"status", "finalize", "certificate", "error",
        "authorizations": [{"status", "domain", "challenge": {"url", "status", "token",
        "error"}}]} (challenge: the HTTP-01 one, or None)."""
        body = self._get(url)
        authorizations = []
        for authorization_url in body.get("authorizations", []):
            authorization = self._get(authorization_url)
            http01 = next(
                (c for c in authorization.get("challenges", []) if c.get("type") == "http-01"),
                None,
            )
            authorizations.append(
                {
                    "status": authorization.get("status"),
                    "domain": authorization.get("identifier", {}).get("value"),
                    "challenge": http01,
                }
            )
        return {
            "status": body.get("status"),
            "finalize": body.get("finalize"),
            "certificate": body.get("certificate"),
            "error": body.get("error"),
            "authorizations": authorizations,
        }

    def key_authorization(self, token: str) -> str:
        return challenges.HTTP01(token=jose.b64.b64decode(token)).key_authorization(self.key)

    def answer(self, challenge: dict) -> None:
        """Tell the server the answer is published: it validates from now on."""
        body = messages.ChallengeBody.from_json(challenge)
        self._call(
            f"answering the challenge for {challenge.get('url')}",
            lambda: self.client.answer_challenge(body, challenges.HTTP01Response()),
        )

    def finalize(self, order_url: str, finalize_url: str, csr_pem: str) -> None:
        order = messages.OrderResource(
            body=messages.Order(finalize=finalize_url),
            uri=order_url,
            csr_pem=csr_pem.encode(),
        )
        self._call("finalizing the order", lambda: self.client.begin_finalization(order))

    def download(self, certificate_url: str) -> str:
        response = self._call(
            "downloading the certificate",
            lambda: self.net.post(
                certificate_url,
                None,
                new_nonce_url=self.client.directory["newNonce"],
            ),
        )
        return response.text


def utc(timestamp: float) -> str:
    return datetime.datetime.fromtimestamp(timestamp, datetime.UTC).isoformat(timespec="seconds")
