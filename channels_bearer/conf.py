"""The ``CHANNELS_BEARER`` setting, read on every access.

Like django-cors-headers' ``conf``: every property reads ``settings`` anew, so
``override_settings`` in tests just works. Only the built backend objects are
cached, and that cache is dropped on ``setting_changed``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.module_loading import import_string

if TYPE_CHECKING:
    from channels_bearer.backends.base import BaseBackend

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
    # JWKSBackend
    "JWKS": {},
}

SOURCE_NAMES = ("subprotocol", "header", "query", "ticket")
REFUSAL_MODES = ("handshake", "close")

_backend_cache: dict[tuple[str, ...], list[tuple[str, BaseBackend]]] = {}


@dataclass(frozen=True)
class HandshakeSettings:
    """What the middleware reads on every handshake, parsed and validated once.

    Built from one ``CHANNELS_BEARER`` object and rebuilt when the setting is
    replaced (``override_settings``) or changed (``setting_changed``): reading
    and re-validating a dozen keys through Django's lazy settings on every
    handshake cost more than the rest of the middleware together.
    """

    raw: Mapping[str, Any] = field(repr=False, compare=False)
    sources: frozenset[str]
    marker: str
    #: ``Authorization`` schemes, lowercased (RFC 7235: case-insensitive).
    header_keywords: frozenset[str]
    #: ``(source, parameter)`` for the enabled query-string sources.
    query_params: tuple[tuple[str, str], ...]
    refusal: str
    backends: tuple[tuple[str, BaseBackend], ...]


class BearerSettings:
    """Typed, read-on-access view of ``settings.CHANNELS_BEARER``."""

    #: The last ``CHANNELS_BEARER`` object that passed the checks below.
    _validated: Any = None
    _handshake: HandshakeSettings | None = None

    def handshake(self) -> HandshakeSettings:
        """The per-handshake settings, built once per ``CHANNELS_BEARER`` object."""
        raw = getattr(settings, SETTING_NAME, {})
        snapshot = self._handshake
        if snapshot is not None and snapshot.raw is raw:
            return snapshot
        sources = self.SOURCES
        snapshot = HandshakeSettings(
            raw=raw,
            sources=frozenset(sources),
            marker=self.SUBPROTOCOL,
            header_keywords=frozenset(keyword.lower() for keyword in self.HEADER_KEYWORDS),
            query_params=tuple(
                (source, param)
                for source, param in (("query", self.QUERY_PARAM), ("ticket", self.TICKET_PARAM))
                if source in sources
            ),
            refusal=self.REFUSAL,
            backends=tuple(self.backends),
        )
        self._handshake = snapshot
        return snapshot

    def _raw(self) -> Mapping[str, Any]:
        value = getattr(settings, SETTING_NAME, {})
        # Read several times per handshake: check each settings object once
        # (override_settings installs a new one, so it is checked anew).
        if value is self._validated:
            return value  # type: ignore[no-any-return]
        if not isinstance(value, Mapping):
            raise ImproperlyConfigured(f"{SETTING_NAME} must be a dict, not {type(value).__name__}.")
        unknown = sorted(set(value) - set(DEFAULTS))
        if unknown:
            raise ImproperlyConfigured(
                f"{SETTING_NAME} has unknown key(s) {', '.join(map(repr, unknown))}; "
                f"the known keys are {', '.join(sorted(DEFAULTS))}."
            )
        self._validated = value
        return value

    def get(self, key: str) -> Any:
        if key not in DEFAULTS:
            raise ImproperlyConfigured(f"{SETTING_NAME}[{key!r}] is not a known setting.")
        return self._raw().get(key, DEFAULTS[key])

    @property
    def BACKENDS(self) -> list[str]:
        return list(_str_list(self.get("BACKENDS"), "BACKENDS"))

    @property
    def SOURCES(self) -> list[str]:
        sources = _str_list(self.get("SOURCES"), "SOURCES")
        for name in sources:
            if name not in SOURCE_NAMES:
                raise ImproperlyConfigured(
                    f"{SETTING_NAME}['SOURCES'] has unknown source {name!r}; "
                    f"choose from {', '.join(SOURCE_NAMES)}."
                )
        return list(sources)

    @property
    def SUBPROTOCOL(self) -> str:
        return str(self.get("SUBPROTOCOL"))

    @property
    def HEADER_KEYWORDS(self) -> list[str]:
        return list(_str_list(self.get("HEADER_KEYWORDS"), "HEADER_KEYWORDS"))

    @property
    def QUERY_PARAM(self) -> str:
        return str(self.get("QUERY_PARAM"))

    @property
    def REFUSAL(self) -> str:
        mode = self.get("REFUSAL")
        if mode not in REFUSAL_MODES:
            raise ImproperlyConfigured(
                f"{SETTING_NAME}['REFUSAL'] must be one of {', '.join(map(repr, REFUSAL_MODES))}, not {mode!r}."
            )
        return str(mode)

    @property
    def DRF_TOKEN_MODEL(self) -> str:
        return str(self.get("DRF_TOKEN_MODEL"))

    @property
    def TICKET_PARAM(self) -> str:
        return str(self.get("TICKET_PARAM"))

    @property
    def TICKET_TTL(self) -> int:
        return int(self.get("TICKET_TTL"))

    @property
    def TICKET_CACHE(self) -> str:
        return str(self.get("TICKET_CACHE"))

    @property
    def EXPIRY_GRACE(self) -> float:
        return float(self.get("EXPIRY_GRACE"))

    @property
    def REFRESH(self) -> bool:
        return bool(self.get("REFRESH"))

    @property
    def REVOKE_ON_LOGOUT(self) -> bool:
        return bool(self.get("REVOKE_ON_LOGOUT"))

    @property
    def CACHE(self) -> str | None:
        alias = self.get("CACHE")
        return None if alias is None else str(alias)

    @property
    def CACHE_TTL(self) -> int:
        return int(self.get("CACHE_TTL"))

    @property
    def JWKS(self) -> Mapping[str, Any]:
        value = self.get("JWKS")
        if not isinstance(value, Mapping):
            raise ImproperlyConfigured(f"{SETTING_NAME}['JWKS'] must be a dict.")
        return value

    @property
    def backends(self) -> list[tuple[str, BaseBackend]]:
        """The configured backends as ``(dotted path, instance)``, built once."""
        paths = tuple(self.BACKENDS)
        built = _backend_cache.get(paths)
        if built is None:
            built = [(path, load_backend(path, index)) for index, path in enumerate(paths)]
            _backend_cache[paths] = built
        return built


def load_backend(path: str, index: int = 0) -> BaseBackend:
    from channels_bearer.backends.base import BaseBackend

    try:
        backend_class = import_string(path)
    except ImportError as exc:
        raise ImproperlyConfigured(
            f"{SETTING_NAME}['BACKENDS'][{index}]: cannot import {path!r} ({exc})."
        ) from exc
    if not (isinstance(backend_class, type) and issubclass(backend_class, BaseBackend)):
        raise ImproperlyConfigured(
            f"{SETTING_NAME}['BACKENDS'][{index}]: {path!r} is not a subclass of "
            "channels_bearer.backends.BaseBackend."
        )
    return backend_class()


def _str_list(value: Any, key: str) -> Sequence[str]:
    if isinstance(value, str) or not isinstance(value, Sequence) or not all(isinstance(v, str) for v in value):
        raise ImproperlyConfigured(f"{SETTING_NAME}[{key!r}] must be a list of strings.")
    return value


@receiver(setting_changed)
def _clear_backend_cache(*, setting: str, **kwargs: Any) -> None:
    # Backends may read other projects' settings too (SIMPLE_JWT, REST_FRAMEWORK,
    # OAUTH2_PROVIDER), so drop them on any change: it only happens in tests.
    _backend_cache.clear()
    conf._handshake = None


conf = BearerSettings()
