"""Where the Kubernetes API is and how to authenticate to it: in-cluster, or a kubeconfig.

In a pod, the service account's token and CA are files the kubelet mounts (the token is
re-read at every connection, because bound tokens rotate). Outside, a kubeconfig's current
context gives the server, its CA (file or inline data, or ``insecure-skip-tls-verify``) and a
bearer token (``token`` or ``tokenFile``). Client-certificate and exec-plugin users are not
supported: give the gateway a service-account token instead.
"""

from __future__ import annotations

import base64
import binascii
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

from dispa.discovery.documents import BadDocument, parse_yaml, read_file_text

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")


@dataclass(frozen=True)
class KubernetesAccess:
    server: str  # https://host:port, or http:// for a test server
    token: str | None = None
    token_file: Path | None = None
    ca_file: Path | None = None
    ca_data: bytes | None = None
    insecure: bool = False
    namespace: str = "default"

    def bearer(self) -> str | None:
        if self.token_file is not None:
            return self.token_file.read_text().strip()
        return self.token

    def ssl_context(self) -> ssl.SSLContext | bool:
        if not self.server.startswith("https://"):
            return False
        if self.insecure:
            return False  # aiohttp: no certificate check, as the kubeconfig asked
        context = ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)
        if self.ca_data:
            context.load_verify_locations(cadata=self.ca_data.decode())
        return context


def in_cluster(root: Path = SERVICE_ACCOUNT, environ=os.environ) -> KubernetesAccess:
    host, port = environ.get("KUBERNETES_SERVICE_HOST"), environ.get("KUBERNETES_SERVICE_PORT")
    if not host or not port or not (root / "token").exists():
        raise FileNotFoundError("not in a Kubernetes pod: no service host or account token")
    host = f"[{host}]" if ":" in host else host
    namespace_file = root / "namespace"
    return KubernetesAccess(
        server=f"https://{host}:{port}",
        token_file=root / "token",
        ca_file=root / "ca.crt",
        namespace=namespace_file.read_text().strip() if namespace_file.exists() else "default",
    )


def from_kubeconfig(path: Path, context_name: str | None = None) -> KubernetesAccess:
    """The access a kubeconfig gives; OSError, or a ValueError naming the file (one that
    does not parse, is past the bounds of documents.py, or lacks what is needed), which
    is how a provider that cannot start is reported (running.py)."""
    config = parse_yaml(read_file_text(path), str(path)) or {}
    try:
        return _access(config, path, context_name)
    except (KeyError, TypeError, AttributeError, binascii.Error) as error:
        # A field missing or of the wrong kind (KeyError('cluster'), 'list' has no 'get'),
        # or certificate-authority-data that is not base64.
        raise BadDocument(
            f"{path}: not a kubeconfig this gateway can use ({type(error).__name__}: {error})"
        ) from None


def _access(config, path: Path, context_name: str | None) -> KubernetesAccess:
    def named(section: str, name: str) -> dict:
        for item in config.get(section) or ():
            if item.get("name") == name:
                return item.get(section[:-1]) or {}
        raise ValueError(f"{path}: no {section[:-1]} named '{name}'")

    context = named("contexts", context_name or config.get("current-context", ""))
    cluster = named("clusters", context["cluster"])
    user = named("users", context["user"]) if context.get("user") else {}
    base = path.parent

    def relative(value: str | None) -> Path | None:
        return (
            None if not value else (base / value if not Path(value).is_absolute() else Path(value))
        )

    ca_data = cluster.get("certificate-authority-data")
    return KubernetesAccess(
        server=cluster["server"].rstrip("/"),
        token=user.get("token"),
        token_file=relative(user.get("tokenFile")),
        ca_file=relative(cluster.get("certificate-authority")),
        ca_data=base64.b64decode(ca_data) if ca_data else None,
        insecure=bool(cluster.get("insecure-skip-tls-verify")),
        namespace=context.get("namespace") or "default",
    )
