"""The pages work under the Content-Security-Policy in a real browser: nothing is refused (conftest fails any test
whose pages report a violation), the Swagger UI and the Django admin included, and progress bars still move."""

from __future__ import annotations

from django.conf import settings
from playwright.sync_api import expect

from modelfiles.models import Download
from tests.browser.helpers import BROWSER_TEST, login
from tests.factories import AliasFactory
from tests.modelfiles import make_download

pytestmark = BROWSER_TEST


def test_a_refused_inline_style_and_script_are_reported(page, viewer, security_violations):
    login(page, viewer)
    page.evaluate(
        """() => {
            document.body.insertAdjacentHTML("beforeend", '<p id="injected" style="color: red">x</p>');
            const script = document.createElement("script");
            script.textContent = "window.ranInline = true";
            document.body.append(script);
        }"""
    )
    page.evaluate("() => new Promise(done => setTimeout(done, 100))")
    assert page.evaluate("() => window.ranInline === undefined")
    assert page.evaluate("() => document.getElementById('injected').style.color") == ""
    refused = " ".join(security_violations)
    assert "style-src" in refused and "script-src" in refused, security_violations
    security_violations.clear()  # seen and expected: this test is about the detector


def test_the_api_docs_render_under_the_policy(page, viewer, shot):
    login(page, viewer)
    page.goto("/api/docs/")
    # Swagger UI has fetched the schema (connect-src) and drawn its operations.
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("ModelDesk API")
    expect(page.locator(".opblock").first).to_be_visible()
    page.locator(".opblock-summary").first.click()
    expect(page.locator(".opblock-body").first).to_be_visible()
    shot(page, "api-docs")


def test_the_django_admin_works_under_the_policy(page, admin_user, shot):
    AliasFactory(alias="admin-sees-this")
    login(page, admin_user)
    page.goto("/admin/")
    expect(page.locator("#site-name")).to_be_visible()
    shot(page, "admin-index")
    page.goto("/admin/aliases/alias/")
    expect(page.locator("#result_list")).to_contain_text("admin-sees-this")
    # actions.js (a static file) ticks the rows and counts them.
    page.locator("#action-toggle").check()
    expect(page.locator(".action-counter")).to_contain_text("1 of 1 selected")
    page.goto("/admin/aliases/alias/add/")
    expect(page.locator("#alias_form")).to_be_visible()
    shot(page, "admin-add-alias")


def test_progress_bars_follow_the_download_without_inline_styles(page, viewer, shot):
    download = make_download(
        repo="acme/Bar-GGUF",
        filename="bar.Q4_K_M.gguf",
        status=Download.Status.DOWNLOADING,
        bytes_total=1000,
        bytes_done=250,
    )
    login(page, viewer)
    page.goto("/files/downloads/")
    bar = page.locator("#active-downloads .progress-bar")

    def width_share() -> float:
        return bar.evaluate("(el) => el.getBoundingClientRect().width / el.parentElement.getBoundingClientRect().width")

    expect(bar).to_have_class("progress-bar pct-25")
    assert abs(width_share() - 0.25) < 0.02
    Download.objects.filter(pk=download.pk).update(bytes_done=640)
    expect(bar).to_have_class("progress-bar pct-64", timeout=3_000)
    assert abs(width_share() - 0.64) < 0.02
    shot(page, "progress-64")


def test_the_browser_understands_the_permissions_policy_and_denies_its_features(page, viewer):
    login(page, viewer)
    # Chromium ignores a feature name it does not know (and says so only in DevTools): each must be one it knows.
    known = set(page.evaluate("() => document.featurePolicy.features()"))
    allowed = set(page.evaluate("() => document.featurePolicy.allowedFeatures()"))
    denied = set(settings.PERMISSIONS_POLICY)
    assert denied - known == set()
    assert denied & allowed == set()
    assert {"camera", "microphone", "geolocation"} <= denied
