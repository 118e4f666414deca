"""``TicketView``: issues one-time WebSocket tickets over authenticated HTTP.

::

    path("api/ws-ticket/", TicketView.as_view()),

``POST`` with the project's own DRF authentication (``Authorization: Token``,
``Bearer <jwt>``, a session...) returns ``{"ticket": "...", "expires_in": 30}``.
"""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from channels_bearer.backends.base import scopes_from_claims, timestamp_to_datetime
from channels_bearer.identity import token_hash_id
from channels_bearer.tickets import issue_ticket


class TicketView(APIView):
    permission_classes = [IsAuthenticated]
    # Authentication classes: the project's DEFAULT_AUTHENTICATION_CLASSES.

    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        token_id, expires_at, scopes = describe_auth(request.auth)
        ticket, ttl = issue_ticket(request.user, token_id=token_id, expires_at=expires_at, scopes=scopes)
        # A ticket is a credential: no cache may keep the response.
        return Response({"ticket": ticket, "expires_in": ttl}, headers={"Cache-Control": "no-store"})


def describe_auth(auth: Any) -> tuple[str | None, Any, frozenset[str]]:
    """``(token_id, expires_at, scopes)`` of what DRF put in ``request.auth``.

    The ids match what the backends give the same token, so revoking the token
    also voids the tickets it issued.
    """
    if auth is None:
        return None, None, frozenset()
    payload = getattr(auth, "payload", None)
    if isinstance(payload, dict):  # a simplejwt token
        from rest_framework_simplejwt.settings import api_settings

        jti = payload.get(api_settings.JTI_CLAIM) if api_settings.JTI_CLAIM else None
        return (
            str(jti) if jti else token_hash_id(str(auth)),
            timestamp_to_datetime(payload.get("exp")),
            scopes_from_claims(payload),
        )
    if isinstance(getattr(auth, "key", None), str):  # rest_framework.authtoken
        from channels_bearer.backends.drf import DRFTokenBackend

        return DRFTokenBackend.token_id_of(auth), None, frozenset()
    if isinstance(getattr(auth, "digest", None), str) and hasattr(auth, "token_key"):  # django-rest-knox
        from channels_bearer.backends.knox import KnoxTokenBackend

        return KnoxTokenBackend.token_id_of(auth), getattr(auth, "expiry", None), frozenset()
    if isinstance(getattr(auth, "token", None), str):  # django-oauth-toolkit AccessToken
        from channels_bearer.backends.oauth_toolkit import OAuthToolkitBackend

        scope = getattr(auth, "scope", "") or ""
        return OAuthToolkitBackend.token_id_of(auth), getattr(auth, "expires", None), frozenset(scope.split())
    return None, None, frozenset()
