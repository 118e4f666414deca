"""What ``CHANNELS_BEARER`` may hold, and the one validator of it.

:func:`validate` checks a raw setting and returns the parsed
:class:`BearerConfig` with every problem it found, as system-check messages:
``conf`` raises the first error when the setting is used
(:mod:`channels_bearer.conf`), ``manage.py check`` reports them all
(:mod:`channels_bearer.checks`). Each rule is written once, here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from django.core.checks import CheckMessage, Error
from django.utils.module_loading import import_string

from channels_bearer.check_ids import error, warning
from channels_bearer.defaults import (
    DEFAULTS,
    FLAG_KEYS,
    LIST_KEYS,
    REFUSAL_MODES,
    SECONDS_KEYS,
    SETTING_NAME,
    SOCKET_POLICIES,
    SOURCE_NAMES,
)
from channels_bearer.sources import is_tchar_token

if TYPE_CHECKING:
    from channels_bearer.backends.base import BaseBackend

# DEFAULTS, SETTING_NAME and SOURCE_NAMES live in channels_bearer.defaults; importable from here too.
__all__ = ["DEFAULTS", "SETTING_NAME", "SOURCE_NAMES", "BearerConfig", "unknown_keys", "validate"]

@dataclass(frozen=True)
class BearerConfig:
    """``CHANNELS_BEARER``, validated: what the package reads on every handshake."""

    raw: Mapping[str, Any] = field(repr=False, compare=False)
    backend_paths: tuple[str, ...]
    sources: frozenset[str]
    marker: str
    #: As configured (the first is what clients are told to send).
    header_keywords: tuple[str, ...]
    #: ``Authorization`` schemes, lowercased (RFC 7235: case-insensitive).
    header_schemes: frozenset[str]
    #: ``(source, parameter)`` for the enabled query-string sources.
    query_params: tuple[tuple[str, str], ...]
    refusal: str
    drf_token_model: str
    ticket_ttl: int
    ticket_cache: str
    expiry_grace: float
    refresh: bool
    revoke_on_logout: bool
    cache: str | None
    cache_ttl: int
    negative_cache_ttl: int
    auth_timeout: float
    drf_authentication_classes: tuple[str, ...] | None
    max_sockets_per_user: int | None
    max_sockets_policy: str
    #: ``(refusals, seconds)`` of ``REFUSAL_RATE``, or ``None``.
    refusal_rate: tuple[int, int] | None
    #: The header's name as ASGI carries it (lowercase bytes), or ``None``.
    client_address_header: bytes | None
    limits_cache: str
    socket_lease: float
    metrics: bool | None
    jwks: Mapping[str, Any]

    @cached_property
    def backends(self) -> tuple[tuple[str, BaseBackend], ...]:
        """The configured backends as ``(dotted path, instance)``, built on first use."""
        from channels_bearer.conf import load_backend

        return tuple((path, load_backend(path, index)) for index, path in enumerate(self.backend_paths))


# -- the validator ---------------------------------------------------------------------

Messages = list[CheckMessage]


def validate(raw: Any) -> tuple[BearerConfig | None, Messages]:
    """``(config, messages)``: the config is ``None`` when any message is an error."""
    if not isinstance(raw, Mapping):
        return None, [
            error("E001", f"{SETTING_NAME} must be a dict.", f'Write {SETTING_NAME} = {{"BACKENDS": [...], "SOURCES": [...]}}.')
        ]
    messages = unknown_keys("E002", SETTING_NAME, raw, DEFAULTS)
    values = {**DEFAULTS, **{k: v for k, v in raw.items() if k in DEFAULTS}}
    for check in (_check_lists, _check_backends, _check_sources, _check_names, _check_values, _check_operations):
        messages.extend(check(values))
    if any(isinstance(m, Error) for m in messages):
        return None, messages
    return _build(raw, values), messages


def unknown_keys(code: str, setting: str, raw: Mapping[Any, Any], known: Mapping[str, Any]) -> Messages:
    """The error for keys of ``raw`` that ``known`` does not list (a typo, usually)."""
    unknown = sorted(map(str, set(raw) - set(known)))
    if not unknown:
        return []
    return [
        error(
            code,
            f"{setting} has unknown key(s): {', '.join(map(repr, unknown))}.",
            f"The known keys are {', '.join(sorted(known))}. Check the spelling.",
        )
    ]


#: DRF's throttle periods, by their first letter.
_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_rate(rate: Any) -> tuple[int, int] | None:
    """``"20/min"`` → ``(20, 60)``, as DRF's throttles read rates; ``None`` for anything else."""
    if not isinstance(rate, str) or rate.count("/") != 1:
        return None
    count, period = rate.split("/")
    if not count.strip().isdigit() or int(count) < 1:
        return None
    period = period.strip().lower()
    if period not in ("s", "sec", "second", "m", "min", "minute", "h", "hour", "d", "day"):
        return None
    return int(count), _PERIODS[period[0]]


