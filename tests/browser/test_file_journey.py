"""The file side of an alias, end to end in a real browser (issue 8's journey): an editor sees an alias whose file
was never pulled as missing and cannot pull it; an operator pulls it from the alias page and, without reloading,
watches it download and become local (a real Celery worker, the test Hub); an admin deletes a file no alias uses
after reading the confirmation, and is warned with the alias list before deleting one an alias loads.

Every page is also watched for JavaScript errors, console errors (a failed htmx poll logs one) and anything the
Content-Security-Policy refused (the `new_context` fixture and `console_errors` below).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from huggingface_hub import scan_cache_dir
from playwright.sync_api import Page, expect

from aliases.models import Alias
from config.formatting import human_size
from modelfiles.models import Download, ModelFile
from modelfiles.services import modelfile_sync
from tests.browser.helpers import BROWSER_TEST, assert_titled, flash, is_console_error, login
from tests.factories import AliasFactory
from tests.gguf_files import tiny_gguf
from tests.hub.server import FakeHub
from tests.modelfiles import COMMIT, cache_file
from tests.workers import celery_worker, set_hub_env

pytestmark = [*BROWSER_TEST, pytest.mark.worker]

MIB = 1024 * 1024
REPO = "acme/Journey-File-GGUF"
FILE = "journey.Q4_K_M.gguf"
SPARE_REPO, SPARE = "acme/Spare-GGUF", "spare.Q8_0.gguf"
KEPT_REPO, KEPT = "acme/Kept-GGUF", "kept.Q4_K_M.gguf"
TEMPLATE = "{% for message in messages %}{{ message.content }}{% endfor %}"


@pytest.fixture(scope="module")
def fake_hub() -> Iterator[FakeHub]:
    with FakeHub() as hub:
        yield hub


@pytest.fixture(scope="module")
def hf_env(fake_hub: FakeHub, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """One cache and one Hub for the module's worker and for the live server (this process)."""
    env = {
        "HF_HOME": str(tmp_path_factory.mktemp("file-journey") / "hf_home"),
        "HF_ENDPOINT": fake_hub.endpoint,
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_XET": "1",
    }
    with pytest.MonkeyPatch.context() as patch:
        set_hub_env(patch, env)
        yield env


@pytest.fixture
def hf_home(hf_env: dict[str, str]) -> Path:
    return Path(hf_env["HF_HOME"])


@pytest.fixture(scope="module")
def worker(django_db_setup, hf_env: dict[str, str]):
    with celery_worker(extra_env=hf_env) as process:
        yield process


@pytest.fixture
def hub(fake_hub: FakeHub, worker) -> Iterator[FakeHub]:
    yield fake_hub
    fake_hub.faults.clear()


@pytest.fixture
def console_errors() -> list[str]:
    """Whatever the test's pages log as a console error (htmx logs a poll answered with an error status there)."""
    return []


@pytest.fixture
def person(new_context, console_errors: list[str]) -> Callable[[], Page]:
    """A page in a browser context of its own (another person at another computer), its console watched."""

    def watch(page: Page) -> None:
        page.on(
            "console",
            lambda message: console_errors.append(f"{page.url}: {message.text}") if is_console_error(message) else None,
        )

    def open_page() -> Page:
        context = new_context()
        context.on("page", watch)
        return context.new_page()

    return open_page


def the_file_content(size: int) -> bytes:
    """A real GGUF header with a chat template, padded to `size` bytes (readers stop after the tensor data)."""
    header = tiny_gguf(context_length=2048, chat_template=TEMPLATE)
    return header + bytes(size - len(header))


def alias_row(page: Page, name: str):
    return page.locator(f'#alias-rows tbody tr[data-alias="{name}"]')


def file_badge(scope):
    return scope.locator("[data-file-status]")


def main_nav(page: Page, name: str) -> None:
    page.get_by_role("navigation", name="Main").get_by_role("link", name=name, exact=True).click()


