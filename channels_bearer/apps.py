from __future__ import annotations

from django.apps import AppConfig


class ChannelsBearerConfig(AppConfig):
    name = "channels_bearer"
    verbose_name = "Channels bearer authentication"

    def ready(self) -> None:
        from channels_bearer import checks  # noqa: F401  (registers the checks)
