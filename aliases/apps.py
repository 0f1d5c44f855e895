from __future__ import annotations

from django.apps import AppConfig


class AliasesConfig(AppConfig):
    name = "aliases"
    verbose_name = "Model aliases"

    def ready(self) -> None:
        from aliases import checks  # noqa: F401  (registers the stored-rows check)
