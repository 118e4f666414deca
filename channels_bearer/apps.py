from __future__ import annotations

from django.apps import AppConfig


class ChannelsBearerConfig(AppConfig):
    name = "channels_bearer"
    verbose_name = "Channels bearer authentication"

    def ready(self) -> None:
        # Imported for their side effects: system checks and signal receivers.
        from channels_bearer import cache, checks, signals  # noqa: F401

        signals.connect_receivers()
