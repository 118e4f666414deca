"""The chat consumer, tested with channels-bearer's pytest fixtures only."""

import pytest
from channels.routing import get_default_application

from channels_bearer.testing import BearerCommunicator, assert_refused


async def test_signed_in_user_gets_hello(bearer_communicator, bearer_user):
    communicator = bearer_communicator("/ws/chat/lobby/")
    connected, subprotocol = await communicator.connect()
    assert connected
    assert subprotocol == "access_token"  # what a browser needs to hear back
    assert await communicator.receive_json_from() == {"type": "hello", "user": bearer_user.username}


@pytest.mark.parametrize("via", ["subprotocol", "header", "ticket"])
@pytest.mark.parametrize("kind", ["drf", "jwt"])
async def test_every_way_in(bearer_communicator, bearer_user, via, kind):
    communicator = bearer_communicator("/ws/chat/lobby/", via=via, kind=kind)
    connected, _ = await communicator.connect()
    assert connected
    assert (await communicator.receive_json_from())["user"] == bearer_user.username


async def test_app_subprotocol_is_answered(bearer_communicator):
    communicator = bearer_communicator("/ws/chat/lobby/", subprotocols=["chat.v1"])
    assert await communicator.connect() == (True, "chat.v1")


async def test_messages_reach_the_room(bearer_communicator, django_user_model):
    bob = await django_user_model.objects.acreate(username="bob")
    alice_socket = bearer_communicator("/ws/chat/room1/")
    bob_socket = bearer_communicator("/ws/chat/room1/", user=bob, kind="jwt")
    for communicator in (alice_socket, bob_socket):
        assert (await communicator.connect())[0]
        await communicator.receive_json_from()  # hello
    await alice_socket.send_json_to({"text": "hi bob"})
    message = await bob_socket.receive_json_from()
    assert message["text"] == "hi bob"
    assert message["user"] != "bob"


@pytest.mark.django_db(transaction=True)  # the middleware looks the token up in the database
async def test_bad_token_is_refused():
    communicator = BearerCommunicator(get_default_application(), "/ws/chat/lobby/", token="not-a-token")
    await communicator.connect()
    assert_refused(communicator, "invalid_token")


async def test_no_token_is_refused():
    communicator = BearerCommunicator(get_default_application(), "/ws/chat/lobby/", token=None)
    await communicator.connect()
    assert_refused(communicator, None)


@pytest.mark.bearer(via="query")
async def test_query_tokens_are_not_read_here(bearer_communicator):
    # This project leaves "query" out of SOURCES: the parameter is ignored, so no token at all.
    communicator = bearer_communicator("/ws/chat/lobby/")
    await communicator.connect()
    assert_refused(communicator, None)


async def test_refusal_as_uvicorn_sends_it(bearer_token):
    communicator = BearerCommunicator(
        get_default_application(), "/ws/chat/lobby/", token=bearer_token + "x", via="header", http_response=True
    )
    assert await communicator.connect() == (False, 401)
    assert communicator.denial.header("WWW-Authenticate") == 'Bearer error="invalid_token"'
    assert_refused(communicator)
