from __future__ import annotations

import getpass
import sys

from django.contrib.auth import get_user_model, password_validation
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from config.accounts.roles import ROLES
from config.accounts.services import user_create, user_set_role


class Command(BaseCommand):
    help = "Create a user with a role (viewer, operator, editor or admin), or change an existing user's role."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--role", required=True, choices=ROLES)
        parser.add_argument("--email", default="")
        parser.add_argument(
            "--password-stdin",
            action="store_true",
            help="Read the password from the first line of standard input instead of prompting.",
        )
        parser.add_argument(
            "--update-role",
            action="store_true",
            help="If the user exists, change their role (the password is left as it is).",
        )

    def handle(self, *args, username: str, role: str, email: str, password_stdin: bool, update_role: bool, **kw):
        existing = get_user_model().objects.filter(username=username).first()
        if existing is not None:
            if not update_role:
                raise CommandError(f"User {username!r} already exists; add --update-role to change the role.")
            try:
                user_set_role(user=existing, role=role)
            except ValidationError as exc:
                raise CommandError(" ".join(exc.messages)) from exc
            self.stdout.write(self.style.SUCCESS(f"{username} is now {role}."))
            return
        password = self._read_password(password_stdin)
        candidate = get_user_model()(username=username, email=email)
        try:
            password_validation.validate_password(password, candidate)
            user_create(username=username, password=password, role=role, email=email)
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from exc
        self.stdout.write(self.style.SUCCESS(f"Created {username} with role {role}."))

    def _read_password(self, from_stdin: bool) -> str:
        if from_stdin:
            password = sys.stdin.readline().rstrip("\r\n")
            if not password:
                raise CommandError("No password on standard input.")
            return password
        if not sys.stdin.isatty():
            raise CommandError("No terminal to prompt on: pass the password with --password-stdin.")
        first = getpass.getpass("Password: ")
        if first != getpass.getpass("Password (again): "):
            raise CommandError("The two passwords differ.")
        return first
