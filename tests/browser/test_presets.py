"""An editor applies a preset in the alias form: the fields fill in place, nothing is saved until Save."""

from __future__ import annotations

import importlib
import re

import pytest
from django.apps import apps
from playwright.sync_api import Page, expect

from aliases.models import Alias
from aliases.services import alias_create
from tests.browser.helpers import BROWSER_TEST, flash, login

pytestmark = BROWSER_TEST


@pytest.fixture(autouse=True)
def builtin_presets(db):
    """The built-in presets as their migration makes them: a transactional test run before this one may have
    emptied the tables (what migrations wrote goes with them), and this journey starts from the built-ins."""
    migration = importlib.import_module("aliases.presets.migrations.0002_builtin_presets_and_roles")
    migration.add_builtins(apps, None)


def test_editor_applies_a_preset_in_the_alias_form_and_saves(page: Page, editor, shot):
    alias_create(
        data={"alias": "chat", "repo": "acme/Chat-GGUF", "filename": "chat.Q4_K_M.gguf", "n_threads": 8}, by=editor
    )
    login(page, editor)
    page.goto("/aliases/chat/edit/")
    expect(page.get_by_label("temperature")).to_have_value("")

    page.get_by_label("Preset").select_option("creative")
    page.get_by_role("button", name="Apply").click()
    expect(page.get_by_label("temperature")).to_have_value("1.2")
    expect(page.get_by_label("top_p")).to_have_value("0.95")
    expect(page.get_by_label("frequency_penalty")).to_have_value("0.5")
    expect(page.get_by_label("n_threads")).to_have_value("8")  # not in the preset: kept
    expect(page.locator("[data-preset-status]")).to_contain_text("Applied preset creative")
    # Filled in place, by the script: still the edit page, and nothing saved.
    expect(page).to_have_url(re.compile(r"/aliases/chat/edit/$"))
    shot(page, "preset-applied")
    alias = Alias.objects.get(alias="chat")
    assert (alias.temperature, alias.version) == (None, 1)

    page.get_by_label("n_threads").press("Enter")  # Enter saves, as in any form; it does not apply again
    expect(flash(page)).to_have_text("Saved alias chat.")
    alias.refresh_from_db()
    assert (alias.temperature, alias.top_p, alias.frequency_penalty, alias.n_threads, alias.version) == (
        1.2,
        0.95,
        0.5,
        8,
        2,
    )


def test_new_alias_from_preset_opens_the_create_form_prefilled(page: Page, editor):
    login(page, editor)
    page.goto("/presets/")
    page.get_by_role("link", name="long-context").click()
    expect(page.get_by_test_id("builtin-badge")).to_be_visible()
    page.get_by_role("link", name="New alias from preset").click()
    expect(page.get_by_label("n_ctx")).to_have_value("32768")
    expect(page.get_by_label("n_keep")).to_have_value("-1")
    assert not Alias.objects.exists()
