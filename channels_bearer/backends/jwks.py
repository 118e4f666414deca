"""JWTs from an external OAuth 2.0 / OpenID Connect authorization server.

Auth0, Keycloak, Okta, Azure AD (Entra ID), Cognito, Google... sign their
access tokens with a private key and publish the public keys as a JSON Web
Key Set (JWKS). ``JWKSBackend`` checks a token's signature against those keys,
its issuer, audience, expiry and algorithm, and maps a claim to a Django user::

    CHANNELS_BEARER = {
        "BACKENDS": ["channels_bearer.backends.JWKSBackend"],
        "JWKS": {
            "ISSUER": "https://example.eu.auth0.com/",
            "AUDIENCE": "https://api.example.com",
            "JWKS_URL": "https://example.eu.auth0.com/.well-known/jwks.json",
        },
    }

Keys are downloaded off the event loop and off Channels' shared database
thread, cached for ``CACHE_LIFESPAN`` seconds, and downloaded again when a
token names a key id (``kid``) the cache does not hold, at most once per
``REFRESH_COOLDOWN``. Unlike ``PyJWKClient``, the first download does not start
the cooldown: a key rotated in right after start-up is fetched at once. When
the server is down, tokens signed by cached keys keep working and an unknown
``kid`` is refused at once (after one attempt bounded by ``FETCH_TIMEOUT``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import importlib.util
import ipaddress
import json
import logging
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from channels.db import database_sync_to_async
from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning
from django.core.exceptions import ImproperlyConfigured
from django.db import IntegrityError, transaction
from django.utils.module_loading import import_string

from channels_bearer.backends.base import BaseBackend, Scope, scopes_from_claims, timestamp_to_datetime, unverified_jwt_claims
from channels_bearer.conf import SETTING_NAME, conf
from channels_bearer.exceptions import BackendUnavailable, ExpiredToken, InactiveUser, InvalidToken
from channels_bearer.identity import BearerIdentity, token_hash_id

if TYPE_CHECKING:
    from jwt import PyJWK

__all__ = ["JWKSBackend", "JWKSKeyStore", "JWKS_DEFAULTS"]

logger = logging.getLogger("channels_bearer")

SETTING = f"{SETTING_NAME}['JWKS']"

#: Every key ``CHANNELS_BEARER["JWKS"]`` accepts, with its default.
JWKS_DEFAULTS: dict[str, Any] = {
    "ISSUER": None,
    "AUDIENCE": None,
    "JWKS_URL": None,
    "DISCOVERY_URL": None,
    "ALGORITHMS": ["RS256"],
    "LEEWAY": 0,
    "USER_CLAIM": "sub",
    "USER_FIELD": "username",
    "CREATE_USERS": False,
    "USER_FROM_CLAIMS": None,
    "SCOPE_CLAIM": None,
    "CACHE_LIFESPAN": 300,
    "REFRESH_COOLDOWN": 10,
    "FETCH_TIMEOUT": 3,
}

#: Signature algorithms verified with a *public* key. HMAC (HS*) is never
#: allowed: the "secret" would be the published key, so anyone could sign
#: (the classic algorithm confusion attack); "none" is no signature at all.
ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES256K", "ES384", "ES512", "EdDSA"}
)
#: Key types a JWKS may hold for those algorithms; "oct" (a shared secret) never.
PUBLIC_KEY_TYPES = frozenset({"RSA", "EC", "OKP"})
#: A JWKS document is a few kilobytes; refuse to read a runaway response.
MAX_DOCUMENT_BYTES = 1024 * 1024

_executor: concurrent.futures.ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def _fetch_executor() -> concurrent.futures.ThreadPoolExecutor:
    # Our own threads: a download never blocks the event loop, nor Channels'
    # single database thread (database_sync_to_async), nor asgiref's default
    # executor that the project may use for its own work.
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="channels-bearer-jwks")
        return _executor


@dataclass(frozen=True)
class JWKSSettings:
    """``CHANNELS_BEARER["JWKS"]``, validated."""

    issuer: str
    audience: str | tuple[str, ...]
    jwks_url: str | None
    discovery_url: str | None
    algorithms: frozenset[str]
    leeway: float
    user_claim: str
    user_field: str
    create_users: bool
    user_from_claims: str | None
    scope_claim: str | None
    cache_lifespan: float
    refresh_cooldown: float
    fetch_timeout: float

    @property
    def store_key(self) -> tuple[Any, ...]:
        return (self.jwks_url, self.discovery_url, self.issuer, self.cache_lifespan, self.refresh_cooldown, self.fetch_timeout)


def _is_str_list(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _url_is_plain_http(url: str) -> bool:
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme == "https":
        return False
    host = parsed.hostname or ""
    if host == "localhost":
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True


def check_jwks_settings(raw: Any) -> tuple[JWKSSettings | None, list[CheckMessage]]:
    """Validate ``CHANNELS_BEARER["JWKS"]``: the settings, or ``None`` and why not."""
    messages: list[CheckMessage] = []

    def error(id_: int, msg: str, hint: str) -> None:
        messages.append(Error(msg, hint=hint, id=f"channels_bearer.E{id_:03d}"))

    def warning(id_: int, msg: str, hint: str) -> None:
        messages.append(Warning(msg, hint=hint, id=f"channels_bearer.W{id_:03d}"))

    if not isinstance(raw, Mapping):
        error(26, f"{SETTING} must be a dict.", 'Write "JWKS": {"ISSUER": ..., "AUDIENCE": ..., "JWKS_URL": ...}.')
        return None, messages
    unknown = sorted(set(raw) - set(JWKS_DEFAULTS))
    if unknown:
        error(
            26,
            f"{SETTING} has unknown key(s): {', '.join(map(str, unknown))}.",
            f"Known keys: {', '.join(JWKS_DEFAULTS)}. Check the spelling.",
        )
    values = {**JWKS_DEFAULTS, **raw}

    issuer = values["ISSUER"]
    if not isinstance(issuer, str) or not issuer:
        error(
            22,
            f"{SETTING}['ISSUER'] is not set: tokens cannot be told apart from other issuers' tokens.",
            "Set it to the provider's issuer, exactly as in the tokens' 'iss' claim and its "
            "discovery document, e.g. 'https://example.eu.auth0.com/' (trailing slash included).",
        )
    audience = values["AUDIENCE"]
    if isinstance(audience, str):
        audience_ok = bool(audience)
    else:
        audience_ok = _is_str_list(audience) and len(audience) > 0 and all(audience)
    if not audience_ok:
        error(
            23,
            f"{SETTING}['AUDIENCE'] is not set: a token issued for another API of the same provider "
            "would be accepted.",
            "Set it to this API's identifier as it appears in the tokens' 'aud' claim (a string, or a list of them).",
        )
    jwks_url, discovery_url = values["JWKS_URL"], values["DISCOVERY_URL"]
    urls_ok = True
    for key, url in (("JWKS_URL", jwks_url), ("DISCOVERY_URL", discovery_url)):
        if url is None:
            continue
        if not isinstance(url, str) or urllib.parse.urlsplit(url).scheme not in ("http", "https"):
            urls_ok = False
            error(24, f"{SETTING}['{key}'] must be an http(s) URL.", "For example 'https://issuer.example/.well-known/jwks.json'.")
        elif _url_is_plain_http(url):
            warning(
                20,
                f"{SETTING}['{key}'] is fetched over plain HTTP: whoever can alter the response can sign tokens.",
                "Use the provider's https:// URL (plain http is fine on loopback only).",
            )
    if jwks_url is None and discovery_url is None:
        urls_ok = False
        hint = "Set JWKS_URL to the provider's key set URL"
        if isinstance(issuer, str) and issuer:
            hint += f", or DISCOVERY_URL to {issuer.rstrip('/') + '/.well-known/openid-configuration'!r}"
        error(24, f"{SETTING} has neither JWKS_URL nor DISCOVERY_URL: no key to check signatures with.", hint + ".")
    elif jwks_url is not None and discovery_url is not None:
        warning(21, f"{SETTING} sets both JWKS_URL and DISCOVERY_URL; JWKS_URL is used.", "Remove one of them.")

    algorithms = values["ALGORITHMS"]
    if isinstance(algorithms, str) or not _is_str_list(algorithms) or not algorithms:
        error(25, f"{SETTING}['ALGORITHMS'] must be a non-empty list of algorithm names.", "For example ['RS256'].")
        algorithms = []
    else:
        bad = [a for a in algorithms if a not in ASYMMETRIC_ALGORITHMS]
        if bad:
            error(
                25,
                f"{SETTING}['ALGORITHMS'] has {', '.join(map(repr, bad))}: only public-key signature algorithms "
                "may be used with a JWKS ('none' is no signature; with HS* anyone holding the published key could sign).",
                f"Choose from {', '.join(sorted(ASYMMETRIC_ALGORITHMS))}; most providers use 'RS256'.",
            )

    numbers = {}
    for key in ("LEEWAY", "CACHE_LIFESPAN", "REFRESH_COOLDOWN", "FETCH_TIMEOUT"):
        value = values[key]
        if not _is_number(value) or value < 0 or (key == "FETCH_TIMEOUT" and value == 0):
            error(27, f"{SETTING}['{key}'] must be a non-negative number of seconds.", f"The default is {JWKS_DEFAULTS[key]}.")
        else:
            numbers[key] = float(value)
    if numbers.get("FETCH_TIMEOUT", 0) >= 5:
        warning(
            22,
            f"{SETTING}['FETCH_TIMEOUT'] is {numbers['FETCH_TIMEOUT']:g} s: a handshake waits that long for a "
            "slow authorization server, and daphne drops handshakes after about 5 s.",
            "Keep it short, e.g. 3 (the default); cached keys keep working while the server is down.",
        )

    hook = values["USER_FROM_CLAIMS"]
    if hook is not None:
        try:
            if not isinstance(hook, str) or not callable(import_string(hook)):
                raise ImportError("not a dotted path to a callable")
        except ImportError as exc:
            error(
                28,
                f"{SETTING}['USER_FROM_CLAIMS'] = {hook!r} cannot be imported ({exc}).",
                "Give the dotted path of a function hook(claims: dict) -> user or None.",
            )
    for key in ("USER_CLAIM", "USER_FIELD"):
        if not isinstance(values[key], str) or not values[key]:
            error(29, f"{SETTING}['{key}'] must be a non-empty string.", f"The default is {JWKS_DEFAULTS[key]!r}.")
    if values["SCOPE_CLAIM"] is not None and (not isinstance(values["SCOPE_CLAIM"], str) or not values["SCOPE_CLAIM"]):
        error(29, f"{SETTING}['SCOPE_CLAIM'] must be a claim name or None.", "None reads 'scope' or 'scp'.")
    if hook is None and isinstance(values["USER_FIELD"], str) and values["USER_FIELD"]:
        from django.contrib.auth import get_user_model
        from django.core.exceptions import FieldDoesNotExist

        user_model = get_user_model()
        try:
            user_model._meta.get_field(values["USER_FIELD"])
        except FieldDoesNotExist:
            error(
                29,
                f"{SETTING}['USER_FIELD'] = {values['USER_FIELD']!r} is not a field of {user_model._meta.label}.",
                f"Use a unique field such as {user_model.USERNAME_FIELD!r}.",
            )

    if any(isinstance(m, Error) for m in messages) or not urls_ok:
        return None, messages
    return (
        JWKSSettings(
            issuer=issuer,
            audience=audience if isinstance(audience, str) else tuple(audience),
            jwks_url=jwks_url,
            discovery_url=None if jwks_url is not None else discovery_url,
            algorithms=frozenset(algorithms),
            leeway=numbers["LEEWAY"],
            user_claim=values["USER_CLAIM"],
            user_field=values["USER_FIELD"],
            create_users=bool(values["CREATE_USERS"]),
            user_from_claims=hook,
            scope_claim=values["SCOPE_CLAIM"],
            cache_lifespan=numbers["CACHE_LIFESPAN"],
            refresh_cooldown=numbers["REFRESH_COOLDOWN"],
            fetch_timeout=numbers["FETCH_TIMEOUT"],
        ),
        messages,
    )


def _fetch_json(url: str, timeout: float) -> Any:
    request = urllib.request.Request(url, headers={"Accept": "application/json", "User-Agent": "channels-bearer"})
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (scheme checked in settings)
        body = response.read(MAX_DOCUMENT_BYTES + 1)
    if len(body) > MAX_DOCUMENT_BYTES:
        raise ValueError(f"the document is larger than {MAX_DOCUMENT_BYTES} bytes")
    return json.loads(body)


def parse_jwks(document: Any) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """The usable signature keys of a JWKS document: ``({kid: jwk}, [jwks without kid])``.

    Keys for encryption (``use: enc``) and shared secrets (``kty: oct``) are
    dropped: a token must never be checked with a key anyone can read.
    """
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("the document is not a JWKS (no 'keys' list)")
    named: dict[str, dict[str, Any]] = {}
    unnamed: list[dict[str, Any]] = []
    for jwk in document["keys"]:
        if not isinstance(jwk, dict) or jwk.get("kty") not in PUBLIC_KEY_TYPES:
            continue
        if jwk.get("use", "sig") != "sig":
            continue
        ops = jwk.get("key_ops")
        if ops is not None and (not isinstance(ops, list) or "verify" not in ops):
            continue
        kid = jwk.get("kid")
        if isinstance(kid, str):
            named[kid] = jwk
        elif kid is None:
            unnamed.append(jwk)
    return named, unnamed


class JWKSKeyStore:
    """The keys of one authorization server, cached, refreshed in a thread of our own.

    Shared by every connection: all state is behind a lock, and at most one
    download runs at a time (handshakes that need it wait for the same one).
    """

    def __init__(self, config: JWKSSettings) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._named: dict[str, dict[str, Any]] = {}
        self._unnamed: list[dict[str, Any]] = []
        self._prepared: dict[tuple[str | None, str], PyJWK] = {}
        #: time.monotonic() of the last successful download.
        self._fetched_at: float | None = None
        #: ... of the last download attempt an unknown kid asked for.
        self._forced_at: float | None = None
        #: ... of the last failed download.
        self._failed_at: float | None = None
        self._inflight: concurrent.futures.Future[None] | None = None
        #: Number of completed downloads (for tests and debugging).
        self.downloads = 0

    @property
    def source_url(self) -> str:
        return self.config.jwks_url or self.config.discovery_url or ""

    def _download(self) -> None:
        """Fetch the key set (through the discovery document if configured); runs in our thread."""
        config = self.config
        try:
            url = config.jwks_url
            if url is None:
                assert config.discovery_url is not None
                discovery = _fetch_json(config.discovery_url, config.fetch_timeout)
                if not isinstance(discovery, dict) or discovery.get("issuer") != config.issuer:
                    # OpenID Connect Discovery §4.3: the issuer must match exactly.
                    raise ValueError("the discovery document names another issuer than ISSUER")
                url = discovery.get("jwks_uri")
                if not isinstance(url, str) or urllib.parse.urlsplit(url).scheme not in ("http", "https"):
                    raise ValueError("the discovery document has no http(s) jwks_uri")
            named, unnamed = parse_jwks(_fetch_json(url, config.fetch_timeout))
        except Exception as exc:
            with self._lock:
                self._failed_at = time.monotonic()
                cached = len(self._named) + len(self._unnamed)
            # The URL is configuration, not a secret; no token is involved here.
            logger.warning(
                "Could not fetch the JWKS from %s (%s: %s); keeping %d cached key(s).",
                self.source_url,
                type(exc).__name__,
                exc,
                cached,
            )
            return
        with self._lock:
            self._named, self._unnamed = named, unnamed
            self._prepared.clear()
            self._fetched_at = time.monotonic()
            self._failed_at = None
            self.downloads += 1
        logger.debug("Fetched %d signing key(s) from %s.", len(named) + len(unnamed), self.source_url)

    def _start_download(self) -> concurrent.futures.Future[None]:
        with self._lock:
            if self._inflight is None or self._inflight.done():
                self._inflight = _fetch_executor().submit(self._download)
            return self._inflight

    async def refresh(self) -> None:
        """Download the key set now (or wait for the download already running)."""
        future = self._start_download()
        try:
            # The download bounds each socket operation by FETCH_TIMEOUT; this
            # bounds the handshake's wait as a whole (discovery + keys, slow
            # responses). A download still running goes on in its thread.
            await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(future)), timeout=self.config.fetch_timeout)
        except asyncio.TimeoutError:
            logger.warning("The JWKS download from %s is taking too long; going on without it.", self.source_url)

    def _find(self, kid: str | None) -> dict[str, Any] | None:
        with self._lock:
            if kid is not None:
                return self._named.get(kid)
            # No kid: only unambiguous when the server publishes a single key.
            keys = list(self._named.values()) + self._unnamed
            return keys[0] if len(keys) == 1 else None

    def _may_retry(self, now: float) -> bool:
        failed_at = self._failed_at
        return failed_at is None or now - failed_at >= self.config.refresh_cooldown

    async def get_key(self, kid: str | None, algorithm: str) -> PyJWK:
        """The key that verifies a token with this ``kid`` and ``alg`` header."""
        config = self.config
        now = time.monotonic()
        jwk = self._find(kid)
        fresh = self._fetched_at is not None and now - self._fetched_at < config.cache_lifespan
        downloading = self._inflight is not None and not self._inflight.done()
        if jwk is not None:
            # A known key never waits for a download another handshake started.
            # Past its lifespan, the key set is downloaded again (unless a
            # download just failed); if that fails, the cached key still serves.
            if not fresh and not downloading and self._may_retry(now):
                await self.refresh()
                jwk = self._find(kid)
                if jwk is None:
                    raise InvalidToken("the token's signing key was retired")
            return self._prepare(kid, jwk, algorithm)
        if downloading:
            await self.refresh()  # joins the download under way
        elif self._fetched_at is None:
            if self._may_retry(now):
                await self.refresh()
        else:
            # An unknown kid: a key rotated in, or a forged token. Download at
            # most once per cooldown, so forged kids cannot hammer the server.
            # The cooldown counts from the last *forced* attempt only, not from
            # the first download as PyJWKClient's does.
            with self._lock:
                allowed = (self._forced_at is None or now - self._forced_at >= config.refresh_cooldown) and self._may_retry(now)
                if allowed:
                    self._forced_at = now
            if allowed:
                await self.refresh()
        if self._fetched_at is None:
            raise BackendUnavailable("the authorization server's keys could not be fetched")
        jwk = self._find(kid)
        if jwk is None:
            raise InvalidToken("the token's signing key is unknown")
        return self._prepare(kid, jwk, algorithm)

    def _prepare(self, kid: str | None, jwk: dict[str, Any], algorithm: str) -> PyJWK:
        from jwt import PyJWK, PyJWTError

        with self._lock:
            prepared = self._prepared.get((kid, algorithm))
        if prepared is not None:
            return prepared
        declared = jwk.get("alg")
        if declared is not None and declared != algorithm:
            raise InvalidToken("the token's algorithm does not match its signing key")
        try:
            # Binds the key to the token's (allowed) algorithm: PyJWT refuses a
            # key type that does not fit it, e.g. an EC key for RS256.
            prepared = PyJWK(jwk, algorithm=algorithm)
        except PyJWTError as exc:
            raise InvalidToken("the token's algorithm does not match its signing key") from exc
        with self._lock:
            self._prepared[(kid, algorithm)] = prepared
        return prepared


class JWKSBackend(BaseBackend):
    """Validates JWTs signed by an OAuth 2.0 / OpenID Connect server's published keys.

    Settings: ``CHANNELS_BEARER["JWKS"]`` (see :data:`JWKS_DEFAULTS` and the
    README). A JWT whose ``iss`` is not ``ISSUER`` is not this backend's: the
    next backend is asked. One that is ours must have an allowed ``alg``, a
    signature by a published key, the ``AUDIENCE``, and an unexpired ``exp``;
    ``nbf``/``iat`` are honoured, with ``LEEWAY`` seconds of clock skew.

    The user is found by ``USER_FIELD`` = the ``USER_CLAIM`` claim (created when
    ``CREATE_USERS``), or by the ``USER_FROM_CLAIMS`` hook. Override
    :meth:`get_user` or :meth:`create_user` for anything else.
    """

    def __init__(self) -> None:
        self._config: JWKSSettings | None = None
        self._stores: dict[tuple[Any, ...], JWKSKeyStore] = {}
        self._stores_lock = threading.Lock()

    @classmethod
    def check(cls) -> list[CheckMessage]:
        messages: list[CheckMessage] = []
        if importlib.util.find_spec("jwt") is None:
            messages.append(
                Error(
                    "JWKSBackend is configured, but PyJWT is not installed.",
                    hint="pip install channels-bearer[jwks] (PyJWT[crypto]).",
                    id="channels_bearer.E020",
                )
            )
        if importlib.util.find_spec("cryptography") is None:
            messages.append(
                Error(
                    "JWKSBackend is configured, but 'cryptography' is not installed: PyJWT cannot verify "
                    "RSA or EC signatures without it.",
                    hint="pip install channels-bearer[jwks] (PyJWT[crypto]).",
                    id="channels_bearer.E021",
                )
            )
        # The raw value: conf.JWKS raises on a broken setting, which checks must report, not raise.
        raw = getattr(settings, SETTING_NAME, {})
        messages.extend(check_jwks_settings(raw.get("JWKS", {}) if isinstance(raw, Mapping) else {})[1])
        return messages

    def get_config(self) -> JWKSSettings:
        """The validated settings; ``ImproperlyConfigured`` names the first problem."""
        # Built once per backend instance: instances are rebuilt on setting_changed.
        if self._config is None:
            config, messages = check_jwks_settings(conf.JWKS)
            if config is None:
                first = next(m for m in messages if isinstance(m, Error))
                raise ImproperlyConfigured(f"{first.msg} {first.hint}")
            self._config = config
        return self._config

    def get_key_store(self, config: JWKSSettings) -> JWKSKeyStore:
        with self._stores_lock:
            store = self._stores.get(config.store_key)
            if store is None:
                store = self._stores[config.store_key] = JWKSKeyStore(config)
            return store

    def is_candidate(self, claims: dict[str, Any], config: JWKSSettings) -> bool:
        """Whether an (unverified) token is this issuer's; others go to the next backend."""
        return claims.get("iss") == config.issuer

    async def authenticate(self, token: str, scope: Scope) -> BearerIdentity | None:
        unverified = unverified_jwt_claims(token)
        if unverified is None:
            return None
        config = self.get_config()
        if not self.is_candidate(unverified, config):
            return None
        claims = await self.validate(token, config)
        user = await database_sync_to_async(self.get_user)(claims, config)
        self.check_user(user)
        jti = claims.get("jti")
        return BearerIdentity(
            user=user,
            token_id=jti if isinstance(jti, str) and jti else token_hash_id(token),
            expires_at=timestamp_to_datetime(claims.get("exp")),
            claims=claims,
            scopes=self.get_scopes(claims, config),
        )

    async def validate(self, token: str, config: JWKSSettings) -> dict[str, Any]:
        """The verified claims; raises ``ExpiredToken`` or ``InvalidToken``.

        Messages are fixed: PyJWT's may quote parts of the token.
        """
        import jwt

        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise InvalidToken("the token's header is malformed") from exc
        algorithm = header.get("alg")
        # Pinned before any key is looked at: "none" and HS* never get this far.
        if not isinstance(algorithm, str) or algorithm not in config.algorithms or algorithm not in ASYMMETRIC_ALGORITHMS:
            raise InvalidToken("the token's algorithm is not allowed")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise InvalidToken("the token's key id is malformed")
        key = await self.get_key_store(config).get_key(kid, algorithm)
        required = ["exp", "iss", "aud"]
        if config.user_from_claims is None:
            required.append(config.user_claim)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=config.audience if isinstance(config.audience, str) else list(config.audience),
                issuer=config.issuer,
                leeway=config.leeway,
                options={"require": required},
            )
        except jwt.ExpiredSignatureError as exc:
            raise ExpiredToken("the token has expired") from exc
        except jwt.ImmatureSignatureError as exc:
            raise InvalidToken("the token is not valid yet") from exc
        except jwt.InvalidAudienceError as exc:
            raise InvalidToken("the token is meant for another audience") from exc
        except jwt.InvalidIssuerError as exc:
            raise InvalidToken("the token is from another issuer") from exc
        except jwt.MissingRequiredClaimError as exc:
            raise InvalidToken("the token lacks a required claim") from exc
        except jwt.InvalidSignatureError as exc:
            raise InvalidToken("the token's signature is invalid") from exc
        except jwt.PyJWTError as exc:
            raise InvalidToken("the token is not valid") from exc
        return claims

    def get_scopes(self, claims: dict[str, Any], config: JWKSSettings) -> frozenset[str]:
        """``SCOPE_CLAIM`` (a space-separated string or a list), else ``scope``/``scp``."""
        if config.scope_claim is None:
            return scopes_from_claims(claims)
        return scopes_from_claims({"scope": claims.get(config.scope_claim)})

    def get_user(self, claims: dict[str, Any], config: JWKSSettings) -> Any:
        """The user for verified ``claims`` (runs on the database thread)."""
        if config.user_from_claims is not None:
            hook: Callable[[dict[str, Any]], Any] = import_string(config.user_from_claims)
            user = hook(claims)
            if user is None:
                raise InactiveUser("no user for the token")
            return user
        value = claims.get(config.user_claim)
        if not isinstance(value, str) or not value:
            raise InvalidToken("the token names no user")
        from django.contrib.auth import get_user_model

        user_model = get_user_model()
        try:
            return user_model._default_manager.get(**{config.user_field: value})
        except user_model.DoesNotExist:
            if not config.create_users:
                raise InactiveUser("the token's user does not exist") from None
        return self.create_user(value, claims, config)

    def create_user(self, value: str, claims: dict[str, Any], config: JWKSSettings) -> Any:
        """Make the user a token names on first sight (``CREATE_USERS``).

        The user has no usable password: they sign in at the provider.
        """
        from django.contrib.auth import get_user_model

        user_model = get_user_model()
        user = user_model(**{config.user_field: value})
        user.set_unusable_password()
        try:
            with transaction.atomic():
                user.save()
        except IntegrityError:
            # Another handshake with the same new user won the race.
            return user_model._default_manager.get(**{config.user_field: value})
        logger.info("Created user pk=%s for a token from %s.", user.pk, config.issuer)
        return user
