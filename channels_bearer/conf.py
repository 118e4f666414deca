"""The ``CHANNELS_BEARER`` setting, read through one object: ``conf``.

Like django-cors-headers' ``conf``, ``conf`` follows ``override_settings``:
it validates each ``CHANNELS_BEARER`` object once (:func:`channels_bearer.config.validate`)
and starts again when the setting is replaced or changed (``setting_changed``);
an invalid setting raises its first error as ``ImproperlyConfigured``.
Reading a dozen keys through Django's lazy settings on every handshake cost
more than the rest of the middleware together.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.checks import Error
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.module_loading import import_string

# The setting's names and its validator live in config.py; importable from
# here as they were.
from channels_bearer.config import DEFAULTS, SETTING_NAME, SOURCE_NAMES, BearerConfig, unknown_keys, validate

if TYPE_CHECKING:
    from channels_bearer.backends.base import BaseBackend

__all__ = ["DEFAULTS", "SETTING_NAME", "SOURCE_NAMES", "BearerConfig", "BearerSettings", "conf", "unknown_keys", "validate"]


def load_backend(path: str, index: int = 0) -> BaseBackend:
    from channels_bearer.backends.base import BaseBackend

    try:
        backend_class = import_string(path)
    except ImportError as exc:
        raise ImproperlyConfigured(f"{SETTING_NAME}['BACKENDS'][{index}]: cannot import {path!r} ({exc}).") from exc
    if not (isinstance(backend_class, type) and issubclass(backend_class, BaseBackend)):
        raise ImproperlyConfigured(
            f"{SETTING_NAME}['BACKENDS'][{index}]: {path!r} is not a subclass of channels_bearer.backends.BaseBackend."
        )
    return backend_class()


# -- the object the package reads --------------------------------------------------------


class BearerSettings:
    """``settings.CHANNELS_BEARER``, validated once per object, one attribute per key."""

    _config: BearerConfig | None = None

    def current(self) -> BearerConfig:
        """The validated setting; ``ImproperlyConfigured`` names the first problem."""
        raw = getattr(settings, SETTING_NAME, {})
        config = self._config
        if config is not None and config.raw is raw:
            return config
        config, messages = validate(raw)
        if config is None:
            first = next(m for m in messages if isinstance(m, Error))
            raise ImproperlyConfigured(f"{first.msg} {first.hint}")
        self._config = config
        return config

    def get(self, key: str) -> Any:
        """The value of ``key`` as configured (or its default)."""
        if key not in DEFAULTS:
            raise ImproperlyConfigured(f"{SETTING_NAME}[{key!r}] is not a known setting.")
        return self.current().raw.get(key, DEFAULTS[key])

    def reset(self) -> None:
        self._config = None

    @property
    def backends(self) -> tuple[tuple[str, BaseBackend], ...]:
        """The configured backends as ``(dotted path, instance)``, built once per setting."""
        return self.current().backends

    @property
    def BACKENDS(self) -> list[str]:
        return list(self.current().backend_paths)

    @property
    def SOURCES(self) -> list[str]:
        self.current()
        return list(self.get("SOURCES"))

    @property
    def SUBPROTOCOL(self) -> str:
        return self.current().marker

    @property
    def HEADER_KEYWORDS(self) -> list[str]:
        return list(self.current().header_keywords)

    @property
    def QUERY_PARAM(self) -> str:
        return str(self.get("QUERY_PARAM"))

    @property
    def TICKET_PARAM(self) -> str:
        return str(self.get("TICKET_PARAM"))

    @property
    def REFUSAL(self) -> str:
        return self.current().refusal

    @property
    def DRF_TOKEN_MODEL(self) -> str:
        return self.current().drf_token_model

    @property
    def TICKET_TTL(self) -> int:
        return self.current().ticket_ttl

    @property
    def TICKET_CACHE(self) -> str:
        return self.current().ticket_cache

    @property
    def EXPIRY_GRACE(self) -> float:
        return self.current().expiry_grace

    @property
    def REFRESH(self) -> bool:
        return self.current().refresh

    @property
    def REVOKE_ON_LOGOUT(self) -> bool:
        return self.current().revoke_on_logout

    @property
    def CACHE(self) -> str | None:
        return self.current().cache

    @property
    def CACHE_TTL(self) -> int:
        return self.current().cache_ttl

    @property
    def NEGATIVE_CACHE_TTL(self) -> int:
        return self.current().negative_cache_ttl

    @property
    def AUTH_TIMEOUT(self) -> float:
        return self.current().auth_timeout

    @property
    def DRF_AUTHENTICATION_CLASSES(self) -> tuple[str, ...] | None:
        return self.current().drf_authentication_classes

    @property
    def JWKS(self) -> Mapping[str, Any]:
        return self.current().jwks


@receiver(setting_changed)
def _forget_config(**kwargs: Any) -> None:
    # Backends may read other projects' settings when built (SIMPLE_JWT,
    # REST_FRAMEWORK, OAUTH2_PROVIDER), so start again on any change: it only
    # happens in tests.
    conf.reset()


conf = BearerSettings()
