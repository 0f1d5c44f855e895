"""Every list page: search, then sort, then page, then Back, with the table checked after each step against what
the server sends for the address the bar then shows (the htmx trigger of the filter form once swallowed the first
click after a search: the address changed, the table did not)."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from playwright.sync_api import Page, expect

from config.audit.services import audit_record
from modelfiles.models import Download
from tests.browser.helpers import BROWSER_TEST, is_console_error, login
from tests.modelfiles import make_download, make_modelfile

pytestmark = BROWSER_TEST

WORD = "findme"
MATCHING = 14  # two pages of 10
OTHERS = 4


def aliases(alias_factory) -> None:
    for number in range(MATCHING):
        alias_factory(alias=f"{WORD}-{number:02d}", repo=f"acme/Repo{(number * 7) % 5}-GGUF")
    for number in range(OTHERS):
        alias_factory(alias=f"other-{number:02d}")


def model_files(alias_factory) -> None:
    for number in range(MATCHING):
        make_modelfile(filename=f"{WORD}-{number:02d}.Q4_K_M.gguf", size=1_000_000 + (number * 7919) % 13 * 1000)
    for number in range(OTHERS):
        make_modelfile(filename=f"other-{number:02d}.Q4_K_M.gguf")


def downloads(alias_factory) -> None:
    for number in range(MATCHING):
        make_download(filename=f"{WORD}-{number:02d}.Q4_K_M.gguf", status=Download.Status.COMPLETED,
                      bytes_total=1000 + (number * 7919) % 13)  # fmt: skip
    for number in range(OTHERS):
        make_download(filename=f"other-{number:02d}.Q4_K_M.gguf", status=Download.Status.FAILED)


def audit_entries(alias_factory) -> None:
    for number in range(MATCHING):
        audit_record(actor=None, kind="alias", action=("create", "update")[number % 2], object_id=str(number),
                     object_repr=f"{WORD}-{number:02d}")  # fmt: skip
    for number in range(OTHERS):
        audit_record(actor=None, kind="alias", action="delete", object_id=str(100 + number),
                     object_repr=f"other-{number:02d}")  # fmt: skip


def users(alias_factory) -> None:
    for number in range(MATCHING):
        get_user_model().objects.create_user(f"{WORD}-{number:02d}", f"u{(number * 7) % 11}-{number}@example.invalid")
    for number in range(OTHERS):
        get_user_model().objects.create_user(f"other-{number:02d}", f"o{number}@example.invalid")


LISTS = [
    pytest.param("/aliases/", "#alias-table", aliases, id="aliases"),
    pytest.param("/files/", "#modelfile-table", model_files, id="model-files"),
    pytest.param("/files/downloads/", "#download-history", downloads, id="downloads"),
    pytest.param("/audit/", "#audit-table", audit_entries, id="audit"),
    pytest.param("/users/", "#user-table", users, id="users"),
]


ROW_NAME = re.compile(rf"\b(?:{WORD}|other)-\d\d\b")


def table_rows(page: Page, target: str) -> list[str]:
    """The row names in order (each row holds one; times such as "3 seconds ago" move between two loads)."""
    names = []
    for text in page.locator(f"{target} tbody tr").all_inner_texts():
        found = ROW_NAME.search(text)
        # Other rows (the signed-in admin among the users) by their first word: the rest may hold a time.
        names.append(found.group(0) if found else (text.split() or [""])[0])
    return names


def assert_table_matches_address(page: Page, target: str) -> list[str]:
    """The table on the page is the one a fresh load of the address bar's URL shows."""
    fresh = page.context.new_page()
    try:
        fresh.goto(page.url)
        expected = table_rows(fresh, target)
    finally:
        fresh.close()
    expect(page.locator(f"{target} tbody tr")).to_have_count(len(expected))
    shown = table_rows(page, target)
    assert shown == expected, (page.url, shown, expected)
    return shown


@pytest.mark.parametrize(("path", "target", "fill"), LISTS)
def test_search_sort_page_and_back_keep_the_table_and_the_address_in_step(
    page, admin_user, alias_factory, path, target, fill
):
    fill(alias_factory)
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if is_console_error(message) else None)
    login(page, admin_user)
    page.goto(f"{path}?per_page=10")
    first = assert_table_matches_address(page, target)
    assert any(WORD not in row for row in first) or len(first) == 10

    # Search: the table narrows to the matches (two pages of them).
    page.get_by_label("Search").fill(WORD)
    expect(page).to_have_url(re.compile(rf"[?&]q={WORD}"))
    searched = assert_table_matches_address(page, target)
    assert len(searched) == 10 and all(WORD in row for row in searched), searched

    # Sort by the first sortable column: the very first click after the search takes effect.
    page.locator(f"{target} thead th a").first.click()
    expect(page).to_have_url(re.compile(r"[?&]sort="))
    expect(page).to_have_url(re.compile(rf"[?&]q={WORD}"))
    sorted_rows = assert_table_matches_address(page, target)
    assert all(WORD in row for row in sorted_rows)

    # Next page: the remaining matches, still sorted and searched.
    page.locator(f"{target} .pagination").get_by_role("link", name=re.compile("next")).click()
    expect(page).to_have_url(re.compile(r"[?&]page=2"))
    second = assert_table_matches_address(page, target)
    assert len(second) == MATCHING - 10 and all(WORD in row for row in second)
    assert not set(second) & set(sorted_rows)

    # Back: page 1 of the sorted search, then the search unsorted, each with its own table.
    page.go_back()
    expect(page).not_to_have_url(re.compile(r"[?&]page=2"))
    expect(page).to_have_url(re.compile(r"[?&]sort="))
    assert assert_table_matches_address(page, target) == sorted_rows
    page.go_back()
    expect(page).not_to_have_url(re.compile(r"[?&]sort="))
    assert assert_table_matches_address(page, target) == searched
    assert errors == []  # htmx reports a trigger it cannot parse here, and then ignores it
