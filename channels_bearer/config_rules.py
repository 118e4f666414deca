"""The rules each key of ``CHANNELS_BEARER`` must follow: one function per group of keys.

:func:`channels_bearer.config.validate` runs every function of :data:`RULES`
on the setting merged over the defaults; each returns the system-check
messages for its keys. A rule is written here once, and nowhere else.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from django.core.checks import CheckMessage
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

__all__ = ["RULES", "class_problem", "parse_rate"]

Messages = list[CheckMessage]


#: DRF's throttle periods, by their first letter.
_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
#: The spellings of them accepted (DRF reads only the first letter).
_PERIOD_WORDS = frozenset(
    ("s", "sec", "secs", "second", "seconds", "m", "min", "mins", "minute", "minutes")
    + ("h", "hr", "hrs", "hour", "hours", "d", "day", "days")
)


def parse_rate(rate: Any) -> tuple[int, int] | None:
    """``"20/min"`` → ``(20, 60)``, as DRF's throttles read rates; ``None`` for anything else."""
    if not isinstance(rate, str) or rate.count("/") != 1:
        return None
    count, period = rate.split("/")
    if not count.strip().isdigit() or int(count) < 1:
        return None
    period = period.strip().lower()
    # A typo such as "20/mon" is refused rather than read as a minute.
    if period not in _PERIOD_WORDS:
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
                "Write it as DRF's throttles do: '20/min' (s, m, min, h, hour, d, day, and their plurals), or None.",
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
    lease = values["SOCKET_LEASE"]
    if isinstance(lease, (int, float)) and not isinstance(lease, bool) and 0 <= lease < 1:
        # (Not a number, or negative: E013.) Leases are renewed every third of a
        # lease but at most ten times a second; under a second they lapse between
        # renewals, and every socket would stop counting at once.
        messages.append(
            error("E036", f"{SETTING_NAME}['SOCKET_LEASE'] = {lease!r} is under 1 second.", f"The default is {DEFAULTS['SOCKET_LEASE']!r}.")
        )
    if values["METRICS"] not in (None, True, False):
        messages.append(
            error("E035", f"{SETTING_NAME}['METRICS'] = {values['METRICS']!r} must be True, False or None.", "None: on when prometheus_client is installed.")
        )
    return messages


#: Every rule, in the order its messages are reported.
RULES = (_check_lists, _check_backends, _check_sources, _check_names, _check_values, _check_operations)
