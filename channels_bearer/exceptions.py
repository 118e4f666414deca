"""Refusals, named after RFC 6750's error codes.

Messages are fixed strings chosen here: they are logged and may be sent as a
close reason, so they never hold token text (not even a library's message,
which can quote bytes of the token it failed to parse).
"""

from __future__ import annotations


class BearerError(Exception):
    """A handshake or message that must be refused."""

    #: RFC 6750 ``error`` value for ``WWW-Authenticate``.
    error = "invalid_token"
    #: HTTP status of the refused handshake (where the server can send one).
    status = 401
    #: Close code after accept: 4401 means "get a new token and retry".
    close_code = 4401
    #: Whether a refusal carries a ``WWW-Authenticate: Bearer`` challenge.
    challenge = True
    #: Where the server cannot send an HTTP refusal (daphne): accept, then
    #: close with ``close_code``, so the client sees the code instead of a 403.
    close_after_accept = False
    #: The dotted path of the backend that refused, when one did (for signals).
    backend: str | None = None

    def __init__(self, description: str = "") -> None:
        super().__init__(description)
        self.description = description

    def __str__(self) -> str:
        return f"{self.error}: {self.description}" if self.description else self.error


class InvalidToken(BearerError):
    """The token is malformed for its backend, unknown, or its signature is bad."""


class ExpiredToken(InvalidToken):
    """The token was valid once and has expired."""


class InactiveUser(InvalidToken):
    """The token names a user who is inactive or no longer exists.

    Still ``invalid_token`` on the wire (RFC 6750 has nothing finer), but
    after accept it closes with 4403: a new token will not help.
    """

    close_code = 4403


class InvalidRequest(BearerError):
    """The handshake presents credentials in a way we refuse to interpret."""

    error = "invalid_request"
    status = 400
    close_code = 4400


class InsufficientScope(BearerError):
    """The token is valid but lacks a scope the consumer requires.

    ``required`` (the consumer's scopes, never the token's) goes into the
    challenge's ``scope`` attribute, as RFC 6750 section 3 suggests.
    """

    error = "insufficient_scope"
    status = 403
    close_code = 4403

    def __init__(self, description: str = "", required: tuple[str, ...] = ()) -> None:
        super().__init__(description)
        self.required = required


class Revoked(BearerError):
    """The token or its user was revoked while the socket was open."""

    close_code = 4403


class BackendUnavailable(BearerError):
    """A backend failed for a reason that is not the token's (database down...).

    Refused as a server error, not as a bad token: the client should retry
    later with the same token.
    """

    error = "temporarily_unavailable"
    status = 503
    close_code = 1011
    challenge = False


class TooManySockets(BearerError):
    """The user has ``MAX_SOCKETS_PER_USER`` sockets open already."""

    error = "too_many_sockets"
    status = 429
    close_code = 4429
    challenge = False
    close_after_accept = True


class RateLimited(BearerError):
    """Too many refused handshakes from this client address lately (``REFUSAL_RATE``)."""

    error = "rate_limited"
    status = 429
    close_code = 4429
    challenge = False
    close_after_accept = True
