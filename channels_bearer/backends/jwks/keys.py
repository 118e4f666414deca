"""The keys of one authorization server: fetched, parsed, cached, refreshed.

Keys are downloaded off the event loop and off Channels' shared database
thread (a thread pool of our own), cached for ``CACHE_LIFESPAN`` seconds, and
downloaded again when a token names a key id (``kid``) the cache does not
hold, at most once per ``REFRESH_COOLDOWN``. Unlike ``PyJWKClient``, the
first download does not start the cooldown: a key rotated in right after
start-up is fetched at once. When the server is down, tokens signed by cached
keys keep working and an unknown ``kid`` is refused at once (after one
attempt bounded by ``FETCH_TIMEOUT``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import threading
import time
import urllib.parse
import urllib.request
from typing import TYPE_CHECKING, Any

from channels_bearer.backends.jwks.settings import JWKSSettings
from channels_bearer.exceptions import BackendUnavailable, InvalidToken

if TYPE_CHECKING:
    from jwt import PyJWK

__all__ = ["JWKSKeyStore", "parse_jwks"]

logger = logging.getLogger("channels_bearer")

#: Key types a JWKS may hold for public-key algorithms; "oct" (a shared secret) never.
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


#: The algorithm a key that declares none is for, by key type (and curve).
IMPLIED_ALGORITHMS: dict[tuple[str, str | None], str] = {
    ("RSA", None): "RS256",
    ("EC", "P-256"): "ES256",
    ("EC", "P-384"): "ES384",
    ("EC", "P-521"): "ES512",
    ("EC", "secp256k1"): "ES256K",
    ("OKP", "Ed25519"): "EdDSA",
    ("OKP", "Ed448"): "EdDSA",
}


def implied_algorithm(jwk: dict[str, Any]) -> str | None:
    """What a key with no ``alg`` is for: RS256 for RSA (OpenID Connect's default), the curve's for EC and OKP."""
    kty = jwk.get("kty")
    curve = None if kty == "RSA" else jwk.get("crv")
    return IMPLIED_ALGORITHMS.get((str(kty), curve if isinstance(curve, str) else None))


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
        if declared is None and self.config.algorithms is None and algorithm != implied_algorithm(jwk):
            # No allowlist: a key that declares no algorithm verifies only the
            # one its type and curve imply.
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
