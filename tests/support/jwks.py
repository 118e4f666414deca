"""A real authorization server's key endpoints, served over loopback, and tokens signed for it.

``JWKSServer`` is an ``http.server`` in a thread, on a port the OS picks:
``/jwks.json`` serves whatever keys the test put in ``server.keys`` (rotation
is a list assignment), ``/.well-known/openid-configuration`` the discovery
document. ``stop()`` closes the port (connection refused from then on);
``gate`` holds every response until the test releases it.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt

from tests.support.keys import EC_KEY, EC_KID, RSA_KEY_1, RSA_KEY_2, RSA_KID_1, RSA_KID_2, public_jwk

AUDIENCE = "https://api.channels-bearer.test"
JWKS_BACKEND = "channels_bearer.backends.JWKSBackend"

SIGNING_KEYS = {RSA_KID_1: RSA_KEY_1, RSA_KID_2: RSA_KEY_2, EC_KID: EC_KEY}


class JWKSServer:
    """Serves a JWKS and a discovery document on ``http://127.0.0.1:<free port>``."""

    def __init__(self, keys: list[dict[str, Any]] | None = None) -> None:
        self.keys: list[dict[str, Any]] = keys if keys is not None else [public_jwk(RSA_KEY_1, RSA_KID_1)]
        self.requests: Counter[str] = Counter()
        #: While cleared, responses wait (set it to let them through).
        self.gate = threading.Event()
        self.gate.set()
        #: Set when a request arrived and waits at the gate.
        self.waiting = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                server.requests[self.path] += 1
                if not server.gate.is_set():
                    server.waiting.set()
                    server.gate.wait(30)
                if self.path == "/jwks.json":
                    body = json.dumps({"keys": server.keys}).encode()
                elif self.path == "/.well-known/openid-configuration":
                    body = json.dumps({"issuer": server.issuer, "jwks_uri": server.jwks_url}).encode()
                else:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = int(self.httpd.server_address[1])
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.jwks_url = f"{self.issuer}/jwks.json"
        self.discovery_url = f"{self.issuer}/.well-known/openid-configuration"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, name=f"jwks-{self.port}", daemon=True
        )
        self.thread.start()
        self.running = True

    @property
    def jwks_downloads(self) -> int:
        return self.requests["/jwks.json"]

    def stop(self) -> None:
        """Close the port: from now on every fetch is refused."""
        if self.running:
            self.gate.set()
            self.httpd.shutdown()
            self.httpd.server_close()
            self.thread.join(10)
            self.running = False

    def settings(self, **jwks: Any) -> dict[str, Any]:
        """``CHANNELS_BEARER`` that accepts this server's tokens (and DRF tokens)."""
        return {
            "BACKENDS": ["channels_bearer.backends.DRFTokenBackend", JWKS_BACKEND],
            "JWKS": {
                "ISSUER": self.issuer,
                "AUDIENCE": AUDIENCE,
                "JWKS_URL": self.jwks_url,
                "CREATE_USERS": True,
                **jwks,
            },
        }

    def mint(self, sub: str = "alice", *, kid: str = RSA_KID_1, algorithm: str | None = None, **claims: Any) -> str:
        """A token signed with the test key ``kid``; claims override the defaults."""
        return mint(self.issuer, sub, kid=kid, algorithm=algorithm, **claims)


def mint(issuer: str, sub: str = "alice", *, kid: str | None = RSA_KID_1, algorithm: str | None = None, key: Any = None, **claims: Any) -> str:
    now = int(time.time())
    payload = {
        "iss": issuer,
        "aud": AUDIENCE,
        "sub": sub,
        "iat": now,
        "exp": now + 300,
        "jti": uuid.uuid4().hex,
        **claims,
    }
    payload = {k: v for k, v in payload.items() if v is not None}
    signing_key = key if key is not None else SIGNING_KEYS[kid or RSA_KID_1]
    if algorithm is None:
        algorithm = "ES256" if kid == EC_KID else "RS256"
    headers = {"kid": kid} if kid is not None else {}
    return jwt.encode(payload, signing_key, algorithm=algorithm, headers=headers)


class SilentServer:
    """Accepts TCP connections (the kernel does) and never answers: a hung authorization server."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = int(self.sock.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}/jwks.json"

    def close(self) -> None:
        self.sock.close()


__all__ = ["AUDIENCE", "JWKSServer", "SilentServer", "mint", "RSA_KID_2", "EC_KID"]
