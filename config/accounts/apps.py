from __future__ import annotations

from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "config.accounts"
    label = "accounts"
    verbose_name = "Accounts and API tokens"

    def ready(self) -> None:
        from config.accounts.middleware import connect_signals

        # Changes to users, their roles and permissions drop what the cache kept of them.
        connect_signals()
