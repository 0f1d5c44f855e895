"""User management without the Django admin (issue 7): admins list users, create one with a role, change roles,
deactivate and reactivate, set a new password and revoke tokens; each change lands once in the audit log."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from config.accounts.models import ApiToken
from config.accounts.roles import ADMIN, EDITOR, OPERATOR, VIEWER, role_of
from config.accounts.services import apitoken_issue
from config.audit.models import AuditEntry
from tests.factories import TEST_PASSWORD

pytestmark = pytest.mark.django_db

USERS_URL = reverse("accounts:users")
NEW_PASSWORD = "a-brand-new-passphrase-42"


@pytest.fixture
def admin_client(client_for, admin_user) -> Client:
    return client_for(admin_user)


def user_urls(user) -> list[tuple[str, str]]:
    pk = [user.pk]
    return [
        ("get", USERS_URL),
        ("get", reverse("accounts:user-create")),
        ("post", reverse("accounts:user-create")),
        ("get", reverse("accounts:user-detail", args=pk)),
        ("post", reverse("accounts:user-role", args=pk)),
        ("get", reverse("accounts:user-password", args=pk)),
        ("post", reverse("accounts:user-password", args=pk)),
        ("get", reverse("accounts:user-deactivate", args=pk)),
        ("post", reverse("accounts:user-deactivate", args=pk)),
        ("post", reverse("accounts:user-reactivate", args=pk)),
        ("get", reverse("accounts:user-revoke-tokens", args=pk)),
        ("post", reverse("accounts:user-revoke-tokens", args=pk)),
    ]


@pytest.mark.parametrize("role", [VIEWER, OPERATOR, EDITOR])
def test_only_admins_reach_the_user_pages(make_user, client_for, viewer, role):
    client = client_for(make_user(role, f"someone-{role}"))
    for method, url in user_urls(viewer):
        assert getattr(client, method)(url).status_code == 403, (method, url)
    assert viewer.is_active and role_of(viewer) == VIEWER
    assert f'href="{USERS_URL}"' not in client.get(reverse("home")).content.decode()


def test_signed_out_visitors_go_to_the_login_page(client, viewer):
    for method, url in user_urls(viewer):
        response = getattr(client, method)(url)
        assert response.status_code == 302 and response["Location"].startswith(reverse("login")), url


def test_the_list_shows_role_status_last_sign_in_and_token_count(
    admin_client, viewer, editor, django_assert_max_num_queries
):
    apitoken_issue(user=editor)
    apitoken_issue(user=editor)
    editor.is_active = False
    editor.save()
    with django_assert_max_num_queries(12):
        response = admin_client.get(USERS_URL)
    assert response.status_code == 200
    rows = {row.record.username: row for row in response.context["table"].rows}
    assert set(rows) == {"ada-admin", viewer.username, editor.username}
    assert rows[editor.username].get_cell("token_count") == 2
    assert rows[editor.username].get_cell("role") == EDITOR
    assert "deactivated" in rows[editor.username].get_cell("is_active")
    assert f'href="{USERS_URL}"' in admin_client.get(reverse("home")).content.decode()
    page = response.content.decode()
    assert " style=" not in page


def test_the_list_filters_by_role_and_status(admin_client, viewer, editor, operator):
    def names(query: str) -> set[str]:
        return {row.record.username for row in admin_client.get(USERS_URL + query).context["table"].rows}

    assert names("?role=editor") == {editor.username}
    assert names("?role=viewer") == {viewer.username}
    assert names("?role=admin") == {"ada-admin"}
    assert names("?q=otto") == {operator.username}
    operator.is_active = False
    operator.save()
    assert names("?active=no") == {operator.username}
    partial = admin_client.get(USERS_URL + "?role=editor", HTTP_HX_REQUEST="true")
    assert b"<html" not in partial.content and editor.username.encode() in partial.content


def test_the_filters_are_labelled_in_words(admin_client):
    page = admin_client.get(USERS_URL).content.decode()
    assert '<label class="form-label" for="id_role">Role</label>' in page
    assert '<label class="form-label" for="id_active">Status</label>' in page
    assert "[invalid name]" not in page


def test_an_admin_creates_a_user_with_a_role_who_can_then_sign_in(admin_client, admin_user):
    response = admin_client.post(
        reverse("accounts:user-create"),
        {
            "username": "nina",
            "email": "nina@example.org",
            "role": OPERATOR,
            "password1": NEW_PASSWORD,
            "password2": NEW_PASSWORD,
        },
    )
    user = get_user_model().objects.get(username="nina")
    assert response.status_code == 302 and response["Location"] == reverse("accounts:user-detail", args=[user.pk])
    assert role_of(user) == OPERATOR and user.has_perm("modelfiles.request_download")
    assert Client().post(reverse("login"), {"username": "nina", "password": NEW_PASSWORD}).status_code == 302
    entry = AuditEntry.objects.get(kind="user", action="create", object_id=str(user.pk))
    assert entry.actor == admin_user
    assert entry.after == {"username": "nina", "email": "nina@example.org", "role": OPERATOR, "is_active": True}
    assert NEW_PASSWORD not in str(entry.after) and "password" not in str(entry.after)


def test_a_weak_password_or_a_taken_name_creates_nothing(admin_client, viewer):
    response = admin_client.post(
        reverse("accounts:user-create"),
        {"username": "weak", "role": VIEWER, "password1": "123", "password2": "123"},
    )
    assert response.status_code == 400 and b"too short" in response.content
    response = admin_client.post(
        reverse("accounts:user-create"),
        {"username": viewer.username.upper(), "role": VIEWER, "password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
    )
    assert response.status_code == 400 and b"already exists" in response.content
    assert not get_user_model().objects.filter(username__in=["weak", viewer.username.upper()]).exists()


def test_changing_a_role_is_recorded_with_before_and_after(admin_client, admin_user, viewer):
    response = admin_client.post(reverse("accounts:user-role", args=[viewer.pk]), {"role": EDITOR})
    assert response.status_code == 302
    viewer = get_user_model().objects.get(pk=viewer.pk)
    assert role_of(viewer) == EDITOR and viewer.has_perm("aliases.add_alias")
    entry = AuditEntry.objects.get(kind="role", actor=admin_user)
    assert (entry.before, entry.after, entry.object_id) == ({"role": VIEWER}, {"role": EDITOR}, str(viewer.pk))
    assert "is now editor" in admin_client.get(reverse("accounts:user-detail", args=[viewer.pk])).content.decode()
    # Saving the same role again changes nothing and records nothing.
    admin_client.post(reverse("accounts:user-role", args=[viewer.pk]), {"role": EDITOR})
    assert AuditEntry.objects.filter(kind="role", actor=admin_user).count() == 1


def test_deactivating_asks_first_then_ends_sessions_and_tokens(admin_client, client_for, viewer):
    _, raw = apitoken_issue(user=viewer)
    their_session = client_for(viewer)
    url = reverse("accounts:user-deactivate", args=[viewer.pk])
    confirm = admin_client.get(url)
    assert confirm.status_code == 200 and b"Deactivate" in confirm.content
    viewer.refresh_from_db()
    assert viewer.is_active
    assert admin_client.post(url).status_code == 302
    viewer.refresh_from_db()
    assert not viewer.is_active
    assert their_session.get(reverse("aliases:list")).status_code == 302
    assert Client().get("/api/models", HTTP_AUTHORIZATION=f"Bearer {raw}").status_code == 401
    assert Client().post(reverse("login"), {"username": viewer.username, "password": TEST_PASSWORD}).status_code == 200
    entry = AuditEntry.objects.get(kind="user", action="deactivate")
    assert (entry.before, entry.after) == ({"is_active": True}, {"is_active": False})
    assert admin_client.post(reverse("accounts:user-reactivate", args=[viewer.pk])).status_code == 302
    viewer.refresh_from_db()
    assert viewer.is_active
    assert AuditEntry.objects.filter(kind="user", action="reactivate").count() == 1


def test_the_last_admin_cannot_demote_or_deactivate_themselves(admin_client, admin_user):
    entries = AuditEntry.objects.count()
    detail = reverse("accounts:user-detail", args=[admin_user.pk])
    response = admin_client.post(reverse("accounts:user-role", args=[admin_user.pk]), {"role": VIEWER}, follow=True)
    assert "the only active admin" in response.content.decode()
    response = admin_client.post(reverse("accounts:user-deactivate", args=[admin_user.pk]), follow=True)
    assert response.redirect_chain[-1][0] == detail
    assert "the only active admin" in response.content.decode()
    admin_user.refresh_from_db()
    assert admin_user.is_active and role_of(admin_user) == ADMIN
    assert AuditEntry.objects.count() == entries


def test_with_a_second_admin_an_admin_may_step_down(admin_client, admin_user, make_user):
    make_user(ADMIN, "bob-admin")
    response = admin_client.post(reverse("accounts:user-role", args=[admin_user.pk]), {"role": EDITOR})
    assert response.status_code == 302
    admin_user.refresh_from_db()
    assert role_of(admin_user) == EDITOR


def test_a_new_password_ends_the_users_sessions(admin_client, admin_user, client_for, viewer):
    their_session = client_for(viewer)
    url = reverse("accounts:user-password", args=[viewer.pk])
    assert admin_client.get(url).status_code == 200
    weak = admin_client.post(url, {"new_password1": "short", "new_password2": "short"})
    assert weak.status_code == 400
    response = admin_client.post(url, {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})
    assert response.status_code == 302
    assert their_session.get(reverse("aliases:list")).status_code == 302
    assert Client().post(reverse("login"), {"username": viewer.username, "password": NEW_PASSWORD}).status_code == 302
    entry = AuditEntry.objects.get(kind="user", action="set_password")
    assert entry.actor == admin_user
    assert NEW_PASSWORD not in str(entry.before) + str(entry.after)


def test_an_admin_setting_their_own_password_stays_signed_in(admin_client, admin_user):
    url = reverse("accounts:user-password", args=[admin_user.pk])
    admin_client.post(url, {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})
    assert admin_client.get(USERS_URL).status_code == 200


def test_revoking_a_users_tokens_asks_first_and_records_each(admin_client, viewer):
    _, raw = apitoken_issue(user=viewer, name="one")
    apitoken_issue(user=viewer, name="two")
    url = reverse("accounts:user-revoke-tokens", args=[viewer.pk])
    confirm = admin_client.get(url)
    assert confirm.status_code == 200 and b"Revoke all tokens" in confirm.content
    assert ApiToken.objects.filter(user=viewer).count() == 2
    response = admin_client.post(url, follow=True)
    assert "Revoked 2 tokens" in response.content.decode()
    assert not ApiToken.objects.filter(user=viewer).exists()
    assert Client().get("/api/models", HTTP_AUTHORIZATION=f"Bearer {raw}").status_code == 401
    entries = AuditEntry.objects.filter(kind="token", action="revoke")
    assert sorted(entry.before["label"] for entry in entries) == ["one", "two"]


def test_user_pages_work_without_javascript_and_have_no_inline_code(admin_client, viewer):
    for url in (
        USERS_URL,
        reverse("accounts:user-create"),
        reverse("accounts:user-detail", args=[viewer.pk]),
        reverse("accounts:user-password", args=[viewer.pk]),
        reverse("accounts:user-deactivate", args=[viewer.pk]),
        reverse("accounts:user-revoke-tokens", args=[viewer.pk]),
    ):
        page = admin_client.get(url).content.decode()
        assert " style=" not in page, url
        assert "<script>" not in page, url
    detail = admin_client.get(reverse("accounts:user-detail", args=[viewer.pk])).content.decode()
    # Every action is a plain link to a page or a plain form.
    assert f'action="{reverse("accounts:user-role", args=[viewer.pk])}"' in detail
    assert f'href="{reverse("accounts:user-deactivate", args=[viewer.pk])}"' in detail


def test_unknown_users_are_404(admin_client):
    assert admin_client.get(reverse("accounts:user-detail", args=[999999])).status_code == 404
    assert admin_client.post(reverse("accounts:user-deactivate", args=[999999])).status_code == 404
