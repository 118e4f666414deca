"""What ``CHANNELS_BEARER`` may hold, and the one validator of it.

:func:`validate` checks a raw setting and returns the parsed
:class:`BearerConfig` with every problem it found, as system-check messages:
``conf`` raises the first error when the setting is used
(:mod:`channels_bearer.conf`), ``manage.py check`` reports them all
(:mod:`channels_bearer.checks`). Each rule is written once, in
:mod:`channels_bearer.config_rules`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from django.core.checks import CheckMessage, Error

from channels_bearer.check_ids import error
from channels_bearer.config_rules import RULES, parse_rate
from channels_bearer.defaults import DEFAULTS, SETTING_NAME, SOURCE_NAMES

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
    for rule in RULES:
        messages.extend(rule(values))
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
