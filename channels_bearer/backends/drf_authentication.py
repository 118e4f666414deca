"""Any DRF authentication class: the ones a project already runs for its API."""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from typing import Any

from django.core.checks import CheckMessage
from django.utils.module_loading import import_string

from channels_bearer import database
from channels_bearer.backends.base import BaseBackend, Scope, scopes_from_claims, timestamp_to_datetime
from channels_bearer.check_ids import error
from channels_bearer.conf import SETTING_NAME, conf
from channels_bearer.config_rules import class_problem
from channels_bearer.exceptions import InvalidToken
from channels_bearer.identity import BearerIdentity, token_hash_id


class DRFAuthenticationBackend(BaseBackend):
    """Runs DRF authentication classes against the token, as they would see it in an API request.

    The classes are ``CHANNELS_BEARER["DRF_AUTHENTICATION_CLASSES"]``, or, when
    that is ``None``, ``REST_FRAMEWORK["DEFAULT_AUTHENTICATION_CLASSES"]``. Each
    is shown a request whose ``Authorization`` header is the token after the
    scheme that class answers in its ``WWW-Authenticate`` challenge
    (``authenticate_header()``: ``Token`` for DRF's and knox's, ``Bearer`` for
    SimpleJWT's); classes with no challenge (``SessionAuthentication``) or with
    ``Basic`` cannot take a bearer token and are skipped. The first class that
    returns a user wins. A class that raises ``AuthenticationFailed`` judged
    the token invalid: when no other class accepts it, the handshake is
    refused with ``invalid_token``, without the class's message.

    The classes run on a thread of channels-bearer's own
    (``channels-bearer-auth``, see :mod:`channels_bearer.database`), off the
    event loop and away from the other backends' lookups, since a class may
    wait on the network.

    ``token_id``: the ``jti`` of a JWT the class validated, knox's digest
    prefix for a knox token, else :func:`~channels_bearer.identity.token_hash_id`
    (a DRF token's), so revoking the token closes its sockets. ``expires_at``
    and ``claims`` come from a validated JWT's payload or a knox row's expiry.
    """

    #: Dotted paths; ``None`` reads the settings.
    authentication_classes: Sequence[str] | None = None

    @classmethod
    def check(cls) -> list[CheckMessage]:
        if importlib.util.find_spec("rest_framework") is None:
            return [
                error(
                    "E051",
                    f"{cls.__name__} is configured, but djangorestframework is not installed.",
                    "pip install channels-bearer[drf], or remove the backend.",
                )
            ]
        messages: list[CheckMessage] = []
        paths = cls().class_paths()
        if not paths:
            messages.append(
                error(
                    "E052",
                    f"{cls.__name__} has no authentication classes to run.",
                    f"Set {SETTING_NAME}['DRF_AUTHENTICATION_CLASSES'] or REST_FRAMEWORK['DEFAULT_AUTHENTICATION_CLASSES'].",
                )
            )
        from rest_framework.authentication import BaseAuthentication

        kind = "a DRF authentication class (rest_framework.authentication.BaseAuthentication)"
        messages += [
            error("E053", f"{cls.__name__}: {path!r} {problem}.", "Use the dotted path of a DRF authentication class.")
            for path in paths
            if (problem := class_problem(path, BaseAuthentication, kind))
        ]
        return messages

    def class_paths(self) -> list[str]:
        if self.authentication_classes is not None:
            return list(self.authentication_classes)
        if conf.DRF_AUTHENTICATION_CLASSES is not None:
            return list(conf.DRF_AUTHENTICATION_CLASSES)
        from rest_framework.settings import api_settings

        # api_settings holds the classes themselves (imported from the dotted paths).
        classes: list[Any] = list(api_settings.DEFAULT_AUTHENTICATION_CLASSES)
        return [f"{c.__module__}.{c.__qualname__}" for c in classes]

    def authenticators(self) -> list[Any]:
        return [import_string(path)() for path in self.class_paths()]

    async def authenticate(self, token: str, scope: Scope) -> BearerIdentity | None:
        if any(c.isspace() for c in token):
            return None  # an Authorization header cannot carry it as one credential
        user, auth = await database.run(self.run_classes, token, scope, thread=database.AUTHENTICATION)
        if user is None:
            return None
        self.check_user(user)
        claims = self.claims_of(auth)
        return BearerIdentity(
            user=user,
            token_id=self.token_id_of(auth, claims, token),
            expires_at=timestamp_to_datetime(claims.get("exp")) or getattr(auth, "expiry", None),
            claims=claims,
            scopes=scopes_from_claims(claims),
        )

    def run_classes(self, token: str, scope: Scope) -> tuple[Any, Any]:
        """``(user, auth)`` of the first class that accepts the token, ``(None, None)`` if none tried it."""
        from rest_framework.exceptions import APIException

        judged_invalid = False
        bare = self.request_for(scope, "")
        for authenticator in self.authenticators():
            keyword = self.keyword_of(authenticator, bare)
            if keyword is None:
                continue
            request = self.request_for(scope, f"{keyword} {token}")
            try:
                result = authenticator.authenticate(request)
            except APIException:
                # AuthenticationFailed, or a class's own: its text may quote the token.
                judged_invalid = True
                continue
            if result is not None:
                return result[0], result[1]
        if judged_invalid:
            raise InvalidToken("the DRF authentication classes refused the token")
        return None, None

    def keyword_of(self, authenticator: Any, request: Any) -> str | None:
        """The scheme the class reads, from its ``WWW-Authenticate`` challenge; ``None``: it takes no bearer token."""
        challenge = authenticator.authenticate_header(request)
        if not challenge:
            return None
        keyword = str(challenge).split()[0]
        return None if keyword.lower() == "basic" else keyword

    def request_for(self, scope: Scope, authorization: str) -> Any:
        """A DRF ``Request`` for the handshake, with ``authorization`` as its only credential."""
        from django.http import HttpRequest
        from rest_framework.request import Request

        http = HttpRequest()
        http.method = "GET"
        http.path = http.path_info = str(scope.get("path", "/"))
        client = scope.get("client") or ("", 0)
        server = scope.get("server") or ("", 0)
        http.META = {
            "REQUEST_METHOD": "GET",
            "PATH_INFO": http.path,
            "REMOTE_ADDR": str(client[0] or ""),
            "SERVER_NAME": str(server[0] or ""),
            "SERVER_PORT": str(server[1] or ""),
        }
        if authorization:
            http.META["HTTP_AUTHORIZATION"] = authorization
        return Request(http)

    def claims_of(self, auth: Any) -> dict[str, Any]:
        payload = getattr(auth, "payload", None)  # simplejwt's validated tokens
        return dict(payload) if isinstance(payload, dict) else {}

    def token_id_of(self, auth: Any, claims: dict[str, Any], token: str) -> str:
        from channels_bearer.receivers import KNOX_TOKEN, kind_of

        if claims.get("jti"):
            return str(claims["jti"])
        if auth is not None and kind_of(type(auth)) == KNOX_TOKEN:
            from channels_bearer.backends.knox import KnoxTokenBackend

            return KnoxTokenBackend.token_id_of(auth) or token_hash_id(token)
        return token_hash_id(token)
