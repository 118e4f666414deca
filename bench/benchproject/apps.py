from __future__ import annotations

from django.apps import AppConfig


class BenchConfig(AppConfig):
    name = "benchproject"

    def ready(self) -> None:
        from benchproject import counting

        counting.install()
