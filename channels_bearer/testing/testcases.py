"""``BearerTestMixin``: the communicator and the assertion for Django's ``TestCase``."""

from __future__ import annotations

from typing import Any

from channels_bearer.testing.assertions import assert_refused
from channels_bearer.testing.communicator import BearerCommunicator

__all__ = ["BearerTestMixin", "default_application"]


class BearerTestMixin:
    """For Django's ``TestCase`` / ``TransactionTestCase`` (async test methods)::

        class ChatTests(BearerTestMixin, TestCase):
            @classmethod
            def setUpTestData(cls):
                cls.alice = User.objects.create_user("alice")

            async def test_connects(self):
                async with self.bearer_communicator("/ws/chat/", user=self.alice) as communicator:
                    connected, subprotocol = await communicator.connect()
                    self.assertTrue(connected)

    The token is minted inside ``connect()``, in the test's transaction.
    ``async with`` disconnects the communicator before the test's event loop
    ends; without it, ``await communicator.disconnect()`` yourself.
    """

    def bearer_communicator(
        self,
        path: str,
        *,
        user: Any,
        via: str = "subprotocol",
        kind: str = "drf",
        application: Any = None,
        **kwargs: Any,
    ) -> BearerCommunicator:
        """A ``BearerCommunicator`` for ``user`` (default app: ``ASGI_APPLICATION``)."""
        return BearerCommunicator.for_user(
            application if application is not None else default_application(), path, user, via=via, kind=kind, **kwargs
        )

    def assert_refused(
        self,
        communicator_or_result: BearerCommunicator | tuple[bool, Any],
        error: str | None = "invalid_token",
        *,
        code: int | None = None,
    ) -> None:
        """``channels_bearer.testing.assert_refused`` as a method."""
        assert_refused(communicator_or_result, error, code=code)


def default_application() -> Any:
    """The project's ``ASGI_APPLICATION``."""
    from channels.routing import get_default_application

    return get_default_application()
