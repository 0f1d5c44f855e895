"""Real Chromium (Debian's package) driven by Playwright against a live server; see README "Browser tests".

Without Chromium the browser tests are deselected and the run says so in its summary; with CI=true they are kept
and fail, so a CI machine that lost its browser cannot pass by skipping them.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.conf import settings
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    Playwright,
    expect,
    sync_playwright,
)

from tests.browser.helpers import DESKTOP

HERE = Path(__file__).resolve().parent
DEFAULT_CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = Path(settings.BASE_DIR) / "test-artifacts" / "screenshots"
# Headless, offline and quiet: no sandbox (CI runs as root), no GPU, and none of the background requests a
# fresh profile makes (on a machine without internet they fill the log with refused connections).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--headless",
]
# Generous for a loaded two-core CI machine; a passing journey never waits this long.
TIMEOUT_MS = 10_000
MISSING = pytest.StashKey[str]()
# Every page reports what its Content-Security-Policy refused (an inline script or style, a foreign image...):
# Playwright runs this before any script of the page, and its binding is outside the page's policy.
REPORT_VIOLATIONS = """document.addEventListener("securitypolicyviolation", (event) => {
    window.reportSecurityViolation(`${event.effectiveDirective} refused ${event.blockedURI || "?"} `
        + `(${event.sourceFile || location.pathname}:${event.lineNumber}) on ${location.pathname}${location.search}`);
});"""
# What Chromium itself logs when the policy refuses something (also what happens before the listener is in place).
HEADER_COMPLAINTS = ("Content Security Policy",)
CALL_FAILED = pytest.StashKey[bool]()


def chromium_path() -> Path:
    return Path(os.environ.get("CHROMIUM_PATH") or DEFAULT_CHROMIUM)


def chromium_missing_reason() -> str | None:
    path = chromium_path()
    if path.is_file() and os.access(path, os.X_OK):
        return None
    return f"Chromium not found at {path}; install Debian's chromium package (or set CHROMIUM_PATH)"


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def _is_browser_test(item: pytest.Item) -> bool:
    return HERE in Path(str(item.path)).resolve().parents


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    browser_items = [item for item in items if _is_browser_test(item)]
    reason = chromium_missing_reason()
    if not browser_items or reason is None:
        return
    config.stash[MISSING] = reason
    if in_ci():
        return  # kept: the `browser` fixture fails each of them with the reason
    items[:] = [item for item in items if not _is_browser_test(item)]
    config.hook.pytest_deselected(items=browser_items)


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    reason = config.stash.get(MISSING, None)
    if reason is None:
        return
    if in_ci():
        terminalreporter.write_line(f"browser tests FAILED: {reason} (CI=true: they must run)", red=True, bold=True)
    else:
        terminalreporter.write_line(f"browser tests NOT run: {reason}", yellow=True, bold=True)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call):
    report = yield
    if report.when == "call":
        item.stash[CALL_FAILED] = report.failed
    return report


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    reason = chromium_missing_reason()
    if reason is not None:
        pytest.fail(f"{reason} (CI=true: browser tests must run)", pytrace=False)
    # Playwright's sync API keeps an asyncio loop running in this thread for as long as it is started; the tests'
    # own ORM calls (factories, asserts) are ordinary synchronous code and must not be refused as "async unsafe".
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        with sync_playwright() as instance:
            yield instance


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    """One Chromium for the whole run; each test gets a fresh context (cookies, storage) of its own."""
    browser = playwright.chromium.launch(executable_path=str(chromium_path()), args=CHROMIUM_ARGS, headless=True)
    expect.set_options(timeout=TIMEOUT_MS)
    yield browser
    browser.close()


@pytest.fixture
def new_context(
    request: pytest.FixtureRequest, browser: Browser, live_server, security_violations: list[str]
) -> Iterator[Callable[..., BrowserContext]]:
    """Open another browser context (another person at another computer); all are closed after the test.

    A JavaScript error on any page fails the test: a broken script is a broken page even if the journey passes.
    So does anything the Content-Security-Policy refused (`security_violations`): under the policy, refused
    means broken, and it would mean something inline crept back into a page.
    When the test failed, every open page is saved as a screenshot named "failed-...", to see what went wrong.
    """
    contexts: list[BrowserContext] = []
    errors: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error" and any(text in message.text for text in HEADER_COMPLAINTS):
            security_violations.append(f"console: {message.text}")

    def watch(page: Page) -> None:
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on("console", on_console)

    def make(**options) -> BrowserContext:
        context = browser.new_context(base_url=live_server.url, viewport=options.pop("viewport", DESKTOP), **options)
        context.set_default_timeout(TIMEOUT_MS)
        context.expose_binding("reportSecurityViolation", lambda source, text: security_violations.append(text))
        context.add_init_script(REPORT_VIOLATIONS)
        context.on("page", watch)
        contexts.append(context)
        return context

    yield make
    for context in contexts:
        for page in context.pages:
            # A round trip to each page delivers reports still on their way.
            with contextlib.suppress(Exception):
                page.evaluate("() => new Promise(done => setTimeout(done, 50))")
    failed = request.node.stash.get(CALL_FAILED, False)
    for number, context in enumerate(contexts, start=1):
        if failed:
            for index, page in enumerate(context.pages, start=1):
                path = _folder_for(request) / f"failed-context{number}-page{index}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                with contextlib.suppress(Exception):
                    page.screenshot(path=str(path), full_page=True)
        context.close()
    assert errors == [], f"JavaScript errors on the pages: {errors}"
    assert security_violations == [], f"refused by the Content-Security-Policy or the headers: {security_violations}"


@pytest.fixture
def security_violations() -> list[str]:
    """What the pages' policies refused so far in this test (each report, and Chromium's console line about it)."""
    return []


@pytest.fixture
def context(new_context) -> BrowserContext:
    return new_context()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()


@pytest.fixture(autouse=True)
def hf_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """An empty Hugging Face cache of the test's own: the live server (in this process) reads HF_HOME per call."""
    home = tmp_path / "hf_home"
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(home))
    return home


def _folder_for(request: pytest.FixtureRequest) -> Path:
    return SCREENSHOTS / re.sub(r"[^A-Za-z0-9_.-]+", "-", request.node.name).strip("-")


@pytest.fixture
def shot(request: pytest.FixtureRequest) -> Callable[[Page, str], Path]:
    """`shot(page, "name")` saves a full-page screenshot as test-artifacts/screenshots/<test>/NN-name.png."""
    folder = _folder_for(request)
    shutil.rmtree(folder, ignore_errors=True)
    count = 0

    def take(page: Page, name: str) -> Path:
        nonlocal count
        count += 1
        path = folder / f"{count:02d}-{re.sub(r'[^A-Za-z0-9_.-]+', '-', name).strip('-')}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(path), full_page=True, animations="disabled")
        # A full-page shot resizes the viewport and back; let two frames pass so the next click lands where
        # the page now is, not where it was during the shot.
        page.evaluate("() => new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))")
        return path

    return take
