"""The chat consumer, tested with Django's TestCase and channels-bearer's mixin (``manage.py test``)."""

from channels.routing import get_default_application
from django.contrib.auth import get_user_model
from django.test import TestCase, TransactionTestCase

from channels_bearer.testing import BearerCommunicator, BearerTestMixin, make_token


class ChatTests(BearerTestMixin, TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.alice = get_user_model().objects.create_user("alice")

    async def test_alice_gets_hello(self):
        async with self.bearer_communicator("/ws/chat/lobby/", user=self.alice) as communicator:
            connected, subprotocol = await communicator.connect()
            self.assertTrue(connected)
            self.assertEqual(subprotocol, "access_token")
            self.assertEqual(await communicator.receive_json_from(), {"type": "hello", "user": "alice"})

    async def test_jwt_in_a_header(self):
        async with self.bearer_communicator("/ws/chat/lobby/", user=self.alice, via="header", kind="jwt") as c:
            self.assertEqual(await c.connect(), (True, None))

    async def test_ticket_from_the_http_api(self):
        # The way a browser does it: fetch a ticket with the token, then open the socket with the ticket.
        token = await make_token_async(self.alice)
        response = await self.async_client.post("/api/ws-ticket/", headers={"Authorization": f"Token {token}"})
        self.assertEqual(response.status_code, 200)
        ticket = response.json()["ticket"]
        async with BearerCommunicator(get_default_application(), "/ws/chat/lobby/", ticket=ticket) as c:
            self.assertTrue((await c.connect())[0])
            self.assertEqual((await c.receive_json_from())["user"], "alice")

    async def test_inactive_user_is_refused(self):
        self.alice.is_active = False
        await self.alice.asave()
        async with self.bearer_communicator("/ws/chat/lobby/", user=self.alice) as communicator:
            await communicator.connect()
            # An inactive user's token: invalid_token, closing with 4403 ("do not retry").
            self.assert_refused(communicator, "invalid_token", code=4403)


class SyncSetupTests(BearerTestMixin, TransactionTestCase):
    def test_token_made_in_sync_code(self):
        bob = get_user_model().objects.create_user("bob")
        token = make_token(bob)  # sync code may mint tokens directly

        async def scenario():
            communicator = BearerCommunicator(get_default_application(), "/ws/chat/lobby/", token=token, via="header")
            connected, _ = await communicator.connect()
            hello = await communicator.receive_json_from()
            await communicator.disconnect()
            return connected, hello

        from asgiref.sync import async_to_sync

        self.assertEqual(async_to_sync(scenario)(), (True, {"type": "hello", "user": "bob"}))


async def make_token_async(user):
    from channels_bearer.testing import amake_token

    return await amake_token(user)
