"""Every system-check id of channels-bearer and its backends, and what each means.

Messages are made through :func:`error` and :func:`warning`, which accept
only the ids listed here, so that an id names one problem wherever it is
raised (a test checks that each is raised from one place) and the settings
documentation can list them all. Ids are ``channels_bearer.E0NN`` /
``channels_bearer.W0NN``; users silence warnings by them
(``SILENCED_SYSTEM_CHECKS``), so an id, once released, keeps its meaning.
"""

from __future__ import annotations

from django.core.checks import Error, Warning

PREFIX = "channels_bearer."

CATALOG: dict[str, str] = {
    # The core setting (channels_bearer.conf.validate).
    "E001": "CHANNELS_BEARER is not a dict",
    "E002": "CHANNELS_BEARER has an unknown key (a typo such as SOURCE)",
    "E003": "a BACKENDS entry cannot be imported, or is not a BaseBackend subclass",
    "E004": "unknown source in SOURCES",
    "E007": "SUBPROTOCOL is not a valid subprotocol name (browsers refuse it)",
    "E008": "a HEADER_KEYWORDS entry is not a single scheme word",
    "E009": 'REFUSAL is neither "handshake" nor "close"',
    "E010": "BACKENDS, SOURCES or HEADER_KEYWORDS is not a list of strings",
    "E011": "BACKENDS is empty: no token could ever be accepted",
    "E012": "QUERY_PARAM, TICKET_PARAM, DRF_TOKEN_MODEL, TICKET_CACHE or LIMITS_CACHE is not a non-empty string",
    "E013": "TICKET_TTL, EXPIRY_GRACE, CACHE_TTL, NEGATIVE_CACHE_TTL, AUTH_TIMEOUT or SOCKET_LEASE is not a number of seconds, zero or more",
    "E014": "REFRESH or REVOKE_ON_LOGOUT is not True/False",
    "E015": "HEADER_KEYWORDS is empty while the header source is enabled",
    "E016": "CACHE is neither a cache alias nor None",
    "E017": "DRF_AUTHENTICATION_CLASSES is neither None nor a list of dotted paths",
    "E018": "MAX_SOCKETS_PER_USER is neither None nor a whole number, 1 or more",
    "E019": 'MAX_SOCKETS_POLICY is neither "refuse" nor "close_oldest"',
    "E032": 'REFUSAL_RATE is neither None nor a rate such as "20/min"',
    "E033": "CLIENT_ADDRESS_HEADER is neither None nor a header name",
    "E034": "METRICS is True, but prometheus_client is not installed",
    "E035": "METRICS is neither True, False nor None",
    "E036": "SOCKET_LEASE is under 1 second: leases would lapse between renewals and the cap would count nothing",
    "E026": "JWKS is not a dict",
    "W001": "the query source is enabled: tokens in URLs reach access logs, proxies and browser history",
    # The deployment (channels_bearer.checks).
    "W002": "no CHANNEL_LAYERS: revocation reaches the sockets of the revoking process only",
    "W003": "CACHE is a per-process cache and the channel layer cannot reach other processes",
    "W004": "MAX_SOCKETS_PER_USER or REFUSAL_RATE counts in this process only: LIMITS_CACHE is no Redis cache",
    # DRFTokenBackend and SimpleJWTBackend.
    "E005": "DRFTokenBackend is configured, but rest_framework.authtoken is not in INSTALLED_APPS",
    "E006": "SimpleJWTBackend is configured, but djangorestframework-simplejwt is not installed",
    # JWKSBackend (channels_bearer.backends.jwks).
    "E020": "JWKSBackend: PyJWT is not installed",
    "E021": "JWKSBackend: cryptography is not installed",
    "E022": "JWKS: ISSUER is not set",
    "E023": "JWKS: AUDIENCE is not set",
    "E024": "JWKS: JWKS_URL or DISCOVERY_URL is not an http(s) URL",
    "E025": "JWKS: ALGORITHMS is neither None nor a list of public-key algorithm names",
    "E027": "JWKS: LEEWAY, CACHE_LIFESPAN, REFRESH_COOLDOWN or FETCH_TIMEOUT is not a number of seconds",
    "E028": "JWKS: USER_FROM_CLAIMS cannot be imported",
    "E029": "JWKS: USER_CLAIM or USER_FIELD is not a non-empty string",
    "E040": "JWKS has an unknown key",
    "E041": "JWKS has neither JWKS_URL nor DISCOVERY_URL",
    "E042": "JWKS: SCOPE_CLAIM is neither a claim name nor None",
    "E043": "JWKS: USER_FIELD is not a field of the user model",
    "E044": "JWKS: PROVIDERS is not a non-empty list of dicts, or other keys stand beside it",
    "E045": "JWKS: two PROVIDERS have the same ISSUER",
    "W020": "JWKS: a key URL is fetched over plain HTTP (not loopback)",
    "W021": "JWKS: both JWKS_URL and DISCOVERY_URL are set; JWKS_URL is used",
    "W022": "JWKS: FETCH_TIMEOUT is 5 s or more (daphne drops handshakes after about 5 s)",
    # OAuthToolkitBackend.
    "E030": "OAuthToolkitBackend: django-oauth-toolkit is not installed",
    "E031": "OAuthToolkitBackend: oauth2_provider is not in INSTALLED_APPS",
    "W030": "OAuthToolkitBackend: the access token model has no token_checksum (django-oauth-toolkit < 3)",
    # KnoxTokenBackend and DRFAuthenticationBackend.
    "E050": "KnoxTokenBackend: django-rest-knox is not installed, or knox is not in INSTALLED_APPS",
    "E051": "DRFAuthenticationBackend: djangorestframework is not installed",
    "E052": "DRFAuthenticationBackend: no authentication classes to run",
    "E053": "DRFAuthenticationBackend: an authentication class cannot be imported, or is not one",
}


def _id(code: str) -> str:
    if code not in CATALOG:
        raise ValueError(f"{code} is not in channels_bearer.check_ids.CATALOG")
    return PREFIX + code


def error(code: str, msg: str, hint: str) -> Error:
    return Error(msg, hint=hint, id=_id(code))


def warning(code: str, msg: str, hint: str) -> Warning:
    return Warning(msg, hint=hint, id=_id(code))