def _is_str_list(value: Any) -> bool:
    return not isinstance(value, str) and isinstance(value, Sequence) and all(isinstance(v, str) for v in value)


def _check_lists(values: dict[str, Any]) -> Messages:
    messages: Messages = [
        error("E010", f"{SETTING_NAME}[{key!r}] must be a list of strings.", f"For example {DEFAULTS[key]!r}.")
        for key in LIST_KEYS
        if not _is_str_list(values[key])
    ]
    return messages


def class_problem(path: str, base: type, kind: str) -> str | None:
    """What is wrong with ``path`` as the dotted path of a ``base`` subclass (``kind`` names it), or ``None``."""
    try:
        found = import_string(path)
    except ImportError as exc:
        return f"cannot be imported ({exc})"
    if isinstance(found, type) and issubclass(found, base):
        return None
    return f"is not {kind}"


def _check_backends(values: dict[str, Any]) -> Messages:
    from channels_bearer.backends.base import BaseBackend

    paths = values["BACKENDS"]
    if not _is_str_list(paths):
        return []
    if not paths:
        return [
            error(
                "E011",
                f"{SETTING_NAME}['BACKENDS'] is empty: no token can ever be accepted.",
                f"Add a backend, for example {DEFAULTS['BACKENDS'][0]!r}.",
            )
        ]
    return [
        error(
            "E003",
            f"{SETTING_NAME}['BACKENDS'][{index}] = {path!r} {problem}.",
            "Use the dotted path of a BaseBackend subclass, such as 'channels_bearer.backends.SimpleJWTBackend'.",
        )
        for index, path in enumerate(paths)
        if (problem := class_problem(path, BaseBackend, "a subclass of channels_bearer.backends.BaseBackend"))
    ]


def _check_sources(values: dict[str, Any]) -> Messages:
    sources = values["SOURCES"] if _is_str_list(values["SOURCES"]) else []
    messages: Messages = [
        error("E004", f"{SETTING_NAME}['SOURCES'] has unknown source {name!r}.", f"Choose from {', '.join(SOURCE_NAMES)}.")
        for name in sources
        if name not in SOURCE_NAMES
    ]
    keywords = values["HEADER_KEYWORDS"]
    if "header" in sources and _is_str_list(keywords) and not keywords:
        messages.append(
            error(
                "E015",
                f"{SETTING_NAME}['HEADER_KEYWORDS'] is empty while the 'header' source is enabled: "
                "no Authorization header can ever be read.",
                "Use ['Bearer'], or remove 'header' from SOURCES.",
            )
        )
    if "query" in sources:
        messages.append(
            warning(
                "W001",
                f"{SETTING_NAME}['SOURCES'] enables 'query': tokens in URLs end up in access logs "
                "(uvicorn logs every WebSocket request line with its query string), proxies and "
                "browser history.",
                "Prefer 'subprotocol' for browsers and 'header' for other clients, or 'ticket' "
                "for a single-use credential in the URL. Silence channels_bearer.W001 if you accept this.",
            )
        )
    return messages


