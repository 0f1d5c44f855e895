"""The signed-in user and their permissions come from the cache (config/accounts/middleware.py): a poll costs no
query for them, and every change that matters is seen on the very next request."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, Permission
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from config.accounts.roles import OPERATOR, VIEWER
from config.accounts.services import user_deactivate, user_set_password, user_set_role
from modelfiles.models import Download
from tests.modelfiles import make_download

pytestmark = pytest.mark.django_db

ACTIVE_URL = reverse("modelfiles:downloads-active")
DOWNLOADS_URL = reverse("modelfiles:downloads")
HTMX = {"HTTP_HX_REQUEST": "true", "HTTP_HX_CURRENT_URL": f"http://testserver{DOWNLOADS_URL}"}


def poll(client: Client):
    return client.get(ACTIVE_URL, **HTMX)


def test_a_poll_asks_the_database_for_neither_the_user_nor_their_permissions(client_for, operator):
    make_download(status=Download.Status.DOWNLOADING, bytes_total=1000, bytes_done=100)
    client = client_for(operator)
    assert poll(client).status_code == 200
    with CaptureQueriesContext(connection) as queries:
        again = poll(client)
    assert again.status_code == 200 and b">Cancel</button>" in again.content
    tables = " ".join(query["sql"] for query in queries.captured_queries)
    assert "auth_user" not in tables and "auth_permission" not in tables and "modelfiles_download" not in tables


def test_a_deactivated_user_is_signed_out_on_their_next_request(client_for, viewer):
    make_download(status=Download.Status.QUEUED)
    client = client_for(viewer)
    assert poll(client).status_code == 200
    user_deactivate(user=viewer)
    refused = poll(client)
    assert refused.status_code == 204 and refused["HX-Redirect"].startswith(reverse("login"))
    assert client.get(DOWNLOADS_URL).status_code == 302


def test_a_role_taken_away_takes_effect_on_the_next_request(client_for, make_user):
    download = make_download(status=Download.Status.QUEUED)
    person = make_user(OPERATOR, "olive")
    client = client_for(person)
    assert b">Cancel</button>" in poll(client).content
    user_set_role(user=person, role=VIEWER)
    assert b">Cancel</button>" not in poll(client).content
    cancel = client.post(reverse("modelfiles:download-cancel", args=[download.pk]), {"next": DOWNLOADS_URL})
    assert cancel.status_code == 403
    assert Download.objects.get(pk=download.pk).status == Download.Status.QUEUED


def test_a_permission_taken_from_a_role_takes_effect_on_the_next_request(client_for, viewer):
    make_download(status=Download.Status.QUEUED)
    client = client_for(viewer)
    assert poll(client).status_code == 200
    view_download = Permission.objects.get(codename="view_download", content_type__app_label="modelfiles")
    Group.objects.get(name=VIEWER).permissions.remove(view_download)
    assert poll(client).status_code == 403


def test_signing_out_ends_the_session_for_every_copy_of_its_cookie(client_for, viewer):
    make_download(status=Download.Status.QUEUED)
    client = client_for(viewer)
    assert poll(client).status_code == 200
    copy = Client()
    copy.cookies = client.cookies  # the same cookie in another tab, or taken by someone else
    client.post(reverse("logout"))
    assert poll(copy).status_code == 204
    assert copy.get(DOWNLOADS_URL).status_code == 302


def test_a_new_password_signs_out_the_other_sessions(client_for, viewer):
    make_download(status=Download.Status.QUEUED)
    client = client_for(viewer)
    assert poll(client).status_code == 200
    user_set_password(user=viewer, password="a-new-and-long-passphrase-42")
    assert poll(client).status_code == 204


def test_a_change_made_while_a_request_read_the_user_is_not_undone_by_it(client_for, viewer, monkeypatch):
    from django.contrib import auth

    make_download(status=Download.Status.QUEUED)
    client = client_for(viewer)
    read_user = auth.get_user

    def read_then_changed(request):
        user = read_user(request)
        user_deactivate(user=type(user).objects.get(pk=user.pk))  # lands after the read, before the user is kept
        return user

    monkeypatch.setattr(auth, "get_user", read_then_changed)
    assert poll(client).status_code == 200  # the request in flight still had the user it read
    monkeypatch.undo()
    refused = poll(client)
    assert refused.status_code == 204 and refused["HX-Redirect"].startswith(reverse("login"))
