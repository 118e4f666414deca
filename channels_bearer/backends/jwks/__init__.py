"""JWTs from an external OAuth 2.0 / OpenID Connect authorization server.

Auth0, Keycloak, Okta, Azure AD (Entra ID), Cognito, Google... sign their
access tokens with a private key and publish the public keys as a JSON Web
Key Set (JWKS)::

    CHANNELS_BEARER = {
        "BACKENDS": ["channels_bearer.backends.JWKSBackend"],
        "JWKS": {
            "ISSUER": "https://example.eu.auth0.com/",
            "AUDIENCE": "https://api.example.com",
            "JWKS_URL": "https://example.eu.auth0.com/.well-known/jwks.json",
        },
    }

Several providers at once (customers on Auth0, staff on Azure AD): ``"JWKS":
{"PROVIDERS": [{...}, {...}]}``, one dict of the same keys each; a token goes
to the provider its ``iss`` names.

Three modules: :mod:`.settings` (the ``JWKS`` keys and their validator),
:mod:`.keys` (fetching, parsing and caching the key set, in threads of its
own) and :mod:`.backend` (``JWKSBackend``: validating a token, finding its
user).
"""

from channels_bearer.backends.jwks.backend import DECODE_ERRORS, JWKSBackend
from channels_bearer.backends.jwks.keys import JWKSKeyStore, implied_algorithm, parse_jwks
from channels_bearer.backends.jwks.settings import (
    ASYMMETRIC_ALGORITHMS,
    JWKS_DEFAULTS,
    JWKSSettings,
    check_jwks_providers,
    check_jwks_settings,
)

__all__ = [
    "ASYMMETRIC_ALGORITHMS",
    "DECODE_ERRORS",
    "JWKSBackend",
    "JWKSKeyStore",
    "JWKSSettings",
    "JWKS_DEFAULTS",
    "check_jwks_providers",
    "check_jwks_settings",
    "implied_algorithm",
    "parse_jwks",
]
