from __future__ import annotations

import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from config.accounts.initial_admin import initial_admin_save
from config.accounts.roles import ADMIN
from config.accounts.services import user_create


class Command(BaseCommand):
    help = (
        "Make sure at least one admin exists. If none does, create one with a random password and print how to "
        "sign in (used by `make run`; there is never a fixed default password)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin")

    def handle(self, *args, username: str, **options):
        users = get_user_model().objects
        admins = users.filter(is_superuser=True, is_active=True).order_by("pk")
        if admins.exists():
            names = ", ".join(admins.values_list("username", flat=True)[:5])
            self.stdout.write(
                f"Admin account(s): {names}. Forgot the password? "
                f"python manage.py changepassword {admins.first().username}"
            )
            return
        if users.filter(username=username).exists():
            username = f"{username}-{secrets.token_hex(2)}"
        password = secrets.token_urlsafe(12)
        user_create(username=username, password=password, role=ADMIN)
        path = initial_admin_save(username=username, password=password)
        self.stdout.write(
            self.style.SUCCESS(f"Created admin account: username {username}  password {password}")
            + f"\n`make run` shows it again once ModelDesk answers (it is kept in {path} until you change it: "
            + f"python manage.py changepassword {username})."
        )
