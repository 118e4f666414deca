"""How tests spell tokens on the wire: base64url without padding, the encoded subprotocol entry."""

from __future__ import annotations

import base64

ENCODED_PREFIX = "base64url.bearer."


def b64url(data: bytes | str, *, pad: bool = False) -> str:
    """base64url of ``data`` (text as UTF-8), without padding unless ``pad``."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    encoded = base64.urlsafe_b64encode(raw).decode("ascii")
    return encoded if pad else encoded.rstrip("=")


def encoded_entry(token: str) -> str:
    """The ``base64url.bearer.`` subprotocol entry for ``token``."""
    return ENCODED_PREFIX + b64url(token)
