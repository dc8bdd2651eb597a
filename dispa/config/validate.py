"""Checks that span sections: names that must exist, be unique, or not collide."""

from __future__ import annotations

from collections import Counter

from dispa.config.discovery import discovery_problems
from dispa.config.filters._references import filter_reference_problems
from dispa.config.schema import Gateway, Listener, Tls, Upstream


def cross_check(gateway: Gateway) -> list[str]:
    problems: list[str] = []
    problems += _acme_needs_a_cluster(gateway)
    problems += filter_reference_problems(gateway)
    problems += _unique(_values(gateway.listeners, "name"), "listeners", "name")
    problems += _unique(_listen_addresses(gateway.listeners), "listeners", "address")
    problems += _unique(_values(gateway.upstreams, "name"), "upstreams", "name")
    problems += _unique(_values(gateway.routes, "name"), "routes", "name")
    problems += _unique(_values(gateway.rate_limits, "name"), "rate_limits", "name")
    route_names = {r.name for r in gateway.routes if r.name}
    for index, limit in enumerate(gateway.rate_limits):
        for name in limit.routes:
            if name not in route_names:
                problems.append(f"rate_limits[{index}].routes: unknown route '{name}'")
    known = {u.name for u in gateway.upstreams}
    for index, route in enumerate(gateway.routes):
        if route.upstream is not None and route.upstream not in known:
            hint = f"; known: {', '.join(sorted(known))}" if known else "; no upstreams are defined"
            problems.append(f"routes[{index}].upstream: unknown upstream '{route.upstream}'{hint}")
    for index, upstream in enumerate(gateway.upstreams):
        seen = Counter(e.address for e in upstream.endpoints)
        for address, count in seen.items():
            if count > 1:
                problems.append(
                    f"upstreams[{index}].endpoints: '{address}' is listed {count} times"
                )
        outlier = upstream.outlier
        if outlier.max_ejection < outlier.base_ejection:
            problems.append(
                f"upstreams[{index}].outlier.max_ejection: must not be shorter than base_ejection"
            )
    problems += _regions_check(gateway)
    problems += discovery_problems(gateway.discovery, gateway.upstreams)
    problems += listener_tls_problems(gateway.listeners)
    problems += upstream_tls_problems(gateway.upstreams)
    admin = gateway.admin.address
    for index, listener in enumerate(gateway.listeners):
        if listener.address == admin and not admin.endswith(":0"):
            problems.append(f"listeners[{index}].address: same address as admin.address ({admin})")
    return problems


def _regions_check(gateway: Gateway) -> list[str]:
    problems = _unique(_values(gateway.regions, "name"), "regions", "name")
    regions = {r.name for r in gateway.regions}
    hint = f"; known: {', '.join(sorted(regions))}" if regions else "; no regions are defined"
    for index, upstream in enumerate(gateway.upstreams):
        for e_index, endpoint in enumerate(upstream.endpoints):
            if endpoint.region is not None and endpoint.region not in regions:
                problems.append(
                    f"upstreams[{index}].endpoints[{e_index}].region: "
                    f"unknown region '{endpoint.region}'{hint}"
                )
    by_name = {u.name: u for u in gateway.upstreams}
    for index, route in enumerate(gateway.routes):
        if route.geo != "nearest":
            continue
        upstream = by_name.get(route.upstream or "")
        if upstream is None:
            problems.append(f"routes[{index}].geo: nearest needs an upstream")
        elif not any(e.region for e in upstream.endpoints):
            problems.append(
                f"routes[{index}].geo: nearest needs endpoints with a region in upstream "
                f"'{upstream.name}'"
            )
    return problems


def listener_tls_problems(listeners: tuple[Listener, ...], section: str = "listeners") -> list[str]:
    """Problems with the files the listeners' TLS sections name, each with its field path:
    checked when a config is loaded, so ``dispa validate`` reports them, not the first
    handshake."""
    problems: list[str] = []
    for index, listener in enumerate(listeners):
        if listener.tls is not None:
            problems += tls_file_problems(listener.tls, f"{section}[{index}].tls")
    return problems


def upstream_tls_problems(upstreams: tuple[Upstream, ...]) -> list[str]:
    """Problems with the files the upstreams' TLS sections name, as for listeners."""
    problems: list[str] = []
    for index, upstream in enumerate(upstreams):
        tls = upstream.tls
        if tls is None:
            continue
        where = f"upstreams[{index}].tls"
        if tls.ca is not None:
            try:
                read_certificates(tls.ca)
            except ValueError as error:
                problems.append(f"{where}.ca: {error}")
        if tls.client_cert is None or tls.client_key is None:
            continue
        try:
            certificate = read_certificates(tls.client_cert)[0]
        except ValueError as error:
            problems.append(f"{where}.client_cert: {error}")
            certificate = None
        try:
            key = read_private_key(tls.client_key)
        except ValueError as error:
            problems.append(f"{where}.client_key: {error}")
            continue
        if certificate is not None and _public_der(certificate.public_key()) != _public_der(
            key.public_key()
        ):
            problems.append(
                f"{where}.client_key: {tls.client_key} is not the key of the certificate "
                f"in {tls.client_cert}"
            )
    return problems


