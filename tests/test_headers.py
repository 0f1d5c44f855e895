"""Security headers: a Content-Security-Policy that allows no inline script or style, with pages that need none;
Permissions-Policy; and signed-in answers that no cache may keep."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from django.test import Client
from django.urls import reverse

from config.accounts.roles import ADMIN, EDITOR, OPERATOR, VIEWER
from config.accounts.services import apitoken_create
from modelfiles.models import Download
from tests.factories import AliasFactory
from tests.modelfiles import make_download, make_modelfile

pytestmark = pytest.mark.django_db

# Script types a browser runs; anything else (Django admin's json_script data blocks) is data, which CSP allows.
SCRIPT_TYPES = {"", "text/javascript", "module", "application/javascript"}


class InlineCodeFinder(HTMLParser):
    """Everything in a page that a CSP without 'unsafe-inline' would refuse: inline <script> bodies, <style>
    elements, style="" attributes, on*="" handlers and javascript: URLs."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self._script: str | None = None
        self._body: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        for name, value in values.items():
            is_url = name in ("href", "src", "action", "formaction")
            if name == "style" or name.startswith("on") or (is_url and value.strip().lower().startswith("javascript:")):
                self.found.append(f'<{tag} {name}="{value}">')
        if tag == "style":
            self.found.append("<style> element")
        if tag == "script" and "src" not in values and values.get("type", "").lower() in SCRIPT_TYPES:
            self._script = tag
            self._body = []

    def handle_data(self, data: str) -> None:
        if self._script:
            self._body.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "script" and self._script:
            body = "".join(self._body).strip()
            if body:
                self.found.append(f"inline <script>: {body[:80]!r}")
            self._script = None


def inline_code(html: str) -> list[str]:
    finder = InlineCodeFinder()
    finder.feed(html)
    finder.close()
    return finder.found


def policy_of(response) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]
    directives = {}
    for part in header.split(";"):
        name, *values = part.split()
        directives[name] = values
    return directives


def test_the_finder_sees_what_the_policy_refuses():
    html = """<p style="color:red">x</p><a href="JavaScript:alert(1)">y</a><img src=x onerror="alert(1)">
        <style>p{}</style><script>alert(1)</script><script src="/static/a.js"></script>
        <script type="application/json" id="data">{"a": 1}</script><script></script>"""
    assert inline_code(html) == [
        '<p style="color:red">',
        '<a href="JavaScript:alert(1)">',
        '<img onerror="alert(1)">',
        "<style> element",
        "inline <script>: 'alert(1)'",
    ]


@pytest.fixture
def site():
    """Something on every page: an alias, a model file and an active download (a live progress bar)."""
    alias = AliasFactory(alias="llama-chat")
    make_modelfile(repo="acme/Tiny-GGUF", filename="tiny.Q4_K_M.gguf")
    make_download(status=Download.Status.DOWNLOADING, bytes_total=1000, bytes_done=250, speed=50.0, eta=15.0)
    make_download(status=Download.Status.QUEUED)
    make_download(status=Download.Status.FAILED, error_code="hub_error", error_message="The Hub answered 503.")
    return {"alias": alias}


def main_pages(alias) -> list[str]:
    return [
        reverse("home"),
        reverse("aliases:list"),
        reverse("aliases:detail", args=[alias.alias]),
        reverse("aliases:create"),
        reverse("aliases:edit", args=[alias.alias]),
        reverse("modelfiles:list"),
        reverse("modelfiles:pull"),
        reverse("modelfiles:downloads"),
        reverse("api-docs"),
    ]


ADMIN_PAGES = ["/admin/", "/admin/aliases/alias/", "/admin/auth/user/", "/admin/modelfiles/download/"]


@pytest.mark.parametrize("role", [VIEWER, OPERATOR, EDITOR, ADMIN])
def test_every_main_page_runs_under_a_policy_without_inline_code(make_user, client_for, site, role):
    client = client_for(make_user(role))
    pages = main_pages(site["alias"]) + (ADMIN_PAGES if role == ADMIN else [])
    seen = {}
    for url in pages:
        response = client.get(url)
        # A page a role may not open is the app's 403 page: that one must be clean too.
        assert response.status_code in (200, 403), (url, response.status_code)
        seen[url] = response.status_code
        policy = policy_of(response)
        assert policy["script-src"] == ["'self'"] and policy["style-src"] == ["'self'"], url
        assert "'unsafe-inline'" not in response["Content-Security-Policy"]
        assert "'unsafe-eval'" not in response["Content-Security-Policy"]
        assert inline_code(response.content.decode()) == [], url
    # The pages were really rendered, not refused across the board.
    assert seen[reverse("modelfiles:downloads")] == 200 and seen[reverse("home")] == 200
    if role == ADMIN:
        assert all(seen[url] == 200 for url in ADMIN_PAGES)


def test_fragments_that_htmx_swaps_in_carry_no_inline_code(operator_client, site):
    htmx = {"HTTP_HX_REQUEST": "true", "HTTP_HX_CURRENT_URL": "http://testserver/files/downloads/"}
    for url in [reverse("modelfiles:downloads-active"), reverse("modelfiles:downloads"), reverse("home")]:
        response = operator_client.get(url, **htmx)
        assert response.status_code == 200, url
        assert "<html" not in response.content.decode(), f"{url} should answer a fragment"
        assert inline_code(response.content.decode()) == [], url


