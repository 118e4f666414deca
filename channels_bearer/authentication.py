"""How a presented credential is judged: the configured backends, in order.

The ASGI plumbing (:mod:`channels_bearer.middleware`) finds the credential
(:mod:`channels_bearer.sources`) and answers the handshake; this module only
turns a credential into an identity or a refusal, for the middleware, the
consumer mixin (in-band refresh) and the testing helpers alike.
"""

from __future__ import annotations

import logging

from channels_bearer.conf import conf
from channels_bearer.config import BearerConfig
from channels_bearer.exceptions import BackendUnavailable, BearerError, InvalidToken
from channels_bearer.identity import BearerIdentity
from channels_bearer.sources import Credential
from channels_bearer.types import Scope

logger = logging.getLogger("channels_bearer")

__all__ = ["authenticate_credential"]


async def authenticate_credential(credential: Credential, scope: Scope, settings: BearerConfig | None = None) -> BearerIdentity:
    """Ask each configured backend in turn; the first identity wins.

    Raises a :class:`~channels_bearer.exceptions.BearerError`: ``InvalidToken``
    when no backend takes the token, the backend's own refusal, or
    ``BackendUnavailable`` when a backend failed for a reason that is not the
    token's.
    """
    if credential.source == "ticket":
        from channels_bearer.tickets import redeem_ticket

        ticket_identity = await redeem_ticket(credential.token)
        return ticket_identity.placed("ticket", ticket_identity.backend)
    for path, backend in (settings or conf.current()).backends:
        try:
            identity = await backend.authenticate(credential.token, scope)
        except BearerError as refusal:
            refusal.backend = path
            raise
        except Exception as exc:
            # Not the token's fault (database down, a bug): a server error, not
            # a refusal of the token. The exception's text is not logged: some
            # drivers quote query parameters, and the parameter is the token.
            logger.error(
                "Backend %s failed while authenticating a WebSocket handshake: %s.%s",
                path,
                type(exc).__module__,
                type(exc).__qualname__,
            )
            unavailable = BackendUnavailable("a backend failed; see the server log")
            unavailable.backend = path
            raise unavailable from None
        if identity is not None:
            return identity.placed(credential.source, path)
    raise InvalidToken("no backend accepted the token")
