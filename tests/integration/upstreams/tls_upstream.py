"""An HTTPS upstream for the upstream-TLS tests, run as its own process.

It serves TLS on ``--port`` with ``--cert``/``--key``; with ``--client-ca`` it requires a
client certificate signed by that CA. Every response is JSON saying what the upstream saw
of the connection: the SNI the client sent and the client certificate's common name. A
WebSocket upgrade is answered 101 and then echoes raw bytes back.

A plain-HTTP admin port (``--admin-port``) serves ``/stats`` (handshakes made and failed,
requests) and ``POST /health/up|down``, which makes ``/healthz`` on the TLS port answer
200 or 503: the tests read and steer it without TLS of their own.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

WEBSOCKET_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class State:
    def __init__(self, name: str) -> None:
        self.name = name
        self.lock = threading.Lock()
        self.healthy = True
        self.handshakes = 0
        self.handshake_failures = 0
        self.requests = 0
        self.last_sni: str | None = None

    def count(self, field: str) -> None:
        with self.lock:
            setattr(self, field, getattr(self, field) + 1)

    def document(self) -> dict:
        with self.lock:
            return {
                "handshakes": self.handshakes,
                "handshake_failures": self.handshake_failures,
                "requests": self.requests,
                "last_sni": self.last_sni,
                "healthy": self.healthy,
            }


class TlsServer(ThreadingHTTPServer):
    """Handshakes happen in the request's thread, so a stalled client stalls only itself."""

    daemon_threads = True

    def __init__(self, address, context: ssl.SSLContext, state: State) -> None:
        super().__init__(address, TlsHandler)
        self.context = context
        self.state = state
        # The SNI of each connection, read by its handler (None: the client sent none).
        self.sni_by_socket: dict[int, str | None] = {}
        context.sni_callback = self._remember_sni

    def _remember_sni(self, ssl_socket, server_name, _context) -> None:
        self.sni_by_socket[id(ssl_socket)] = server_name

    def finish_request(self, request, client_address) -> None:
        try:
            tls = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            self.state.count("handshake_failures")
            return
        self.state.count("handshakes")
        try:
            self.RequestHandlerClass(tls, client_address, self)
        finally:
            self.sni_by_socket.pop(id(tls), None)
            tls.close()


class TlsHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: TlsServer

    def log_message(self, format, *args) -> None:
        pass

    def do_GET(self) -> None:
        state = self.server.state
        state.count("requests")
        sni = self.server.sni_by_socket.get(id(self.request))
        with state.lock:
            state.last_sni = sni
        if self.headers.get("Upgrade", "").lower() == "websocket":
            self._echo_websocket()
            return
        if self.path == "/healthz":
            status = 200 if state.healthy else 503
        else:
            status = 200
        certificate = self.request.getpeercert()
        client = None
        if certificate:
            subject = dict(pair[0] for pair in certificate["subject"])
            client = subject.get("commonName")
        body = json.dumps(
            {"upstream": state.name, "path": self.path, "sni": sni, "client": client}
        ).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Upstream", state.name)
        self.end_headers()
        self.wfile.write(body)

    def _echo_websocket(self) -> None:
        key = self.headers.get("Sec-WebSocket-Key", "").encode()
        accept = base64.b64encode(hashlib.sha1(key + WEBSOCKET_GUID).digest()).decode()
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept)
        self.end_headers()
        self.wfile.flush()
        # After the 101 the bytes are the tunnel's: echo them, unframed, until EOF.
        while data := self.request.recv(65536):
            self.request.sendall(data)
        self.close_connection = True


class AdminHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state: State

    def log_message(self, format, *args) -> None:
        pass

    def do_GET(self) -> None:
        self._answer(200, self.state.document())

    def do_POST(self) -> None:
        if self.path in ("/health/up", "/health/down"):
            with self.state.lock:
                self.state.healthy = self.path == "/health/up"
            self._answer(200, self.state.document())
        else:
            self._answer(404, {})

    def _answer(self, status: int, document: dict) -> None:
        body = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--admin-port", type=int, required=True)
    parser.add_argument("--name", default="tls")
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--client-ca", help="require client certificates signed by this CA")
    args = parser.parse_args()

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(args.cert, args.key)
    if args.client_ca:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cafile=args.client_ca)
    state = State(args.name)
    tls_server = TlsServer(("127.0.0.1", args.port), context, state)
    AdminHandler.state = state
    admin = ThreadingHTTPServer(("127.0.0.1", args.admin_port), AdminHandler)
    admin.daemon_threads = True
    threading.Thread(target=tls_server.serve_forever, daemon=True).start()
    admin.serve_forever()  # listening on both ports once this answers: the tests' readiness


if __name__ == "__main__":
    main()
