"""403, 404 and 500 pages in the app's own style, with a title and a way back."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AnonymousUser
from django.test import RequestFactory
from django.urls import reverse

from config import views

pytestmark = pytest.mark.django_db


def test_a_forbidden_page_says_who_you_are_and_why(client_for, viewer):
    response = client_for(viewer).get(reverse("aliases:create"))
    assert response.status_code == 403
    page = response.content.decode()
    assert "<title>You can&#x27;t do that · ModelDesk</title>" in page
    assert 'data-testid="error-page" data-status="403"' in page
    assert f"signed in as <strong>{viewer.username}</strong> with the role <strong>viewer</strong>" in page
    assert 'aria-label="Main"' in page  # the app's nav, not a bare error
    assert f'href="{reverse("home")}">Back to the dashboard</a>' in page


def test_a_missing_page_names_the_address(client_for, viewer):
    response = client_for(viewer).get("/aliases/no-such-alias/")
    assert response.status_code == 404
    page = response.content.decode()
    assert "<title>Not found · ModelDesk</title>" in page
    assert "<code>/aliases/no-such-alias/</code>" in page


def test_the_server_error_page_is_in_the_app_style():
    request = RequestFactory().get("/aliases/")
    request.user = AnonymousUser()
    response = views.server_error(request)
    assert response.status_code == 500
    assert b"<title>Something went wrong \xc2\xb7 ModelDesk</title>" in response.content


def test_the_server_error_page_still_renders_when_its_nav_cannot(monkeypatch):
    """What broke may be the session or the database the nav needs: the page then comes without them."""

    def broken(*args, **kwargs):
        raise RuntimeError("database is gone")

    monkeypatch.setattr(views, "_error_page", broken)
    response = views.server_error(RequestFactory().get("/aliases/"))
    assert response.status_code == 500
    page = response.content.decode()
    assert "Something went wrong" in page
    assert "The error was logged." in page
    assert "Sign out" not in page


def test_an_address_that_matches_nothing_gets_the_404_page(client_for, viewer, client):
    for visitor in (client_for(viewer), client):
        visitor.raise_request_exception = False
        response = visitor.get("/no/such/page/")
        assert response.status_code == 404
        assert "<title>Not found · ModelDesk</title>" in response.content.decode()
