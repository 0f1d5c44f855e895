"""The account services outside the pages: commands and scripts get the same rules and the same audit entries."""

from __future__ import annotations

import io

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError

from config.accounts.roles import ADMIN, VIEWER, role_of
from config.accounts.services import apitoken_issue, user_create, user_deactivate, user_set_role
from config.audit.models import AuditEntry

pytestmark = pytest.mark.django_db


def test_the_last_admin_cannot_be_demoted_by_the_adduser_command(admin_user):
    with pytest.raises(CommandError, match="only active admin"):
        call_command("adduser", admin_user.username, "--role", VIEWER, "--update-role", stdout=io.StringIO())
    admin_user.refresh_from_db()
    assert role_of(admin_user) == ADMIN


def test_a_deactivated_admin_does_not_count_as_the_admin_that_remains(admin_user, make_user):
    other = make_user(ADMIN, "bob-admin")
    user_deactivate(user=other)
    with pytest.raises(ValidationError):
        user_set_role(user=admin_user, role=VIEWER)
    with pytest.raises(ValidationError):
        user_deactivate(user=admin_user)


def test_changes_without_a_signed_in_actor_are_recorded_as_the_system():
    user = user_create(username="cli-made", password="a-long-enough-passphrase", role=VIEWER)
    entry = AuditEntry.objects.get(kind="user", action="create", object_id=str(user.pk))
    assert entry.actor is None and entry.actor_name == ""


def test_revoking_all_with_the_command_records_each_token(viewer):
    apitoken_issue(user=viewer, name="a")
    apitoken_issue(user=viewer, name="b")
    call_command("apitoken", viewer.username, "--revoke-all", stdout=io.StringIO())
    assert AuditEntry.objects.filter(kind="token", action="revoke").count() == 2


def test_an_inactive_user_gets_no_token(viewer):
    user_deactivate(user=viewer)
    with pytest.raises(ValidationError, match="inactive"):
        apitoken_issue(user=viewer)
    with pytest.raises(CommandError, match="inactive"):
        call_command("apitoken", viewer.username, stdout=io.StringIO())
