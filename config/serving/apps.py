from __future__ import annotations

from django.apps import AppConfig


class ServingConfig(AppConfig):
    name = "config.serving"
    label = "serving"
    verbose_name = "Serving (llama-server)"

    def ready(self) -> None:
        from config.audit.signals import changes_recorded
        from config.serving.services import preset_sync_on_change

        changes_recorded.connect(preset_sync_on_change, dispatch_uid="serving-preset-sync")
