"""``manage.py bearer_token USERNAME [--create] [--kind drf|jwt]``: print a token.

Only the token goes to stdout, so ``TOKEN=$(manage.py bearer_token alice)``
works in scripts; everything else goes to stderr.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser


class Command(BaseCommand):
    help = "Print a bearer token for a user: a DRF token (default) or a SimpleJWT access token."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--create", action="store_true", help="Create the user if missing.")
        parser.add_argument("--kind", choices=["drf", "jwt"], default="drf", help="Token kind (default: drf).")

    def handle(self, *args: Any, **options: Any) -> None:
        from channels_bearer.testing.tokens import make_token

        user_model = get_user_model()
        username = options["username"]
        lookup = {user_model.USERNAME_FIELD: username}
        try:
            user = user_model._default_manager.get(**lookup)
        except user_model.DoesNotExist:
            if not options["create"]:
                raise CommandError(f"No user {username!r}; pass --create to make one.") from None
            user = user_model._default_manager.create_user(**lookup)
            self.stderr.write(f"Created user {username!r} (no usable password).")
        self.stdout.write(make_token(user, kind=options["kind"]))