def _check_names(values: dict[str, Any]) -> Messages:
    messages: Messages = []
    marker = values["SUBPROTOCOL"]
    if not isinstance(marker, str) or not is_tchar_token(marker):
        messages.append(
            error(
                "E007",
                f"{SETTING_NAME}['SUBPROTOCOL'] = {marker!r} is not a valid subprotocol name: "
                "browsers refuse anything but RFC 6455 token characters.",
                "Use letters, digits and '-._~' only, for example 'access_token'.",
            )
        )
    keywords = values["HEADER_KEYWORDS"] if _is_str_list(values["HEADER_KEYWORDS"]) else []
    messages += [
        error(
            "E008",
            f"{SETTING_NAME}['HEADER_KEYWORDS'] has {keyword!r}, which is not an Authorization scheme name.",
            "Use a single word such as 'Bearer'.",
        )
        for keyword in keywords
        if not is_tchar_token(keyword)
    ]
    messages += [
        error("E012", f"{SETTING_NAME}[{key!r}] must be a non-empty string.", f"The default is {DEFAULTS[key]!r}.")
        for key in ("QUERY_PARAM", "TICKET_PARAM", "DRF_TOKEN_MODEL", "TICKET_CACHE", "LIMITS_CACHE")
        if not isinstance(values[key], str) or not values[key]
    ]
    return messages


def _check_values(values: dict[str, Any]) -> Messages:
    messages: Messages = []
    if values["REFUSAL"] not in REFUSAL_MODES:
        messages.append(
            error(
                "E009",
                f"{SETTING_NAME}['REFUSAL'] = {values['REFUSAL']!r} is not a refusal mode.",
                f"Use one of {', '.join(map(repr, REFUSAL_MODES))}.",
            )
        )
    for key in SECONDS_KEYS:
        value = values[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            messages.append(
                error(
                    "E013",
                    f"{SETTING_NAME}[{key!r}] = {value!r} must be a number of seconds, zero or more.",
                    f"The default is {DEFAULTS[key]!r}.",
                )
            )
    messages += [
        error("E014", f"{SETTING_NAME}[{key!r}] = {values[key]!r} must be True or False.", f"The default is {DEFAULTS[key]!r}.")
        for key in FLAG_KEYS
        if not isinstance(values[key], bool)
    ]
    classes = values["DRF_AUTHENTICATION_CLASSES"]
    if classes is not None and not (_is_str_list(classes) and all(classes)):
        messages.append(
            error(
                "E017",
                f"{SETTING_NAME}['DRF_AUTHENTICATION_CLASSES'] = {classes!r} must be None or a list of dotted paths.",
                "For example ['rest_framework.authentication.TokenAuthentication'], or None for "
                "REST_FRAMEWORK['DEFAULT_AUTHENTICATION_CLASSES'].",
            )
        )
    if values["CACHE"] is not None and (not isinstance(values["CACHE"], str) or not values["CACHE"]):
        messages.append(
            error("E016", f"{SETTING_NAME}['CACHE'] = {values['CACHE']!r} must be a cache alias or None.", "For example 'default'.")
        )
    if not isinstance(values["JWKS"], Mapping):
        messages.append(
            error(
                "E026",
                f"{SETTING_NAME}['JWKS'] must be a dict.",
                'Write "JWKS": {"ISSUER": ..., "AUDIENCE": ..., "JWKS_URL": ...}.',
            )
        )
    return messages


def _check_operations(values: dict[str, Any]) -> Messages:
    """The operators' keys: the limits and the metrics."""
    messages: Messages = []
    cap = values["MAX_SOCKETS_PER_USER"]
    if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 1):
        messages.append(
            error("E018", f"{SETTING_NAME}['MAX_SOCKETS_PER_USER'] = {cap!r} must be a whole number, 1 or more, or None.", "For example 5.")
        )
    if values["MAX_SOCKETS_POLICY"] not in SOCKET_POLICIES:
        messages.append(
            error(
                "E019",
                f"{SETTING_NAME}['MAX_SOCKETS_POLICY'] = {values['MAX_SOCKETS_POLICY']!r} is not a policy.",
                f"Use one of {', '.join(map(repr, SOCKET_POLICIES))}.",
            )
        )
    if values["REFUSAL_RATE"] is not None and parse_rate(values["REFUSAL_RATE"]) is None:
        messages.append(
            error(
                "E032",
                f"{SETTING_NAME}['REFUSAL_RATE'] = {values['REFUSAL_RATE']!r} is not a rate.",
                "Write it as DRF's throttles do: '20/min' (s, sec, m, min, h, hour, d, day), or None.",
            )
        )
    header = values["CLIENT_ADDRESS_HEADER"]
    if header is not None and (not isinstance(header, str) or not is_tchar_token(header)):
        messages.append(
            error(
                "E033",
                f"{SETTING_NAME}['CLIENT_ADDRESS_HEADER'] = {header!r} is not a header name.",
                "The header your proxy sets, as sent: 'X-Forwarded-For' or 'X-Real-IP' (not Django's HTTP_X_... form).",
            )
        )
    if values["METRICS"] not in (None, True, False):
        messages.append(
            error("E035", f"{SETTING_NAME}['METRICS'] = {values['METRICS']!r} must be True, False or None.", "None: on when prometheus_client is installed.")
        )
    return messages


