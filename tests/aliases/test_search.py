"""The alias search syntax: free words, field:value terms, number comparisons and ranges, on the list page (its
search box) and in the API's `search`, with a bad field value refused naming the field."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from aliases.models import Alias
from aliases.search import alias_search
from tests.aliases.test_pages import row_names

pytestmark = pytest.mark.django_db

LIST_URL = reverse("aliases:list")


@pytest.fixture
def shelf(alias_factory):
    alias_factory(alias="bloke-long", repo="TheBloke/Llama-3-GGUF", n_ctx=32768, temperature=0.2,
                  chat_template="llama3", top_p=0.9)  # fmt: skip
    alias_factory(alias="bloke-short", repo="TheBloke/Mistral-GGUF", n_ctx=4096, temperature=0.7,
                  chat_template="chatml", top_p=0.95)  # fmt: skip
    alias_factory(alias="other-long", repo="acme/Qwen-GGUF", n_ctx=8192, temperature=0.4, chat_template="llama3",
                  top_p=0.5, filename="qwen.Q8_0.gguf")  # fmt: skip
    alias_factory(alias="acme/Qwen-GGUF:Q4_K_M", repo="acme/Qwen-GGUF", filename="qwen.Q4_K_M.gguf",
                  source=Alias.Source.MODEL)  # fmt: skip


def names(text: str) -> list[str]:
    return sorted(alias_search(Alias.objects.all(), text).values_list("alias", flat=True))


def test_field_terms_narrow_and_combine_with_free_words(shelf):
    assert names("repo:thebloke") == ["bloke-long", "bloke-short"]
    assert names("repo:TheBloke n_ctx:>=8192") == ["bloke-long"]
    assert names("repo:TheBloke n_ctx:>=8192 temperature:<0.5 template:llama3") == ["bloke-long"]
    assert names("n_ctx:>=8192 temperature:<0.5") == ["bloke-long", "other-long"]
    assert names("temperature:0.7") == ["bloke-short"]
    assert names("top_p:0.9..0.95") == ["bloke-long", "bloke-short"]
    assert names("source:model") == ["acme/Qwen-GGUF:Q4_K_M"]
    assert names("file:Q8_0") == ["other-long"]
    assert names("long template:llama3") == ["bloke-long", "other-long"]
    assert names('template:"chat"') == ["bloke-short"]


def test_a_word_that_only_looks_like_a_field_stays_free_text(shelf):
    # A generated alias's name holds a colon; its part before the colon is no field name.
    assert names("acme/Qwen-GGUF:Q4_K_M") == ["acme/Qwen-GGUF:Q4_K_M"]
    assert names('"repo:thebloke"') == []  # quoted: the text itself, which no alias holds
    assert names("") == ["acme/Qwen-GGUF:Q4_K_M", "bloke-long", "bloke-short", "other-long"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("n_ctx:>=big", "n_ctx needs a whole number"),
        ("n_ctx:1.5", "n_ctx needs a whole number"),
        ("temperature:<warm", "temperature needs a number"),
        ("source:someone", "source is user or model"),
        ("repo:", "repo: needs a value"),
        ("top_p:0.1..x", "top_p needs a number"),
    ],
)
def test_a_bad_field_value_is_refused_naming_the_field(shelf, text, message):
    with pytest.raises(ValidationError, match=message):
        names(text)


def test_the_list_page_searches_the_same_and_shows_a_bad_term_as_an_error(shelf, client_for, viewer):
    client = client_for(viewer)
    assert row_names(client.get(LIST_URL, {"q": "repo:TheBloke n_ctx:>=8192"})) == ["bloke-long"]
    page = client.get(LIST_URL, {"q": "n_ctx:>=big"}).content.decode()
    assert "n_ctx needs a whole number" in page and 'role="alert"' in page
    assert "n_ctx:&gt;=8192" in client.get(LIST_URL).content.decode()  # the help next to the box


def test_the_api_search_takes_the_syntax_and_answers_400_on_search(shelf, viewer_client):
    response = viewer_client.get("/api/models", {"search": "repo:TheBloke temperature:<0.5"})
    assert response.status_code == 200
    assert [item["alias"] for item in response.json()["data"]] == ["bloke-long"]

    bad = viewer_client.get("/api/models", {"search": "n_ctx:>=big"})
    assert bad.status_code == 400
    assert bad.json()["error"]["param"] == "search" and "n_ctx needs a whole number" in bad.json()["error"]["message"]