def test_an_alias_goes_from_missing_to_local_and_an_unused_file_is_deleted(
    person, console_errors, editor, operator, admin_user, hub, hf_home, shot
):
    commit = hub.add_repo(REPO, files={FILE: the_file_content(3 * MIB)})
    # About three seconds on the wire: long enough to watch the progress move, short enough for a test.
    hub.faults.set(throttle_bytes_per_second=MIB, path=FILE)
    spare_content = tiny_gguf(seed=3)
    cache_file(hf_home, SPARE_REPO, SPARE, content=spare_content)
    cache_file(hf_home, KEPT_REPO, KEPT, content=tiny_gguf(seed=4))
    modelfile_sync()
    AliasFactory(alias="journey", repo=REPO, filename=FILE, snapshot="main", chat_template="embedded")
    AliasFactory(alias="kept", repo=KEPT_REPO, filename=KEPT, snapshot="main", chat_template="chatml")

    # --- the editor: sees it missing, and has no Pull button (pulling is the operators' and admins' job) -----------
    editor_page = person()
    login(editor_page, editor)
    main_nav(editor_page, "Aliases")
    assert_titled(editor_page, "Aliases")
    expect(file_badge(alias_row(editor_page, "journey"))).to_have_text("missing")
    expect(file_badge(alias_row(editor_page, "kept"))).to_have_text("local")
    editor_page.get_by_role("combobox", name="File", exact=True).select_option(label="not available")
    expect(editor_page).to_have_url(re.compile(r"[?&]file=unavailable"))
    expect(alias_row(editor_page, "kept")).to_have_count(0)
    expect(alias_row(editor_page, "journey")).to_be_visible()
    expect(editor_page.locator("#alias-rows tbody tr")).to_have_count(1)
    shot(editor_page, "editor-not-available-filter")
    # An editor's link goes to the edit form; the alias's own page is one step up the breadcrumb.
    alias_row(editor_page, "journey").get_by_role("link", name="journey", exact=True).click()
    assert_titled(editor_page, "Edit journey")
    editor_page.get_by_role("navigation", name="breadcrumb").get_by_role("link", name="journey").click()
    assert_titled(editor_page, "journey")
    section = editor_page.locator("#alias-file")
    expect(file_badge(section)).to_have_text("missing")
    expect(section).to_contain_text("The file is not in the local cache: pull it before this alias can load.")
    expect(section.get_by_role("button")).to_have_count(0)
    expect(editor_page.get_by_role("button", name=re.compile("Pull"))).to_have_count(0)
    shot(editor_page, "editor-sees-missing")

    # --- the operator: pulls it from the alias page and watches it arrive without a reload -------------------------
    operator_page = person()
    login(operator_page, operator)
    main_nav(operator_page, "Aliases")
    alias_row(operator_page, "journey").get_by_role("link", name="journey", exact=True).click()
    assert_titled(operator_page, "journey")
    section = operator_page.locator("#alias-file")
    expect(file_badge(section)).to_have_text("missing")
    section.get_by_role("button", name="Pull this file").click()
    expect(flash(operator_page)).to_have_text(f"Queued {REPO}/{FILE}@main.")
    assert_titled(operator_page, "journey")  # back on the alias page, not the downloads page
    operator_page.evaluate("window.__sameDocument = true")
    expect(section.get_by_role("button", name="Pull this file")).to_have_count(0)
    # The progress shows on the page by itself (htmx polls the section while the download is active): the badge
    # and the line below it, from the same answer.
    expect(section).to_contain_text(
        re.compile(
            r"downloading ([1-9]\d?) %\s*The file is being downloaded\.\s*"
            r"Downloading: \1 % — follow it on the downloads page\."
        )
    )
    shot(operator_page, "operator-watches-progress")
    expect(file_badge(section)).to_have_text("local", timeout=20_000)
    expect(section).to_contain_text("The file is in the local cache and can load.")
    expect(section).to_contain_text(
        f"Local copy: {FILE} in snapshot {commit[:8]}; context length 2,048; embeds a chat template."
    )
    assert operator_page.evaluate("window.__sameDocument") is True, "the page was reloaded"
    # Nothing active any more: the section stopped polling.
    expect(operator_page.locator("#alias-file[hx-trigger]")).to_have_count(0)
    shot(operator_page, "operator-sees-local")
    download = Download.objects.get(repo=REPO, filename=FILE)
    assert (download.status, download.commit, download.requested_by) == ("completed", commit, operator)
    main_nav(operator_page, "Aliases")
    expect(file_badge(alias_row(operator_page, "journey"))).to_have_text("local")
    operator_page.get_by_role("combobox", name="File", exact=True).select_option(label="not available")
    expect(operator_page).to_have_url(re.compile(r"[?&]file=unavailable"))
    expect(alias_row(operator_page, "journey")).to_have_count(0)
    shot(operator_page, "operator-list-local")

    # --- the admin: deletes a file no alias uses, after reading what the confirmation says -------------------------
    spare = ModelFile.objects.get(repo=SPARE_REPO, filename=SPARE, present=True)
    admin_page = person()
    login(admin_page, admin_user)
    main_nav(admin_page, "Model files")
    row = admin_page.locator("#modelfile-rows tbody tr").filter(has_text=SPARE)
    expect(row).to_have_count(1)
    row.get_by_role("link", name=SPARE, exact=True).click()
    assert_titled(admin_page, SPARE)
    expect(admin_page.locator('[data-field="aliases"]')).to_have_text(f"{SPARE_REPO}:Q8_0")
    admin_page.get_by_role("link", name="Delete", exact=True).click()
    assert_titled(admin_page, f"Delete {SPARE}")
    expect(admin_page.get_by_role("heading", level=1)).to_have_text(f"Delete {SPARE}?")
    expect(admin_page.locator("dl")).to_contain_text(SPARE_REPO)
    expect(admin_page.locator("dl")).to_contain_text(SPARE)
    expect(admin_page.get_by_test_id("delete-scope")).to_contain_text(
        f"the revision {COMMIT[:8]} (main), {human_size(len(spare_content))}"
    )
    expect(admin_page.get_by_test_id("delete-no-aliases")).to_have_text("No alias you made loads this file.")
    expect(admin_page.get_by_test_id("delete-aliases")).to_have_count(0)
    expect(admin_page.locator("main")).to_contain_text(f"The generated alias {SPARE_REPO}:Q8_0 goes with the file.")
    shot(admin_page, "admin-reads-the-confirmation")
    admin_page.get_by_role("button", name="Delete this revision").click()
    assert_titled(admin_page, "Model files")
    expect(flash(admin_page)).to_have_text(
        f"Deleted {SPARE}@{COMMIT[:8]} from {SPARE_REPO}; {human_size(len(spare_content))} freed."
    )
    expect(admin_page.locator("#modelfile-rows")).not_to_contain_text(SPARE)
    expect(admin_page.locator("#modelfile-rows")).to_contain_text(FILE)
    shot(admin_page, "admin-file-gone")
    assert not ModelFile.objects.filter(pk=spare.pk, present=True).exists()
    assert not Alias.objects.filter(repo=SPARE_REPO).exists()
    report = scan_cache_dir(hf_home / "hub")
    assert report.warnings == []
    cached = {(repo.repo_id, file.file_name) for repo in report.repos for rev in repo.revisions for file in rev.files}
    assert (SPARE_REPO, SPARE) not in cached and (REPO, FILE) in cached and (KEPT_REPO, KEPT) in cached
    assert console_errors == []


