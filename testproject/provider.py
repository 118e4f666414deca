"""A stand-in OpenID Connect provider for the demo (``python3 dev.py demo --oidc``).

Serves a discovery document and a JWKS on loopback, with one key pair made
at start and never written anywhere, and mints access tokens for the demo::

    .venv/bin/python testproject/provider.py --port 9000 [--algorithm ES256]

RS256 (an RSA key) by default, or ES256 (an EC P-256 key); the demo's
settings name no algorithm, and JWKSBackend follows the key's.

prints three lines (the issuer, the audience, a token for the user
``carol``), then serves until stopped. ``GET /token?sub=<username>`` mints
another token. Loopback and demos only: anyone who can reach it can mint
tokens.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

AUDIENCE = "channels-bearer-demo"
KID = "demo-provider-1"


ALGORITHMS = ("RS256", "ES256")


class Provider:
    def __init__(self, host: str, port: int, algorithm: str = "RS256") -> None:
        self.algorithm = algorithm
        self.issuer = f"http://{host}:{port}"
        if algorithm == "ES256":
            self.key: Any = ec.generate_private_key(ec.SECP256R1())
            public = ECAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        else:
            self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            public = RSAAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        self.jwk = {**public, "kid": KID, "use": "sig", "alg": algorithm}

    def token(self, sub: str, lifetime: int = 3600) -> str:
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "aud": AUDIENCE,
            "sub": sub,
            "iat": now,
            "exp": now + lifetime,
            "jti": uuid.uuid4().hex,
            "scope": "chat:read",
        }
        return jwt.encode(claims, self.key, algorithm=self.algorithm, headers={"kid": KID})

    def documents(self) -> dict[str, Any]:
        return {
            "/.well-known/openid-configuration": {"issuer": self.issuer, "jwks_uri": f"{self.issuer}/jwks.json"},
            "/jwks.json": {"keys": [self.jwk]},
        }


def serve(provider: Provider, host: str, port: int) -> ThreadingHTTPServer:
    documents = provider.documents()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            url = urlsplit(self.path)
            if url.path == "/token":
                sub = parse_qs(url.query).get("sub", ["carol"])[0]
                body, kind = provider.token(sub).encode(), "text/plain"
            elif url.path in documents:
                body, kind = json.dumps(documents[url.path]).encode(), "application/json"
            else:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the token endpoint's URL names users; keep the demo's output short

    return ThreadingHTTPServer((host, port), Handler)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--algorithm", choices=ALGORITHMS, default="RS256", help="how tokens are signed (default RS256)")
    args = parser.parse_args(argv)
    provider = Provider(args.host, args.port, args.algorithm)
    try:
        server = serve(provider, args.host, args.port)
    except OSError as exc:
        print(f"cannot listen on {args.host}:{args.port}: {exc.strerror}", file=sys.stderr)
        return 1
    print(provider.issuer, AUDIENCE, provider.token("carol"), sep="\n", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
