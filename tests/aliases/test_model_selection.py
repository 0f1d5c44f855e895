"""The alias form suggests repo, then filename, then snapshot from the files in the local cache."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import timezone

from aliases.models import Alias
from modelfiles.models import ModelFile

pytestmark = pytest.mark.django_db

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def local_files():
    for repo, filename in [
        ("acme/llama-GGUF", "llama.Q4_K_M.gguf"),
        ("acme/llama-GGUF", "llama.Q8_0.gguf"),
        ("other/phi-GGUF", "phi.Q4_0.gguf"),
    ]:
        ModelFile.objects.create(
            repo=repo,
            filename=filename,
            snapshot=COMMIT,
            refs=["main"],
            size=1000,
            etag="e" * 64,
            modified_at=timezone.now(),
        )
    ModelFile.objects.create(
        repo="gone/old-GGUF", filename="old.gguf", snapshot=COMMIT, size=1, etag="f" * 64,
        modified_at=timezone.now(), present=False,
    )  # fmt: skip


def test_create_form_suggests_local_repos_and_files(client_for, editor, local_files):
    html = client_for(editor).get(reverse("aliases:create")).content.decode()
    assert 'list="repo-options"' in html and 'list="filename-options"' in html
    assert '<option value="acme/llama-GGUF">' in html and '<option value="other/phi-GGUF">' in html
    assert "gone/old-GGUF" not in html  # files no longer in the cache are not offered


def test_choosing_a_repo_narrows_files_then_snapshots(client_for, editor, local_files):
    client = client_for(editor)
    url = reverse("aliases:model-options")
    html = client.get(url, {"repo": "acme/llama-GGUF"}, HTTP_HX_REQUEST="true").content.decode()
    assert 'id="filename-options" hx-swap-oob="true"' in html
    assert "llama.Q8_0.gguf" in html and "phi.Q4_0.gguf" not in html
    html = client.get(url, {"repo": "acme/llama-GGUF", "filename": "llama.Q8_0.gguf"}).content.decode()
    assert f'<option value="{COMMIT}">' in html and '<option value="main">' in html


def test_create_alias_from_a_file_prefills_the_model_selection(client_for, editor, local_files):
    response = client_for(editor).get(
        reverse("aliases:create"), {"repo": "acme/llama-GGUF", "filename": "llama.Q8_0.gguf", "snapshot": COMMIT}
    )
    form = response.context["form"]
    assert (form["repo"].value(), form["filename"].value(), form["snapshot"].value()) == (
        "acme/llama-GGUF",
        "llama.Q8_0.gguf",
        COMMIT,
    )
    # The snapshot suggestions already fit the prefilled file.
    assert f'<option value="{COMMIT}">' in response.content.decode()


def test_duplicating_a_model_alias_suggests_a_valid_user_name(client_for, editor):
    Alias.objects.create(
        alias="acme/llama-GGUF:Q4_K_M", source="model", repo="acme/llama-GGUF", filename="llama.Q4_K_M.gguf",
        snapshot=COMMIT,
    )  # fmt: skip
    response = client_for(editor).get(reverse("aliases:duplicate", args=["acme/llama-GGUF:Q4_K_M"]))
    assert response.status_code == 200
    assert response.context["form"]["alias"].value() == "llama-GGUF:Q4_K_M"


def test_model_options_need_a_signed_in_user(client):
    assert client.get(reverse("aliases:model-options")).status_code == 302
