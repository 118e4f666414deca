"""System checks (``manage.py check``): the setting, each backend, the deployment.

The setting's rules live in :func:`channels_bearer.conf.validate` (one
validator for the checks and for ``conf``); each backend checks its own
settings and optional dependency in its ``check()`` classmethod, subclasses
included; this module adds what depends on the rest of the project (channel
layers, caches). The ids and their meanings: :mod:`channels_bearer.check_ids`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Tags, register
from django.utils.module_loading import import_string

from channels_bearer.check_ids import error, warning
from channels_bearer.config import DEFAULTS, SETTING_NAME, validate


@register(Tags.security, Tags.compatibility)
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    raw = getattr(settings, SETTING_NAME, {})
    _, messages = validate(raw)
    for backend_class in _backend_classes(raw):
        messages.extend(backend_class.check())
    messages.extend(check_deployment(raw))
    return messages


def _backend_classes(raw: Any) -> list[Any]:
    """The configured backend classes that import (validate() reports the others)."""
    from channels_bearer.backends.base import BaseBackend

    paths = raw.get("BACKENDS", DEFAULTS["BACKENDS"]) if isinstance(raw, Mapping) else []
    if isinstance(paths, str) or not isinstance(paths, (list, tuple)):
        return []
    found = []
    for path in paths:
        try:
            backend_class = import_string(path) if isinstance(path, str) else None
        except ImportError:
            continue
        if isinstance(backend_class, type) and issubclass(backend_class, BaseBackend):
            found.append(backend_class)
    return found


def check_deployment(raw: Any) -> list[CheckMessage]:
    """What the setting means together with ``CHANNEL_LAYERS`` and ``CACHES``."""
    messages: list[CheckMessage] = []
    alias = raw.get("CACHE") if isinstance(raw, Mapping) else None
    if _per_process_cache(alias) and not _layer_reaches_other_processes():
        messages.append(
            warning(
                "W003",
                f"{SETTING_NAME}['CACHE'] = {alias!r} is a per-process cache (LocMemCache) and the "
                "channel layer cannot reach other processes: a token revoked in one process stays "
                "cached in the others for up to CACHE_TTL seconds.",
                "Use channels_redis (RedisChannelLayer or RedisPubSubChannelLayer) in CHANNEL_LAYERS, "
                "which carries revocations to every process, or a shared cache (Redis). Silence "
                "channels_bearer.W003 if a single process serves every WebSocket and makes every revocation.",
            )
        )
    if not getattr(settings, "CHANNEL_LAYERS", None):
        messages.append(
            warning(
                "W002",
                "No channel layer is configured (CHANNEL_LAYERS): revoking a token or a user "
                "closes sockets in the process that revokes it only, and no other process hears of it.",
                "Configure channels_redis.core.RedisChannelLayer in CHANNEL_LAYERS for "
                "production (channels.layers.InMemoryChannelLayer for a single process).",
            )
        )
    messages.extend(_check_operations(raw))
    return messages


def _check_operations(raw: Any) -> list[CheckMessage]:
    """Metrics and limits: what they need from the environment and from CACHES."""
    import importlib.util

    from channels_bearer.limits import redis_url

    raw = raw if isinstance(raw, Mapping) else {}
    messages: list[CheckMessage] = []
    if raw.get("METRICS") is True and importlib.util.find_spec("prometheus_client") is None:
        messages.append(
            error(
                "E034",
                f"{SETTING_NAME}['METRICS'] is True, but prometheus_client is not installed.",
                'pip install "channels-bearer[prometheus]", or set METRICS to None (on when it is installed).',
            )
        )
    limited = [key for key in ("MAX_SOCKETS_PER_USER", "REFUSAL_RATE") if raw.get(key) is not None]
    alias = raw.get("LIMITS_CACHE", DEFAULTS["LIMITS_CACHE"])
    if limited and isinstance(alias, str) and redis_url(alias) is None:
        messages.append(
            warning(
                "W004",
                f"{SETTING_NAME}[{limited[0]!r}] counts in each process on its own: LIMITS_CACHE = {alias!r} "
                "is not a Redis cache, so a user gets the cap, and an address the rate, once per process.",
                "Point LIMITS_CACHE at a django.core.cache.backends.redis.RedisCache alias (or django-redis). "
                "Silence channels_bearer.W004 if one process serves every WebSocket.",
            )
        )
    return messages


def _backend_class(dotted: Any) -> type | None:
    try:
        found = import_string(str(dotted))
    except ImportError:
        return None  # Django's own checks report a broken CACHES or CHANNEL_LAYERS
    return found if isinstance(found, type) else None


def _per_process_cache(alias: Any) -> bool:
    from django.core.cache.backends.locmem import LocMemCache

    config = (getattr(settings, "CACHES", None) or {}).get(alias) if isinstance(alias, str) else None
    backend = _backend_class(config.get("BACKEND", "")) if isinstance(config, Mapping) else None
    return backend is not None and issubclass(backend, LocMemCache)


def _layer_reaches_other_processes() -> bool:
    from channels.layers import InMemoryChannelLayer

    config = (getattr(settings, "CHANNEL_LAYERS", None) or {}).get("default")
    backend = _backend_class(config.get("BACKEND", "")) if isinstance(config, Mapping) else None
    return backend is not None and not issubclass(backend, InMemoryChannelLayer)
