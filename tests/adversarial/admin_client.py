"""A raw client for attacks on admin APIs: it sends exactly the Host, Origin and
Content-Type a test gives (a browser, a DNS-rebinding page, a tool), and reads the answer.
"""

from __future__ import annotations

import http.client
import json
from dataclasses import dataclass
from typing import Any


@dataclass
class Answer:
    status: int
    body: Any  # parsed JSON when the server sent JSON, else text
    raw: bytes


def admin_request(
    address: str,
    method: str,
    path: str,
    *,
    body: bytes | str | dict | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 10.0,
) -> Answer:
    """One request on a fresh connection. ``headers`` may set Host (then it is sent as
    given, instead of the address connected to)."""
    host, _, port = address.rpartition(":")
    if isinstance(body, dict):
        body = json.dumps(body)
    payload = body.encode() if isinstance(body, str) else body
    connection = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        connection.request(method, path, body=payload, headers=headers or {})
        response = connection.getresponse()
        raw = response.read()
        content_type = response.getheader("content-type", "")
    finally:
        connection.close()
    parsed: Any = raw.decode(errors="replace")
    if content_type.startswith("application/json"):
        parsed = json.loads(raw)
    return Answer(response.status, parsed, raw)


def as_browser(origin: str, host: str) -> dict[str, str]:
    """The headers a cross-site page's simple request carries (no preflight needed)."""
    return {"Host": host, "Origin": origin, "Content-Type": "text/plain;charset=UTF-8"}
