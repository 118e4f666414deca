"""Finding the credential in a WebSocket handshake scope.

Each source reads one place a client can put a token. ``extract()`` reads every
enabled source, refuses a handshake that presents more than one credential
(RFC 6750 section 2: one method per request), and returns the scope values the
inner application should see instead: the subprotocol list without the marker
and token entries, the query string without ``access_token`` / ``ticket``.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus, unquote_to_bytes

from typing import TYPE_CHECKING

from channels_bearer.exceptions import InvalidRequest

if TYPE_CHECKING:
    from channels_bearer.config import BearerConfig

#: Prefix of a subprotocol entry carrying a token that is not an RFC 6455
#: token as it stands (Kubernetes and Phoenix use the same shape).
ENCODED_PREFIX = "base64url.bearer."

# RFC 7230 tchar: what a subprotocol value (and an auth-scheme) may hold.
# A browser refuses anything else in new WebSocket(url, protocols).
TCHARS = frozenset("!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


def is_tchar_token(value: str) -> bool:
    """Whether ``value`` is an RFC 7230 token: a subprotocol entry (or auth-scheme) as it stands."""
    return bool(value) and all(ch in TCHARS for ch in value)


@dataclass(frozen=True)
class Credential:
    """A token found in the handshake, and where."""

    source: str
    token: str = field(repr=False)

    def __repr__(self) -> str:
        return f"<Credential source={self.source!r}>"


@dataclass(frozen=True)
class Extraction:
    credential: Credential | None
    #: ``scope["subprotocols"]`` for the inner app: marker and token removed.
    subprotocols: list[str]
    #: ``scope["query_string"]`` for the inner app: token parameters removed.
    query_string: bytes
    #: Whether the client offered the marker: the answer must then name it
    #: (or an application subprotocol it also offered), or the browser fails.
    marker_offered: bool


def extract(scope: dict[str, Any], settings: BearerConfig) -> Extraction:
    """Read every enabled source of ``settings``; raise ``InvalidRequest`` on ambiguity or junk."""
    sources = settings.sources
    offered = scope.get("subprotocols")
    subprotocols = [str(s) for s in offered] if offered else []
    query_string = scope.get("query_string") or b""
    found: list[Credential] = []
    marker_offered = False

    if subprotocols and "subprotocol" in sources:
        token, subprotocols, marker_offered = from_subprotocols(subprotocols, settings.marker)
        if token is not None:
            found.append(Credential("subprotocol", token))

    if "header" in sources:
        token = _header_token(scope.get("headers") or (), settings.header_schemes)
        if token is not None:
            found.append(Credential("header", token))

    if query_string and settings.query_params:
        values, query_string = pop_query_params(query_string, [param for _, param in settings.query_params])
        for source, param in settings.query_params:
            if param in values:
                found.append(Credential(source, values[param]))

    if len(found) > 1:
        raise InvalidRequest("credentials presented in more than one place")
    return Extraction(found[0] if found else None, subprotocols, query_string, marker_offered)


def from_subprotocols(offered: Sequence[str], marker: str) -> tuple[str | None, list[str], bool]:
    """Return ``(token, remaining entries, marker offered)``.

    The token is the entry right after the marker, raw or as
    ``base64url.bearer.<base64url>``. The browser keeps the list's order, so
    position is what ties the token to the marker.
    """
    entries = [entry.strip() for entry in offered]
    markers = [i for i, entry in enumerate(entries) if entry == marker]
    encoded = [i for i, entry in enumerate(entries) if entry.startswith(ENCODED_PREFIX)]
    if not markers:
        if encoded:
            raise InvalidRequest(f"a {ENCODED_PREFIX} entry must follow the subprotocol marker")
        return None, entries, False
    if len(markers) > 1:
        raise InvalidRequest("the subprotocol marker is offered more than once")
    at = markers[0]
    if at + 1 >= len(entries) or not entries[at + 1]:
        raise InvalidRequest("the subprotocol marker has no token after it")
    if any(i != at + 1 for i in encoded):
        raise InvalidRequest("more than one token entry in the subprotocol list")
    token = decode_subprotocol_entry(entries[at + 1])
    rest = entries[:at] + entries[at + 2 :]
    # A copy of the token anywhere else in the list would reach the
    # application, which may answer it: the token must never be echoed.
    if entries[at + 1] in rest or token in rest:
        raise InvalidRequest("the token is offered more than once in the subprotocol list")
    return token, rest, True


def subprotocol_entry(token: str) -> str:
    """The ``Sec-WebSocket-Protocol`` entry a client sends for ``token``.

    The token itself when every character is allowed in a subprotocol (DRF
    keys, JWTs), else ``base64url.bearer.<base64url of the UTF-8, no padding>``,
    as ``bearer-websocket.js`` sends it.
    """
    if is_tchar_token(token):
        return token
    encoded = base64.urlsafe_b64encode(token.encode("utf-8")).rstrip(b"=").decode("ascii")
    return ENCODED_PREFIX + encoded


def decode_subprotocol_entry(entry: str) -> str:
    if not entry.startswith(ENCODED_PREFIX):
        return entry
    encoded = entry[len(ENCODED_PREFIX) :]
    # Lenient on purpose: accept padding and the standard alphabet too, since
    # hand-written clients get either wrong; the result is validated anyway.
    encoded = encoded.rstrip("=").replace("+", "-").replace("/", "_")
    try:
        raw = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
        if base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii") != encoded:
            # Characters outside the alphabet were silently skipped.
            raise binascii.Error
        token = raw.decode("utf-8")
    except (binascii.Error, ValueError):
        raise InvalidRequest(f"the {ENCODED_PREFIX} entry is not valid base64url of UTF-8 text") from None
    if not token.strip():
        raise InvalidRequest(f"the {ENCODED_PREFIX} entry holds an empty token")
    return token


def from_authorization_header(headers: Iterable[tuple[bytes, bytes]], keywords: Sequence[str]) -> str | None:
    """The token of the ``Authorization`` header when its scheme is one of ``keywords``."""
    return _header_token(headers, frozenset(keyword.lower() for keyword in keywords))


def _header_token(headers: Iterable[tuple[bytes, bytes]], keywords: frozenset[str]) -> str | None:
    values = [value for name, value in headers if name.lower() == b"authorization"]
    if not values:
        return None
    if len(values) > 1:
        raise InvalidRequest("more than one Authorization header")
    # RFC 7235 separates scheme and credentials with a space; a tab is
    # accepted too rather than silently treating "Bearer<TAB>x" as another scheme.
    parts = values[0].decode("latin-1").split(None, 1)
    if not parts:
        return None  # an empty header names no scheme: not ours
    scheme, rest = parts[0], parts[1] if len(parts) > 1 else ""
    # RFC 7235: the auth-scheme is case-insensitive. A scheme we were not told
    # about belongs to someone else (Basic, a session...) and is left alone.
    if scheme.lower() not in keywords:
        return None
    token = rest.strip()
    if not token:
        raise InvalidRequest("the Authorization header has no token")
    # str.split() splits on exactly what str.isspace() calls whitespace, in C:
    # a per-character generator costs ~40 µs per handshake on a JWT.
    if len(token.split(maxsplit=1)) > 1:
        raise InvalidRequest("the Authorization header holds more than one token")
    return token


def pop_query_params(query_string: bytes, names: Iterable[str]) -> tuple[dict[str, str], bytes]:
    """Remove ``names`` from a raw query string; return their values and the rest.

    The other parameters are kept byte for byte, so the inner app sees exactly
    what the client sent for them.
    """
    wanted = set(names)
    values: dict[str, str] = {}
    kept: list[bytes] = []
    for piece in query_string.split(b"&"):
        raw_name, _, raw_value = piece.partition(b"=")
        name = unquote_plus(raw_name.decode("latin-1"))
        if name not in wanted:
            kept.append(piece)
            continue
        if name in values:
            raise InvalidRequest(f"the query parameter {name!r} is repeated")
        try:
            value = unquote_to_bytes(raw_value.replace(b"+", b" ")).decode("utf-8").strip()
        except UnicodeDecodeError:
            raise InvalidRequest(f"the query parameter {name!r} is not UTF-8") from None
        if not value:
            raise InvalidRequest(f"the query parameter {name!r} is empty")
        values[name] = value
    return values, b"&".join(kept)
