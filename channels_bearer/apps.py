from __future__ import annotations

from django.apps import AppConfig


class ChannelsBearerConfig(AppConfig):
    name = "channels_bearer"
    verbose_name = "Channels bearer authentication"

    def ready(self) -> None:
        # Registers the system checks.
        from channels_bearer import checks, receivers  # noqa: F401

        receivers.connect()