def test_deleting_a_file_an_alias_loads_names_the_alias_first(person, console_errors, admin_user, hf_home, shot):
    content = tiny_gguf(seed=5)
    cache_file(hf_home, "acme/Used-GGUF", "used.Q4_K_M.gguf", content=content)
    modelfile_sync()
    AliasFactory(alias="loads-it", repo="acme/Used-GGUF", filename="used.Q4_K_M.gguf", chat_template="chatml")
    used = ModelFile.objects.get(repo="acme/Used-GGUF", filename="used.Q4_K_M.gguf", present=True)

    page = person()
    login(page, admin_user)
    main_nav(page, "Model files")
    row = page.locator("#modelfile-rows tbody tr").filter(has_text="used.Q4_K_M.gguf")
    expect(row).to_contain_text("loads-it")
    row.get_by_role("link", name="Delete", exact=True).click()
    assert_titled(page, "Delete used.Q4_K_M.gguf")
    warning = page.get_by_test_id("delete-aliases")
    expect(warning).to_contain_text("1 alias loads this file and will become unavailable until it is pulled again:")
    expect(warning.get_by_role("listitem")).to_have_text(["loads-it"])
    expect(warning.get_by_role("link", name="loads-it")).to_have_attribute("href", "/aliases/loads-it/")
    expect(page.get_by_test_id("delete-no-aliases")).to_have_count(0)
    shot(page, "used-file-confirmation")
    page.get_by_role("button", name="Delete this revision").click()
    expect(flash(page)).to_contain_text("used.Q4_K_M.gguf")
    assert_titled(page, "Model files")
    expect(page.get_by_role("link", name="used.Q4_K_M.gguf")).to_have_count(0)

    # The alias stays, and now says its file is missing.
    page.goto("/aliases/loads-it/")
    expect(file_badge(page.locator("#alias-file"))).to_have_text("missing")
    shot(page, "alias-missing-after-delete")
    assert not ModelFile.objects.filter(pk=used.pk, present=True).exists()
    assert scan_cache_dir(hf_home / "hub").warnings == []
    assert console_errors == []