def tls_file_problems(tls: Tls, where: str) -> list[str]:
    """Unreadable files, invalid PEM, a key that is not its certificate's, a CA with no
    certificate; ``where`` is the path of the TLS section (``listeners[0].tls``)."""
    problems: list[str] = []
    for index, files in enumerate(tls.certificates):
        at = f"{where}.certificates[{index}]"
        try:
            certificate = read_certificates(files.cert)[0]
        except ValueError as error:
            problems.append(f"{at}.cert: {error}")
            certificate = None
        try:
            key = read_private_key(files.key)
        except ValueError as error:
            problems.append(f"{at}.key: {error}")
            continue
        if certificate is not None and _public_der(certificate.public_key()) != _public_der(
            key.public_key()
        ):
            problems.append(
                f"{at}.key: {files.key} is not the key of the certificate in {files.cert}"
            )
    if tls.client_auth.ca is not None:
        try:
            read_certificates(tls.client_auth.ca)
        except ValueError as error:
            problems.append(f"{where}.client_auth.ca: {error}")
    return problems


def read_certificates(path: str) -> list:
    """The PEM certificates in a file, first one first; ValueError says what is wrong."""
    # cryptography is imported only for configs with TLS: it costs several MiB of memory.
    from cryptography import x509

    data = _read(path)
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError:
        raise ValueError(f"{path} holds no PEM certificate (-----BEGIN CERTIFICATE-----)") from None


def read_private_key(path: str):
    """The PEM private key in a file; ValueError says what is wrong."""
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization

    data = _read(path)
    try:
        return serialization.load_pem_private_key(data, password=None)
    except TypeError:  # the key needs a password
        raise ValueError(f"{path} is an encrypted key; give it unencrypted") from None
    except (ValueError, UnsupportedAlgorithm):
        raise ValueError(f"{path} holds no PEM private key (-----BEGIN PRIVATE KEY-----)") from None


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as file:
            return file.read()
    except OSError as error:
        raise ValueError(f"cannot read {path}: {error.strerror or error}") from None


def _public_der(public_key) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _values(items, field: str) -> list[tuple[int, object]]:
    """(index, value) of a field in a section, for models or raw mappings; unset ones skipped."""
    pairs = []
    for index, item in enumerate(items):
        value = item.get(field) if isinstance(item, dict) else getattr(item, field, None)
        if isinstance(value, str):
            pairs.append((index, value))
    return pairs


def _listen_addresses(listeners) -> list[tuple[int, object]]:
    # Port 0 asks the kernel for a free port: several listeners may say so (tests do).
    return [(i, a) for i, a in _values(listeners, "address") if not a.endswith(":0")]


def _unique(pairs: list[tuple[int, object]], section: str, field: str) -> list[str]:
    positions: dict[object, list[int]] = {}
    for index, value in pairs:
        positions.setdefault(value, []).append(index)
    return [
        f"{section}[{where[1]}].{field}: '{value}' is already used by {section}[{where[0]}]"
        for value, where in positions.items()
        if len(where) > 1
    ]


def raw_reference_problems(data: dict) -> list[str]:
    """Cross-section errors from unvalidated data, so they show beside shape errors.

    Duplicate names and unknown upstreams are independent of shape errors elsewhere, and
    every problem is reported at once: the user should not have to fix the file twice.
    """
    problems = []
    sections = {key: data.get(key) for key in ("listeners", "upstreams", "routes")}
    sections = {key: value if isinstance(value, list) else [] for key, value in sections.items()}
    problems += _unique(_values(sections["listeners"], "name"), "listeners", "name")
    problems += _unique(_listen_addresses(sections["listeners"]), "listeners", "address")
    problems += _unique(_values(sections["upstreams"], "name"), "upstreams", "name")
    problems += _unique(_values(sections["routes"], "name"), "routes", "name")
    upstreams = data.get("upstreams", [])  # no section at all: no upstream is known
    routes = data.get("routes")
    if not isinstance(upstreams, list) or not isinstance(routes, list):
        return problems
    # Names of any other type (a list, a mapping) are shape errors, reported by the schema.
    known = {name for _, name in _values(upstreams, "name")}
    for index, route in enumerate(routes):
        name = route.get("upstream") if isinstance(route, dict) else None
        if isinstance(name, str) and name not in known:
            problems.append(f"routes[{index}].upstream: unknown upstream '{name}'")
    return problems


def _acme_needs_a_cluster(gateway: Gateway) -> list[str]:
    # Only a gateway file is cross-checked here; cores and edges get ACME from the cluster.
    why = "ACME certificates are ordered by a core cluster (dispa core), not by dispa run"
    problems = [f"acme: {why}; use listeners[].tls.certificates"] if gateway.acme else []
    problems += [
        f"listeners[{index}].tls.acme: {why}; give certificates instead"
        for index, listener in enumerate(gateway.listeners)
        if listener.tls is not None and listener.tls.acme
    ]
    return problems
