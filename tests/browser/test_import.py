"""An editor brings a BodhiApp models.yaml: the preview shows one refused row with the closest valid values; the
editor accepts them, imports, finds the aliases in the list, and exports what the search shows."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Page, expect

from aliases.models import Alias
from tests.browser.helpers import BROWSER_TEST, assert_inputs_labelled, assert_titled, flash, login

pytestmark = BROWSER_TEST

MODELS_YAML = Path(__file__).parent.parent / "aliases" / "fixtures" / "models.yaml"


def preview_row(page: Page, number: int):
    return page.get_by_test_id("import-preview").locator(f"tr[data-row='{number}']")


def test_editor_imports_a_bodhi_file_and_fixes_the_refused_row(page, editor, shot, tmp_path):
    login(page, editor)
    page.goto("/aliases/")
    page.get_by_role("link", name="Import").click()
    assert_titled(page, "Import aliases")
    assert_inputs_labelled(page)
    page.get_by_label("Files").set_input_files(str(MODELS_YAML))
    page.get_by_role("button", name="Upload and preview").click()

    expect(page.get_by_test_id("import-counts")).to_contain_text("2 create")
    expect(page.get_by_test_id("import-counts")).to_contain_text("1 error")
    refused = preview_row(page, 3)
    expect(refused).to_have_attribute("data-action", "error")
    expect(refused).to_contain_text("chat_template")
    expect(refused).to_contain_text("temperature")
    shot(page, "import-preview")

    # Importing as it is saves nothing: the whole file or nothing, unless the valid rows are chosen.
    page.get_by_role("button", name="Import", exact=True).click()
    expect(flash(page)).to_contain_text("Nothing was imported")
    assert Alias.objects.count() == 0

    # Accept the offered values, preview again: the row now creates, saying what was replaced.
    preview_row(page, 3).get_by_label("Use the closest valid value: llama2").check()
    preview_row(page, 3).get_by_label("Use the closest valid value: 2.0").check()
    page.get_by_role("button", name="Preview again").click()
    expect(preview_row(page, 3)).to_have_attribute("data-action", "create")
    expect(preview_row(page, 3)).to_contain_text("replaced by the closest valid 'llama2'")
    page.get_by_role("button", name="Import", exact=True).click()

    expect(flash(page)).to_contain_text("Imported: 3 created")
    assert_titled(page, "Aliases")
    legacy = Alias.objects.get(alias="llama2:legacy")
    assert (legacy.chat_template, legacy.temperature) == ("llama2", 2.0)

    # Export what a search shows.
    page.get_by_label("Search").fill("tinyllama")
    expect(page.get_by_test_id("alias-count")).to_contain_text("of 1 alias")
    with page.expect_download() as download:
        page.get_by_test_id("export-links").get_by_role("link", name="BodhiApp YAML").click()
    saved = tmp_path / "aliases.yaml"
    download.value.save_as(saved)
    text = saved.read_text()
    assert "tinyllama:chat" in text and "llama3:instruct" not in text
