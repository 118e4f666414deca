"""Every key ``CHANNELS_BEARER`` accepts, with its default, and the values some keys may take.

Read by :mod:`channels_bearer.config`, which validates a setting against
them, and by the checks; kept apart so that the list reads as a reference.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "DEFAULTS",
    "FLAG_KEYS",
    "LIST_KEYS",
    "REFUSAL_MODES",
    "SECONDS_KEYS",
    "SETTING_NAME",
    "SOCKET_POLICIES",
    "SOURCE_NAMES",
]

SETTING_NAME = "CHANNELS_BEARER"

#: Every key the setting accepts, with its default.
DEFAULTS: dict[str, Any] = {
    "BACKENDS": ["channels_bearer.backends.DRFTokenBackend"],
    "SOURCES": ["subprotocol", "header"],
    "SUBPROTOCOL": "access_token",
    "HEADER_KEYWORDS": ["Bearer"],
    "QUERY_PARAM": "access_token",
    # "handshake": refuse before accept (401 where the server supports the
    # denial-response extension, else a close that servers turn into 403).
    # "close": accept, then close with 4401/4403/4400, because a browser sees
    # every refused handshake as 1006 and cannot tell why.
    "REFUSAL": "handshake",
    "DRF_TOKEN_MODEL": "authtoken.Token",
    "TICKET_PARAM": "ticket",
    "TICKET_TTL": 30,
    "TICKET_CACHE": "default",
    # Seconds after a token's expiry before its socket is closed with 4401.
    "EXPIRY_GRACE": 0,
    # Accept in-band refresh messages on every BearerConsumerMixin consumer.
    "REFRESH": False,
    # Close a user's sockets when they log out of a Django session.
    "REVOKE_ON_LOGOUT": True,
    # Cached lookups for database-backed backends: a cache alias or None.
    "CACHE": None,
    "CACHE_TTL": 60,
    # Seconds a token that matched nothing is remembered in that cache (0: never).
    "NEGATIVE_CACHE_TTL": 5,
    # Seconds a first-message socket ("message" source) may take to authenticate.
    "AUTH_TIMEOUT": 10,
    # DRFAuthenticationBackend: dotted paths, or None for REST_FRAMEWORK's
    # DEFAULT_AUTHENTICATION_CLASSES (checked by the backend).
    "DRF_AUTHENTICATION_CLASSES": None,
    # Operators' limits (channels_bearer.limits): open sockets per user across
    # processes, and refused handshakes per client address.
    "MAX_SOCKETS_PER_USER": None,
    "MAX_SOCKETS_POLICY": "refuse",
    "REFUSAL_RATE": None,
    # The request header a trusted proxy puts the client's address in (None: the
    # address the server saw).
    "CLIENT_ADDRESS_HEADER": None,
    # Where the limits count: a Django RedisCache alias counts across processes.
    "LIMITS_CACHE": "default",
    # Seconds a socket of a process that died still counts against its user.
    "SOCKET_LEASE": 60,
    # Prometheus metrics: None = on when prometheus_client is installed.
    "METRICS": None,
    # JWKSBackend (checked by the backend: channels_bearer.backends.jwks)
    "JWKS": {},
}

#: Where a credential may be: the first four at the handshake, "message" in
#: the socket's first frame (BearerConsumerMixin).
SOURCE_NAMES = ("subprotocol", "header", "query", "ticket", "message")
REFUSAL_MODES = ("handshake", "close")
SOCKET_POLICIES = ("refuse", "close_oldest")
LIST_KEYS = ("BACKENDS", "SOURCES", "HEADER_KEYWORDS")
SECONDS_KEYS = ("TICKET_TTL", "EXPIRY_GRACE", "CACHE_TTL", "NEGATIVE_CACHE_TTL", "AUTH_TIMEOUT", "SOCKET_LEASE")
FLAG_KEYS = ("REFRESH", "REVOKE_ON_LOGOUT")
