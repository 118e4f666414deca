"""``CHANNELS_BEARER["JWKS"]``: its keys, and the one validator of them.

``JWKS`` describes one provider, or holds ``"PROVIDERS": [{...}, ...]``,
one dict of the same keys per provider (say Auth0 for customers and Azure
AD for staff); tokens are routed to a provider by their ``iss``.
:func:`check_jwks_providers` returns the parsed :class:`JWKSSettings` of
each with every problem found; the backend raises the first error,
``manage.py check`` reports them all.
"""

from __future__ import annotations

import ipaddress
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.core.checks import CheckMessage, Error
from django.utils.module_loading import import_string

from channels_bearer.check_ids import error, warning
from channels_bearer.config import SETTING_NAME, unknown_keys

SETTING = f"{SETTING_NAME}['JWKS']"

#: Every key ``CHANNELS_BEARER["JWKS"]`` accepts, with its default.
JWKS_DEFAULTS: dict[str, Any] = {
    "ISSUER": None,
    "AUDIENCE": None,
    "JWKS_URL": None,
    "DISCOVERY_URL": None,
    # None: each key's own algorithm (its "alg", else what its type and curve
    # imply); a list narrows that to these.
    "ALGORITHMS": None,
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
SECONDS_KEYS = ("LEEWAY", "CACHE_LIFESPAN", "REFRESH_COOLDOWN", "FETCH_TIMEOUT")
PROVIDERS = "PROVIDERS"

Messages = list[CheckMessage]


@dataclass(frozen=True)
class JWKSSettings:
    """``CHANNELS_BEARER["JWKS"]``, validated."""

    issuer: str
    audience: str | tuple[str, ...]
    jwks_url: str | None
    discovery_url: str | None
    #: ``None``: each key's own algorithm; else the allowed ones.
    algorithms: frozenset[str] | None
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


def check_jwks_providers(raw: Any) -> tuple[tuple[JWKSSettings, ...] | None, Messages]:
    """Validate ``CHANNELS_BEARER["JWKS"]``, either form: each provider's settings, or ``None`` and why not."""
    if not isinstance(raw, Mapping):
        return None, []  # the core validator's to report (channels_bearer.E026)
    if PROVIDERS not in raw:
        config, found = check_jwks_settings(raw)
        return (None if config is None else (config,)), found
    entries = raw[PROVIDERS]
    others = sorted(map(str, set(raw) - {PROVIDERS}))
    if others:
        return None, [
            error(
                "E044",
                f"{SETTING} has {PROVIDERS} and also {', '.join(map(repr, others))}: with several providers, "
                "every key belongs in a provider's own dict.",
                f"Move {', '.join(others)} into each entry of {PROVIDERS}.",
            )
        ]
    if isinstance(entries, (str, bytes)) or not isinstance(entries, (list, tuple)) or not entries:
        return None, [error("E044", f"{SETTING}[{PROVIDERS!r}] must be a non-empty list of dicts.", 'For example [{"ISSUER": ..., ...}, {...}].')]
    messages: Messages = []
    configs: list[JWKSSettings] = []
    for index, entry in enumerate(entries):
        where = f"{SETTING}[{PROVIDERS!r}][{index}]"
        if not isinstance(entry, Mapping):
            messages.append(error("E044", f"{where} must be a dict.", "Each provider is a dict with ISSUER, AUDIENCE, JWKS_URL, ..."))
            continue
        config, found = check_jwks_settings(entry, where)
        messages.extend(found)
        if config is not None:
            configs.append(config)
    issuers = [config.issuer for config in configs]
    for issuer in sorted({i for i in issuers if issuers.count(i) > 1}):
        messages.append(
            error(
                "E045",
                f"{SETTING}[{PROVIDERS!r}] has more than one provider with ISSUER {issuer!r}: a token could not "
                "be routed to one of them.",
                "Give each provider its own issuer; for several audiences of one issuer, make AUDIENCE a list.",
            )
        )
    if any(isinstance(m, Error) for m in messages):
        return None, messages
    return tuple(configs), messages


def check_jwks_settings(raw: Any, where: str = SETTING) -> tuple[JWKSSettings | None, Messages]:
    """Validate one provider's settings (``where`` names it in the messages): the settings, or ``None`` and why not."""
    if not isinstance(raw, Mapping):
        return None, []  # the core validator's to report (channels_bearer.E026)
    messages = unknown_keys("E040", where, raw, JWKS_DEFAULTS)
    values = {**JWKS_DEFAULTS, **raw}
    for check in (_check_identity, _check_urls, _check_algorithms, _check_seconds, _check_users):
        messages.extend(check(values, where))
    if any(isinstance(m, Error) for m in messages):
        return None, messages
    return _build(values), messages


def _is_str_list(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_identity(values: dict[str, Any], where: str) -> Messages:
    messages: Messages = []
    issuer = values["ISSUER"]
    if not isinstance(issuer, str) or not issuer:
        messages.append(
            error(
                "E022",
                f"{where}['ISSUER'] is not set: tokens cannot be told apart from other issuers' tokens.",
                "Set it to the provider's issuer, exactly as in the tokens' 'iss' claim and its "
                "discovery document, e.g. 'https://example.eu.auth0.com/' (trailing slash included).",
            )
        )
    audience = values["AUDIENCE"]
    valid = bool(audience) if isinstance(audience, str) else _is_str_list(audience) and len(audience) > 0 and all(audience)
    if not valid:
        messages.append(
            error(
                "E023",
                f"{where}['AUDIENCE'] is not set: a token issued for another API of the same provider "
                "would be accepted.",
                "Set it to this API's identifier as it appears in the tokens' 'aud' claim (a string, or a list of them).",
            )
        )
    return messages


def url_is_plain_http(url: str) -> bool:
    """Whether ``url`` is fetched unprotected: not https, and not to loopback."""
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


def _check_urls(values: dict[str, Any], where: str) -> Messages:
    messages: Messages = []
    jwks_url, discovery_url = values["JWKS_URL"], values["DISCOVERY_URL"]
    for key, url in (("JWKS_URL", jwks_url), ("DISCOVERY_URL", discovery_url)):
        if url is None:
            continue
        if not isinstance(url, str) or urllib.parse.urlsplit(url).scheme not in ("http", "https"):
            messages.append(
                error("E024", f"{where}['{key}'] must be an http(s) URL.", "For example 'https://issuer.example/.well-known/jwks.json'.")
            )
        elif url_is_plain_http(url):
            messages.append(
                warning(
                    "W020",
                    f"{where}['{key}'] is fetched over plain HTTP: whoever can alter the response can sign tokens.",
                    "Use the provider's https:// URL (plain http is fine on loopback only).",
                )
            )
    if jwks_url is None and discovery_url is None:
        hint = "Set JWKS_URL to the provider's key set URL"
        issuer = values["ISSUER"]
        if isinstance(issuer, str) and issuer:
            hint += f", or DISCOVERY_URL to {issuer.rstrip('/') + '/.well-known/openid-configuration'!r}"
        messages.append(error("E041", f"{where} has neither JWKS_URL nor DISCOVERY_URL: no key to check signatures with.", hint + "."))
    elif jwks_url is not None and discovery_url is not None:
        messages.append(warning("W021", f"{where} sets both JWKS_URL and DISCOVERY_URL; JWKS_URL is used.", "Remove one of them."))
    return messages


def _check_algorithms(values: dict[str, Any], where: str) -> Messages:
    algorithms = values["ALGORITHMS"]
    if algorithms is None:
        return []
    if isinstance(algorithms, str) or not _is_str_list(algorithms) or not algorithms:
        return [
            error(
                "E025",
                f"{where}['ALGORITHMS'] must be None or a non-empty list of algorithm names.",
                "Leave it out to accept each key's own algorithm, or narrow it, e.g. ['RS256'].",
            )
        ]
    bad = [a for a in algorithms if a not in ASYMMETRIC_ALGORITHMS]
    if not bad:
        return []
    return [
        error(
            "E025",
            f"{where}['ALGORITHMS'] has {', '.join(map(repr, bad))}: only public-key signature algorithms "
            "may be used with a JWKS ('none' is no signature; with HS* anyone holding the published key could sign).",
            f"Choose from {', '.join(sorted(ASYMMETRIC_ALGORITHMS))}; most providers use 'RS256'.",
        )
    ]


def _check_seconds(values: dict[str, Any], where: str) -> Messages:
    messages: Messages = []
    for key in SECONDS_KEYS:
        value = values[key]
        if not _is_number(value) or value < 0 or (key == "FETCH_TIMEOUT" and value == 0):
            messages.append(
                error("E027", f"{where}['{key}'] must be a non-negative number of seconds.", f"The default is {JWKS_DEFAULTS[key]}.")
            )
    timeout = values["FETCH_TIMEOUT"]
    if _is_number(timeout) and timeout >= 5:
        messages.append(
            warning(
                "W022",
                f"{where}['FETCH_TIMEOUT'] is {timeout:g} s: a handshake waits that long for a "
                "slow authorization server, and daphne drops handshakes after about 5 s.",
                "Keep it short, e.g. 3 (the default); cached keys keep working while the server is down.",
            )
        )
    return messages


def _check_users(values: dict[str, Any], where: str) -> Messages:
    messages: Messages = []
    hook = values["USER_FROM_CLAIMS"]
    if hook is not None:
        try:
            if not isinstance(hook, str) or not callable(import_string(hook)):
                raise ImportError("not a dotted path to a callable")
        except ImportError as exc:
            messages.append(
                error(
                    "E028",
                    f"{where}['USER_FROM_CLAIMS'] = {hook!r} cannot be imported ({exc}).",
                    "Give the dotted path of a function hook(claims: dict) -> user or None.",
                )
            )
    for key in ("USER_CLAIM", "USER_FIELD"):
        if not isinstance(values[key], str) or not values[key]:
            messages.append(error("E029", f"{where}['{key}'] must be a non-empty string.", f"The default is {JWKS_DEFAULTS[key]!r}."))
    scope_claim = values["SCOPE_CLAIM"]
    if scope_claim is not None and (not isinstance(scope_claim, str) or not scope_claim):
        messages.append(error("E042", f"{where}['SCOPE_CLAIM'] must be a claim name or None.", "None reads 'scope' or 'scp'."))
    field_name = values["USER_FIELD"]
    if hook is None and isinstance(field_name, str) and field_name:
        from django.contrib.auth import get_user_model
        from django.core.exceptions import FieldDoesNotExist

        user_model = get_user_model()
        try:
            user_model._meta.get_field(field_name)
        except FieldDoesNotExist:
            messages.append(
                error(
                    "E043",
                    f"{where}['USER_FIELD'] = {field_name!r} is not a field of {user_model._meta.label}.",
                    f"Use a unique field such as {user_model.USERNAME_FIELD!r}.",
                )
            )
    return messages


def _build(values: dict[str, Any]) -> JWKSSettings:
    audience = values["AUDIENCE"]
    jwks_url = values["JWKS_URL"]
    return JWKSSettings(
        issuer=values["ISSUER"],
        audience=audience if isinstance(audience, str) else tuple(audience),
        jwks_url=jwks_url,
        discovery_url=None if jwks_url is not None else values["DISCOVERY_URL"],
        algorithms=None if values["ALGORITHMS"] is None else frozenset(values["ALGORITHMS"]),
        leeway=float(values["LEEWAY"]),
        user_claim=values["USER_CLAIM"],
        user_field=values["USER_FIELD"],
        create_users=bool(values["CREATE_USERS"]),
        user_from_claims=values["USER_FROM_CLAIMS"],
        scope_claim=values["SCOPE_CLAIM"],
        cache_lifespan=float(values["CACHE_LIFESPAN"]),
        refresh_cooldown=float(values["REFRESH_COOLDOWN"]),
        fetch_timeout=float(values["FETCH_TIMEOUT"]),
    )
