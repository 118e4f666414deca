from __future__ import annotations

from django.apps import AppConfig


class ChannelsBearerConfig(AppConfig):
    name = "channels_bearer"
    verbose_name = "Channels bearer authentication"

    def ready(self) -> None:
        # Registers the system checks.
        from django.core.signals import setting_changed

        from channels_bearer import cache, checks, receivers  # noqa: F401

        receivers.connect()
        setting_changed.connect(cache.forget_clients, dispatch_uid="channels_bearer.cache.forget_clients")
