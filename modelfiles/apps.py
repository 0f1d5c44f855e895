from __future__ import annotations

from django.apps import AppConfig


class ModelfilesConfig(AppConfig):
    name = "modelfiles"
    verbose_name = "Model files and downloads"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save

        from modelfiles.live import downloads_changed
        from modelfiles.models import Download

        # The live pages' rows (modelfiles/live.py); writes in bulk go through DownloadQuerySet.
        for signal in (post_save, post_delete):
            signal.connect(lambda **kwargs: downloads_changed(), sender=Download, weak=False,
                           dispatch_uid=f"modelfiles.live.{signal is post_save}")  # fmt: skip
