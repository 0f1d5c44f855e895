"""The nav and the alias list's filter form are rendered once per distinct input (config/templatetags/layout.py):
each answer still shows its own values, its visitor's links and CSRF token."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse

pytestmark = pytest.mark.django_db

CSRF_INPUT = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


def nav_of(html: str) -> str:
    return html[html.index('<nav class="navbar') : html.index("</nav>")]


def test_each_answer_carries_its_own_csrf_token_in_the_cached_nav(editor, viewer):
    clients = []
    for user in (editor, editor, viewer):
        client = Client(enforce_csrf_checks=True)
        client.force_login(user)
        clients.append(client)
    pages = [client.get("/aliases/").content.decode() for client in clients]
    tokens = [CSRF_INPUT.search(nav_of(page))[1] for page in pages]
    assert "csrf-placeholder" not in "".join(pages)
    assert len(set(tokens)) == 3  # masked anew for every answer, as {% csrf_token %} does
    # Each visitor's Sign out works with the token their page gave them, and not with another's.
    assert clients[0].post("/logout/", {"csrfmiddlewaretoken": tokens[2]}).status_code == 403
    for client, token in zip(clients, tokens, strict=True):
        assert client.post("/logout/", {"csrfmiddlewaretoken": token}).status_code == 302


def test_the_nav_shows_each_user_their_own_name_role_and_links(client_for, editor, operator, admin_user):
    editor_nav = nav_of(client_for(editor).get("/aliases/").content.decode())
    operator_nav = nav_of(client_for(operator).get("/aliases/").content.decode())
    admin_nav = nav_of(client_for(admin_user).get("/modelfiles/").content.decode())
    assert "edith-editor · editor" in editor_nav and "otto-operator · operator" in operator_nav
    assert ">Pull</a>" in operator_nav and ">Pull</a>" not in editor_nav
    assert ">Users</a>" in admin_nav and ">Users</a>" not in editor_nav
    # The current page is marked in each one.
    assert re.search(r'class="nav-link active" aria-current="page"\s+href="/aliases/"', editor_nav)
    assert not re.search(r'active" aria-current="page"\s+href="/aliases/"', admin_nav)


def test_the_filter_form_shows_the_values_of_each_request(client_for, editor):
    client = client_for(editor)
    first = client.get("/aliases/", {"q": "llama", "source": "user"}).content.decode()
    second = client.get("/aliases/", {"q": "qwen"}).content.decode()
    again = client.get("/aliases/", {"q": "llama", "source": "user"}).content.decode()
    assert 'value="llama"' in first and '<option value="user" selected>' in first
    assert 'value="qwen"' in second and 'value="llama"' not in second and "selected>User" not in second
    assert 'value="llama"' in again and '<option value="user" selected>' in again


def test_a_filter_form_with_errors_shows_them(client_for, editor):
    client = client_for(editor)
    page = client.get("/aliases/", {"q": "n_ctx:>=lots"}).content.decode()
    assert "n_ctx needs" in page
    assert "n_ctx needs" not in client.get("/aliases/", {"q": "n_ctx:>=8"}).content.decode()


def test_the_lists_small_parts_follow_each_request(client_for, editor, alias_factory):
    for name in ("alpha-one", "alpha-two", "beta"):
        alias_factory(alias=name)
    client = client_for(editor)
    searched = client.get("/aliases/", {"q": "a", "sort": "-repo"}).content.decode()
    plain = client.get("/aliases/").content.decode()
    assert "Export these:" in searched and "format=json&amp;q=a" in searched
    assert "Export all:" in plain and "q=a" not in plain
    # Each page size keeps the search and the order, and marks the size shown.
    assert 'href="/aliases/?q=a&amp;sort=-repo&amp;per_page=10"' in searched
    assert 'href="/aliases/?per_page=10"' in plain
    assert re.search(r'page-item active">\s*<a class="page-link" href="/aliases/\?per_page=30"', plain)
    # The column picker shows what this user chose, and sends them back to the list they were on.
    assert "(2 hidden)" in plain and 'name="next" value="/aliases/"' in plain
    client.post(reverse("aliases:columns"), {"columns": ["repo", "filename"], "next": "/aliases/?q=a"})
    narrowed = client.get("/aliases/").content.decode()
    assert "(2 hidden)" not in narrowed and re.search(r"\(\d+ hidden\)", narrowed)
    assert re.search(r'value="repo" checked>', narrowed) and not re.search(r'value="source" checked>', narrowed)
