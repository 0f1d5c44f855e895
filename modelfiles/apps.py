from __future__ import annotations

from django.apps import AppConfig


class ModelfilesConfig(AppConfig):
    name = "modelfiles"
    verbose_name = "Model files and downloads"
