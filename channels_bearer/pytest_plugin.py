"""pytest plugin (entry point ``pytest11``): fixtures for testing bearer-authenticated consumers.

Active only where pytest-django is installed; ``bearer_communicator`` also
needs pytest-asyncio (communicators are async). Fixtures:

``bearer_user``
    A fresh active user. Uses ``transactional_db``: the middleware reads the
    database from Channels' DB thread, which cannot see rows of a
    transaction that was never committed. Override it in your conftest for
    another user model's needs.
``bearer_token``
    A token for ``bearer_user``; the kind (``"drf"``, ``"jwt"``) comes from
    ``@pytest.mark.bearer(kind="jwt")``, default ``"drf"``.
``bearer_communicator``
    ``bearer_communicator(path, user=None, via="subprotocol", kind="drf",
    application=None, **kwargs)`` returns a ``BearerCommunicator`` ready to
    ``await connect()``; the token is minted inside ``connect()`` (async code
    may not touch the database directly). ``user`` defaults to
    ``bearer_user``, ``application`` to the project's ``ASGI_APPLICATION``,
    ``via`` and ``kind`` to the ``bearer`` marker's. Every communicator still
    running at teardown is disconnected.
"""

from __future__ import annotations

import importlib.util
import itertools
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from channels_bearer.testing import BearerCommunicator

# Found, not imported: importing pytest-django here would bypass pytest's own plugin loading order.
HAS_PYTEST_DJANGO = importlib.util.find_spec("pytest_django") is not None
HAS_PYTEST_ASYNCIO = importlib.util.find_spec("pytest_asyncio") is not None

MARKER = "bearer"
_usernames = itertools.count(1)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(kind='drf', via='subprotocol'): defaults for channels-bearer's bearer_token and "
        "bearer_communicator fixtures",
    )


def _marker_option(request: pytest.FixtureRequest, name: str, default: str) -> str:
    marker = request.node.get_closest_marker(MARKER)
    if marker is None:
        return default
    return str(marker.kwargs.get(name, default))


if HAS_PYTEST_DJANGO:

    @pytest.fixture
    def bearer_user(transactional_db: None, django_user_model: Any) -> Any:
        """A fresh active user, committed to the database."""
        field = django_user_model.USERNAME_FIELD
        name = f"bearer-user-{next(_usernames)}"
        value = f"{name}@example.com" if field == "email" else name
        return django_user_model._default_manager.create_user(**{field: value})

    @pytest.fixture
    def bearer_token(request: pytest.FixtureRequest, bearer_user: Any) -> str:
        """A token for ``bearer_user``, of the ``bearer`` marker's ``kind`` (default ``"drf"``)."""
        from channels_bearer.testing import make_token

        return make_token(bearer_user, kind=_marker_option(request, "kind", "drf"))

    if HAS_PYTEST_ASYNCIO:
        import pytest_asyncio

        # pytest_asyncio.fixture, not pytest.fixture: the teardown must run in
        # the test's event loop, and this works in asyncio_mode "strict" too.
        @pytest_asyncio.fixture
        async def bearer_communicator(
            request: pytest.FixtureRequest, bearer_user: Any
        ) -> AsyncIterator[Callable[..., BearerCommunicator]]:
            """Factory of ``BearerCommunicator``s, disconnected at teardown."""
            from channels_bearer.testing import BearerCommunicator, default_application

            made: list[BearerCommunicator] = []
            default_via = _marker_option(request, "via", "subprotocol")
            default_kind = _marker_option(request, "kind", "drf")

            def make(
                path: str,
                user: Any = None,
                via: str | None = None,
                kind: str | None = None,
                application: Any = None,
                **kwargs: Any,
            ) -> BearerCommunicator:
                communicator = BearerCommunicator.for_user(
                    application if application is not None else default_application(),
                    path,
                    user if user is not None else bearer_user,
                    via=via or default_via,
                    kind=kind or default_kind,
                    **kwargs,
                )
                made.append(communicator)
                return communicator

            yield make
            for communicator in made:
                await communicator.aclose()

    else:  # pragma: no cover

        @pytest.fixture
        def bearer_communicator() -> None:
            pytest.fail("The bearer_communicator fixture needs pytest-asyncio: pip install pytest-asyncio.")
