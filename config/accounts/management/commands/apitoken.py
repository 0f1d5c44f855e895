from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from config.accounts.forms import expiry_from_days
from config.accounts.models import ApiToken
from config.accounts.services import apitoken_create, apitoken_revoke_all


class Command(BaseCommand):
    help = (
        "Create an API token for a user and print it once. Scripts send it as 'Authorization: Bearer <token>'. "
        "Only a hash is stored, so a lost token cannot be shown again: make a new one and revoke the old."
    )

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="", help="A label to tell this token apart, e.g. 'ci-script'.")
        parser.add_argument(
            "--expires-days",
            type=int,
            default=None,
            help="Refuse the token after this many days (default: it never expires).",
        )
        parser.add_argument("--revoke-all", action="store_true", help="Revoke the user's tokens; make none.")
        parser.add_argument(
            "--list", dest="list_tokens", action="store_true", help="List the user's tokens (prefixes only)."
        )

    def handle(
        self,
        *args,
        username: str,
        name: str,
        expires_days: int | None,
        revoke_all: bool,
        list_tokens: bool,
        **options,
    ):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user named {username!r}. Create one with: manage.py adduser {username} --role ...")
        if list_tokens:
            for token in ApiToken.objects.filter(user=user):
                used = token.last_used_at.isoformat() if token.last_used_at else "never"
                expires = token.expires_at.isoformat() if token.expires_at else "never"
                self.stdout.write(
                    f"{token.prefix}…  {token.name or '-'}  created {token.created_at:%Y-%m-%d}  used {used}"
                    f"  expires {expires}"
                )
            return
        if revoke_all:
            count = apitoken_revoke_all(user=user)
            self.stdout.write(self.style.SUCCESS(f"Revoked {count} token(s) of {username}."))
            return
        if expires_days is not None and expires_days < 1:
            raise CommandError("--expires-days must be 1 or more.")
        try:
            raw = apitoken_create(user=user, name=name, expires_at=expiry_from_days(expires_days))
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from exc
        self.stdout.write(raw)
