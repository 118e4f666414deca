"""System checks for ``CHANNELS_BEARER`` (``manage.py check``).

Each message names the key at fault and each hint says what to write instead.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping, Sequence
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.utils.module_loading import import_string

from channels_bearer.conf import DEFAULTS, REFUSAL_MODES, SETTING_NAME, SOURCE_NAMES
from channels_bearer.sources import is_token68ish

DRF_BACKEND = "channels_bearer.backends.DRFTokenBackend"
SIMPLEJWT_BACKEND = "channels_bearer.backends.SimpleJWTBackend"


def _is_str_list(value: Any) -> bool:
    return not isinstance(value, str) and isinstance(value, Sequence) and all(isinstance(v, str) for v in value)


def _per_process_cache(alias: Any) -> bool:
    from django.core.cache.backends.locmem import LocMemCache

    config = (getattr(settings, "CACHES", None) or {}).get(alias) if isinstance(alias, str) else None
    if not isinstance(config, Mapping):
        return False
    try:
        backend = import_string(str(config.get("BACKEND", "")))
    except ImportError:
        return False  # Django's own checks report a broken CACHES
    return isinstance(backend, type) and issubclass(backend, LocMemCache)


def _layer_reaches_other_processes() -> bool:
    from channels.layers import InMemoryChannelLayer

    config = (getattr(settings, "CHANNEL_LAYERS", None) or {}).get("default")
    if not isinstance(config, Mapping):
        return False
    try:
        backend = import_string(str(config.get("BACKEND", "")))
    except ImportError:
        return False
    return not (isinstance(backend, type) and issubclass(backend, InMemoryChannelLayer))


@register(Tags.security, Tags.compatibility)
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    raw = getattr(settings, SETTING_NAME, {})
    if not isinstance(raw, Mapping):
        return [
            Error(
                f"{SETTING_NAME} must be a dict.",
                hint=f'Write {SETTING_NAME} = {{"BACKENDS": [...], "SOURCES": [...]}}.',
                id="channels_bearer.E001",
            )
        ]
    errors: list[CheckMessage] = []
    unknown = sorted(set(raw) - set(DEFAULTS))
    if unknown:
        errors.append(
            Error(
                f"{SETTING_NAME} has unknown key(s): {', '.join(unknown)}.",
                hint=f"Known keys: {', '.join(sorted(DEFAULTS))}. Check the spelling.",
                id="channels_bearer.E002",
            )
        )
    values = {**DEFAULTS, **{k: v for k, v in raw.items() if k in DEFAULTS}}

    for key in ("BACKENDS", "SOURCES", "HEADER_KEYWORDS"):
        if not _is_str_list(values[key]):
            errors.append(
                Error(
                    f"{SETTING_NAME}['{key}'] must be a list of strings.",
                    hint=f"For example {DEFAULTS[key]!r}.",
                    id="channels_bearer.E010",
                )
            )
    backends = values["BACKENDS"] if _is_str_list(values["BACKENDS"]) else []
    sources = values["SOURCES"] if _is_str_list(values["SOURCES"]) else []

    from channels_bearer.backends.base import BaseBackend

    for index, path in enumerate(backends):
        try:
            backend_class = import_string(path)
        except ImportError as exc:
            errors.append(
                Error(
                    f"{SETTING_NAME}['BACKENDS'][{index}] = {path!r} cannot be imported ({exc}).",
                    hint="Use a dotted path such as 'channels_bearer.backends.SimpleJWTBackend'.",
                    id="channels_bearer.E003",
                )
            )
            continue
        if not (isinstance(backend_class, type) and issubclass(backend_class, BaseBackend)):
            errors.append(
                Error(
                    f"{SETTING_NAME}['BACKENDS'][{index}] = {path!r} is not a backend.",
                    hint="A backend subclasses channels_bearer.backends.BaseBackend.",
                    id="channels_bearer.E003",
                )
            )
            continue
        # Each backend checks its own settings and optional dependency.
        errors.extend(backend_class.check())
    if not backends and _is_str_list(values["BACKENDS"]):
        errors.append(
            Error(
                f"{SETTING_NAME}['BACKENDS'] is empty: no token can ever be accepted.",
                hint=f"Add a backend, for example {DRF_BACKEND!r}.",
                id="channels_bearer.E011",
            )
        )

    for name in sources:
        if name not in SOURCE_NAMES:
            errors.append(
                Error(
                    f"{SETTING_NAME}['SOURCES'] has unknown source {name!r}.",
                    hint=f"Choose from {', '.join(SOURCE_NAMES)}.",
                    id="channels_bearer.E004",
                )
            )

    if DRF_BACKEND in backends and not apps.is_installed("rest_framework.authtoken"):
        errors.append(
            Error(
                f"{SETTING_NAME}['BACKENDS'] uses DRFTokenBackend, but 'rest_framework.authtoken' "
                "is not in INSTALLED_APPS.",
                hint="Add 'rest_framework' and 'rest_framework.authtoken' to INSTALLED_APPS "
                "(pip install channels-bearer[drf]).",
                id="channels_bearer.E005",
            )
        )
    if SIMPLEJWT_BACKEND in backends and importlib.util.find_spec("rest_framework_simplejwt") is None:
        errors.append(
            Error(
                f"{SETTING_NAME}['BACKENDS'] uses SimpleJWTBackend, but djangorestframework-simplejwt "
                "is not installed.",
                hint="pip install channels-bearer[simplejwt], or remove the backend.",
                id="channels_bearer.E006",
            )
        )

    marker = values["SUBPROTOCOL"]
    if not isinstance(marker, str) or not is_token68ish(marker):
        errors.append(
            Error(
                f"{SETTING_NAME}['SUBPROTOCOL'] = {marker!r} is not a valid subprotocol name: "
                "browsers refuse anything but RFC 6455 token characters.",
                hint="Use letters, digits and '-._~' only, for example 'access_token'.",
                id="channels_bearer.E007",
            )
        )
    for keyword in values["HEADER_KEYWORDS"] if _is_str_list(values["HEADER_KEYWORDS"]) else []:
        if not is_token68ish(keyword):
            errors.append(
                Error(
                    f"{SETTING_NAME}['HEADER_KEYWORDS'] has {keyword!r}, which is not an "
                    "Authorization scheme name.",
                    hint="Use a single word such as 'Bearer'.",
                    id="channels_bearer.E008",
                )
            )
    if values["REFUSAL"] not in REFUSAL_MODES:
        errors.append(
            Error(
                f"{SETTING_NAME}['REFUSAL'] = {values['REFUSAL']!r} is not a refusal mode.",
                hint=f"Use one of {', '.join(map(repr, REFUSAL_MODES))}.",
                id="channels_bearer.E009",
            )
        )
    for key in ("QUERY_PARAM", "TICKET_PARAM"):
        if not isinstance(values[key], str) or not values[key]:
            errors.append(
                Error(
                    f"{SETTING_NAME}['{key}'] must be a non-empty string.",
                    hint=f"The default is {DEFAULTS[key]!r}.",
                    id="channels_bearer.E012",
                )
            )

    for key in ("TICKET_TTL", "EXPIRY_GRACE", "CACHE_TTL"):
        value = values[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            errors.append(
                Error(
                    f"{SETTING_NAME}['{key}'] = {value!r} must be a number of seconds, zero or more.",
                    hint=f"The default is {DEFAULTS[key]!r}.",
                    id="channels_bearer.E013",
                )
            )
    for key in ("REFRESH", "REVOKE_ON_LOGOUT"):
        if not isinstance(values[key], bool):
            errors.append(
                Error(
                    f"{SETTING_NAME}['{key}'] = {values[key]!r} must be True or False.",
                    hint=f"The default is {DEFAULTS[key]!r}.",
                    id="channels_bearer.E014",
                )
            )
    if "header" in sources and _is_str_list(values["HEADER_KEYWORDS"]) and not values["HEADER_KEYWORDS"]:
        errors.append(
            Error(
                f"{SETTING_NAME}['HEADER_KEYWORDS'] is empty while the 'header' source is enabled: "
                "no Authorization header can ever be read.",
                hint="Use ['Bearer'], or remove 'header' from SOURCES.",
                id="channels_bearer.E015",
            )
        )

    if "query" in sources:
        errors.append(
            Warning(
                f"{SETTING_NAME}['SOURCES'] enables 'query': tokens in URLs end up in access logs "
                "(uvicorn logs every WebSocket request line with its query string), proxies and "
                "browser history.",
                hint="Prefer 'subprotocol' for browsers and 'header' for other clients, or 'ticket' "
                "for a single-use credential in the URL. Silence channels_bearer.W001 if you accept this.",
                id="channels_bearer.W001",
            )
        )
    if _per_process_cache(values["CACHE"]) and not _layer_reaches_other_processes():
        errors.append(
            Warning(
                f"{SETTING_NAME}['CACHE'] = {values['CACHE']!r} is a per-process cache (LocMemCache) and the "
                "channel layer cannot reach other processes: a token revoked in one process stays "
                "cached in the others for up to CACHE_TTL seconds.",
                hint="Use channels_redis (RedisChannelLayer or RedisPubSubChannelLayer) in CHANNEL_LAYERS, "
                "which carries revocations to every process, or a shared cache (Redis). Silence "
                "channels_bearer.W003 if a single process serves every WebSocket and makes every revocation.",
                id="channels_bearer.W003",
            )
        )
    if not getattr(settings, "CHANNEL_LAYERS", None):
        errors.append(
            Warning(
                "No channel layer is configured (CHANNEL_LAYERS): revoking a token or a user "
                "closes sockets in the process that revokes it only, and consumers cannot join "
                "the revocation groups of other processes.",
                hint="Configure channels_redis.core.RedisChannelLayer in CHANNEL_LAYERS for "
                "production (channels.layers.InMemoryChannelLayer for a single process).",
                id="channels_bearer.W002",
            )
        )
    return errors