def test_progress_bars_are_drawn_by_classes_the_stylesheet_defines(operator_client, site, client):
    page = operator_client.get(reverse("modelfiles:downloads")).content.decode()
    section = page[page.index('id="active-downloads"') : page.index("</section>")]
    assert re.search(r'class="progress-bar[^"]*\bpct-25\b', section)
    stylesheet = b"".join(client.get("/static/css/modeldesk.css").streaming_content).decode()
    for percent in (0, 25, 99, 100):
        assert f".pct-{percent} {{ width: {percent}%; }}" in stylesheet


def test_the_policy_shuts_out_plugins_framing_and_foreign_forms(viewer_client):
    policy = policy_of(viewer_client.get(reverse("home")))
    assert policy["default-src"] == ["'self'"]
    assert policy["object-src"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["form-action"] == ["'self'"]
    assert policy["base-uri"] == ["'self'"]
    assert policy["connect-src"] == ["'self'"]
    assert policy["img-src"] == ["'self'", "data:"]


def test_htmx_is_told_not_to_inject_its_indicator_style(viewer_client):
    html = viewer_client.get(reverse("home")).content.decode()
    match = re.search(r"<meta name=\"htmx-config\" content='([^']*)'>", html)
    assert match, "base.html must configure htmx"
    assert '"includeIndicatorStyles": false' in match.group(1)
    assert '"allowEval": false' in match.group(1)
    # Signed-in pages are not kept in localStorage for htmx's back button either (Cache-Control covers HTTP).
    assert '"historyCacheSize": 0' in match.group(1)


def test_the_api_docs_start_swagger_from_a_script_url(viewer_client):
    html = viewer_client.get(reverse("api-docs")).content.decode()
    scripts = re.findall(r'<script src="([^"]+)"', html)
    start = [src for src in scripts if not src.startswith("/static/")]
    assert start == [reverse("api-docs") + "?script="]
    script = viewer_client.get(start[0])
    assert script.status_code == 200
    assert script["Content-Type"].startswith("application/javascript")
    assert "SwaggerUIBundle" in script.content.decode()
    # No validator badge: it would be an image from a public service, refused by img-src anyway.
    assert '"validatorUrl": null' in script.content.decode()


def test_every_answer_carries_a_permissions_policy(client, viewer_client):
    for response in (client.get(reverse("login")), viewer_client.get(reverse("home"))):
        features = dict(part.strip().split("=", 1) for part in response["Permissions-Policy"].split(","))
        for feature in ("camera", "microphone", "geolocation", "payment", "usb"):
            assert features[feature] == "()"


def cache_control(response) -> set[str]:
    return {part.strip() for part in response.get("Cache-Control", "").split(",") if part.strip()}


def test_signed_in_pages_and_fragments_are_never_stored(viewer_client, site):
    for response in (
        viewer_client.get(reverse("home")),
        viewer_client.get(reverse("aliases:list")),
        viewer_client.get(reverse("aliases:list"), HTTP_HX_REQUEST="true"),
        viewer_client.get(reverse("api-docs")),
    ):
        assert response.status_code == 200
        assert {"private", "no-store"} <= cache_control(response)


def test_api_answers_are_never_stored_with_a_session_or_a_token(viewer, viewer_client):
    assert {"private", "no-store"} <= cache_control(viewer_client.get("/api/models"))
    token = apitoken_create(user=viewer)
    response = Client().get("/api/models", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert {"private", "no-store"} <= cache_control(response)


def test_the_active_downloads_poll_stays_revalidated_in_the_browser_only(viewer_client, site):
    # It answers "nothing changed" with a bodiless 304, which needs the browser to keep its copy: private (no
    # shared cache stores it) and no-cache (never shown without asking), but not no-store.
    response = viewer_client.get(reverse("modelfiles:downloads-active"), HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert {"private", "no-cache"} <= cache_control(response)
    assert "no-store" not in cache_control(response)


def test_static_files_stay_cacheable(viewer_client):
    response = viewer_client.get("/static/css/modeldesk.css")
    assert response.status_code == 200
    assert "no-store" not in cache_control(response)
    assert "private" not in cache_control(response)
    assert "Content-Security-Policy" not in response


@pytest.mark.parametrize("url", ["/login/", "/admin/login/"])
def test_the_login_pages_are_not_stored_and_run_under_the_policy(client, url):
    response = client.get(url)
    assert response.status_code == 200
    # Django's login views mark themselves never_cache: the form carries a CSRF token of this visitor's own.
    assert {"private", "no-store"} <= cache_control(response)
    assert "'unsafe-inline'" not in response["Content-Security-Policy"]
    assert inline_code(response.content.decode()) == []


def test_error_pages_run_under_the_policy(viewer_client):
    for url, status in [("/aliases/no-such-alias/", 404), (reverse("aliases:create"), 403)]:
        response = viewer_client.get(url)
        assert response.status_code == status
        assert "'unsafe-inline'" not in response["Content-Security-Policy"]
        assert inline_code(response.content.decode()) == [], url


def test_signed_out_answers_are_not_marked_private(client):
    response = client.get("/api/models")
    assert response.status_code == 401
    assert "private" not in cache_control(response)
    assert "Permissions-Policy" in response
