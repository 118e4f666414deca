"""``manage.py bearer_token USERNAME [--create] [--kind drf|jwt]``."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.test import override_settings

from tests.support.tokens import BOTH_BACKENDS
from tests.support.apps import SEEN, build_app, communicator

pytestmark = pytest.mark.django_db(transaction=True)


def bearer_token(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("bearer_token", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@pytest.mark.parametrize("kind", ["drf", "jwt"])
async def test_prints_only_a_token_that_authenticates(user_factory: Any, kind: str) -> None:
    alice = await database_sync_to_async(user_factory)("alice")
    out, err = await database_sync_to_async(bearer_token)("alice", "--kind", kind)
    token = out.strip()
    assert out == token + "\n"
    assert " " not in token and token
    assert token not in err

    with override_settings(CHANNELS_BEARER=BOTH_BACKENDS):
        comm = communicator(build_app(), subprotocols=["access_token", token])
        assert await comm.connect() == (True, "access_token")
        await comm.disconnect()
    assert SEEN[-1]["user"] == alice
    expected = "channels_bearer.backends.DRFTokenBackend" if kind == "drf" else "channels_bearer.backends.SimpleJWTBackend"
    assert SEEN[-1]["bearer"].backend == expected


def test_drf_token_is_stable(user_factory: Any) -> None:
    user_factory("alice")
    assert bearer_token("alice")[0] == bearer_token("alice", "--kind", "drf")[0]


def test_create_makes_the_user() -> None:
    user_model = get_user_model()
    assert not user_model.objects.filter(username="carol").exists()
    out, err = bearer_token("carol", "--create")
    carol = user_model.objects.get(username="carol")
    assert not carol.has_usable_password()
    assert out.count("\n") == 1
    assert "carol" in err  # the note goes to stderr, not stdout
    # --create on an existing user is not an error and makes no second user.
    bearer_token("carol", "--create")
    assert user_model.objects.filter(username="carol").count() == 1


def test_unknown_user_without_create() -> None:
    out, err = StringIO(), StringIO()
    with pytest.raises(CommandError, match="--create"):
        call_command("bearer_token", "nobody", stdout=out, stderr=err)
    assert out.getvalue() == ""
    assert not get_user_model().objects.filter(username="nobody").exists()


def test_unknown_kind_refused(user_factory: Any) -> None:
    user_factory("alice")
    with pytest.raises(CommandError):
        bearer_token("alice", "--kind", "saml")
