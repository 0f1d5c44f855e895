from __future__ import annotations

import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.urls import reverse

from config.accounts.models import ApiToken, hash_token
from config.accounts.roles import ADMIN, EDITOR, OPERATOR, ROLES, VIEWER, role_of
from config.accounts.services import apitoken_authenticate
from tests.factories import TEST_PASSWORD

pytestmark = pytest.mark.django_db


def test_login_page_renders_for_anonymous_users(client):
    response = client.get(reverse("login"))
    assert response.status_code == 200
    assert b"Sign in" in response.content


def test_anonymous_page_visit_goes_to_login_and_back(client, viewer):
    target = reverse("aliases:list") + "?q=llama"
    response = client.get(target)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login") + "?next=")
    response = client.post(reverse("login"), {"username": viewer.username, "password": TEST_PASSWORD, "next": target})
    assert response.status_code == 302
    assert response["Location"] == target


def test_wrong_password_shows_a_clear_message(client, viewer):
    response = client.post(reverse("login"), {"username": viewer.username, "password": "wrong"})
    assert response.status_code == 200
    assert b"Please enter a correct username and password" in response.content


def test_a_deactivated_user_with_the_right_password_is_told_the_account_is_deactivated(client, viewer):
    viewer.is_active = False
    viewer.save(update_fields=["is_active"])

    right = client.post(reverse("login"), {"username": viewer.username, "password": TEST_PASSWORD})
    wrong = client.post(reverse("login"), {"username": viewer.username, "password": "wrong"})

    assert right.status_code == 200
    assert b"This account is deactivated. Ask an admin to reactivate it." in right.content
    assert "_auth_user_id" not in client.session
    # Without the password nobody learns whether the account exists or is deactivated.
    assert b"Please enter a correct username and password" in wrong.content
    assert b"deactivated" not in wrong.content


def test_logout_is_post_only_and_signs_out(client_for, viewer):
    client = client_for(viewer)
    assert client.get(reverse("logout")).status_code == 405
    response = client.post(reverse("logout"))
    assert response.status_code == 302
    assert client.get(reverse("aliases:list")).status_code == 302


def test_roles_exist_with_their_permissions(make_user):
    for role in ROLES:
        user = make_user(role)
        assert role_of(user) == role
        assert user.has_perm("aliases.view_alias")
        can_write = role in (EDITOR, ADMIN)
        assert user.has_perm("aliases.add_alias") is can_write
        assert user.has_perm("aliases.change_alias") is can_write
        assert user.has_perm("aliases.delete_alias") is can_write
        assert user.has_perm("auth.change_user") is (role == ADMIN)


def test_adduser_reads_the_password_from_stdin(monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("a-long-enough-passphrase\n"))
    out = io.StringIO()
    call_command("adduser", "olive", "--role", OPERATOR, "--password-stdin", stdout=out)
    user = get_user_model().objects.get(username="olive")
    assert user.check_password("a-long-enough-passphrase")
    assert role_of(user) == OPERATOR
    assert not user.is_staff
    assert Client().login(username="olive", password="a-long-enough-passphrase")


def test_adduser_refuses_a_weak_password_and_creates_nothing(monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("123\n"))
    with pytest.raises(CommandError, match="too short"):
        call_command("adduser", "weak", "--role", VIEWER, "--password-stdin")
    assert not get_user_model().objects.filter(username="weak").exists()


def test_adduser_refuses_an_existing_user_unless_asked_to_change_the_role(viewer):
    with pytest.raises(CommandError, match="already exists"):
        call_command("adduser", viewer.username, "--role", ADMIN, "--password-stdin")
    call_command("adduser", viewer.username, "--role", ADMIN, "--update-role", stdout=io.StringIO())
    viewer.refresh_from_db()
    assert role_of(viewer) == ADMIN
    assert viewer.is_staff and viewer.is_superuser


def test_adduser_without_a_terminal_asks_for_password_stdin(monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    with pytest.raises(CommandError, match="--password-stdin"):
        call_command("adduser", "nobody", "--role", VIEWER)


def test_apitoken_prints_a_token_that_authenticates_and_stores_only_a_hash(editor):
    out = io.StringIO()
    call_command("apitoken", editor.username, "--name", "ci", stdout=out)
    raw = out.getvalue().strip()
    assert raw.startswith("mdk_")
    token = ApiToken.objects.get(user=editor)
    assert token.key_hash == hash_token(raw)
    assert raw not in (token.key_hash, token.prefix)
    assert apitoken_authenticate(raw=raw) == editor
    assert apitoken_authenticate(raw=raw + "x") is None


def test_apitoken_revoke_all(editor):
    out = io.StringIO()
    call_command("apitoken", editor.username, stdout=out)
    raw = out.getvalue().strip()
    call_command("apitoken", editor.username, "--revoke-all", stdout=io.StringIO())
    assert apitoken_authenticate(raw=raw) is None


def test_apitoken_for_unknown_user_is_an_error():
    with pytest.raises(CommandError, match="No user named"):
        call_command("apitoken", "ghost")


def test_inactive_users_tokens_are_refused(editor):
    out = io.StringIO()
    call_command("apitoken", editor.username, stdout=out)
    editor.is_active = False
    editor.save()
    assert apitoken_authenticate(raw=out.getvalue().strip()) is None


def test_ensure_admin_creates_one_admin_with_a_random_password_once():
    out = io.StringIO()
    call_command("ensure_admin", stdout=out)
    text = out.getvalue()
    password = text.split("password ")[1].split()[0]
    admin = get_user_model().objects.get(username="admin")
    assert admin.check_password(password)
    assert role_of(admin) == ADMIN
    again = io.StringIO()
    call_command("ensure_admin", stdout=again)
    assert "password " not in again.getvalue().split("Forgot")[0]
    assert get_user_model().objects.filter(is_superuser=True).count() == 1
    call_command("ensure_admin", stdout=io.StringIO())
    other = io.StringIO()
    get_user_model().objects.all().delete()
    call_command("ensure_admin", stdout=other)
    assert other.getvalue().split("password ")[1].split()[0] != password


def test_missing_role_groups_are_rebuilt_with_their_permissions(make_user):
    from django.contrib.auth.models import Group

    Group.objects.all().delete()
    user = make_user(OPERATOR)
    assert role_of(user) == OPERATOR
    assert user.has_perm("modelfiles.request_download")
    assert Group.objects.filter(name__in=ROLES).count() == len(ROLES)