def _build(raw: Mapping[str, Any], values: dict[str, Any]) -> BearerConfig:
    sources = frozenset(values["SOURCES"])
    return BearerConfig(
        raw=raw,
        backend_paths=tuple(values["BACKENDS"]),
        sources=sources,
        marker=values["SUBPROTOCOL"],
        header_keywords=tuple(values["HEADER_KEYWORDS"]),
        header_schemes=frozenset(keyword.lower() for keyword in values["HEADER_KEYWORDS"]),
        query_params=tuple(
            (source, values[key])
            for source, key in (("query", "QUERY_PARAM"), ("ticket", "TICKET_PARAM"))
            if source in sources
        ),
        refusal=values["REFUSAL"],
        drf_token_model=values["DRF_TOKEN_MODEL"],
        ticket_ttl=int(values["TICKET_TTL"]),
        ticket_cache=values["TICKET_CACHE"],
        expiry_grace=float(values["EXPIRY_GRACE"]),
        refresh=values["REFRESH"],
        revoke_on_logout=values["REVOKE_ON_LOGOUT"],
        cache=values["CACHE"],
        cache_ttl=int(values["CACHE_TTL"]),
        negative_cache_ttl=int(values["NEGATIVE_CACHE_TTL"]),
        auth_timeout=float(values["AUTH_TIMEOUT"]),
        max_sockets_per_user=values["MAX_SOCKETS_PER_USER"],
        max_sockets_policy=values["MAX_SOCKETS_POLICY"],
        refusal_rate=None if values["REFUSAL_RATE"] is None else parse_rate(values["REFUSAL_RATE"]),
        client_address_header=(
            None if values["CLIENT_ADDRESS_HEADER"] is None else values["CLIENT_ADDRESS_HEADER"].lower().encode("latin-1")
        ),
        limits_cache=values["LIMITS_CACHE"],
        socket_lease=float(values["SOCKET_LEASE"]),
        metrics=values["METRICS"],
        drf_authentication_classes=(
            None if values["DRF_AUTHENTICATION_CLASSES"] is None else tuple(values["DRF_AUTHENTICATION_CLASSES"])
        ),
        jwks=values["JWKS"],
    )
