from __future__ import annotations

import pytest
from django.urls import reverse

from aliases.models import Alias, AliasChange
from aliases.services import alias_create, alias_update

pytestmark = pytest.mark.django_db

ADD_URL = reverse("admin:aliases_alias_add")
CHANGELIST_URL = reverse("admin:aliases_alias_changelist")


def admin_form(**overrides) -> dict[str, str]:
    data = {
        "alias": "admin-made",
        "repo": "acme/Admin-GGUF",
        "filename": "admin.Q4_K_M.gguf",
        "snapshot": "main",
        "chat_template": "embedded",
        "stop": "",
        "user": "",
        "expected_version": "",
        "_save": "Save",
    }
    for name in ("temperature", "top_p", "max_tokens", "frequency_penalty", "presence_penalty", "seed"):
        data[name] = ""
    for name in ("n_seed", "n_threads", "n_ctx", "n_parallel", "n_predict", "n_keep"):
        data[name] = ""
    data.update(overrides)
    return data


@pytest.fixture
def stored(admin_user):
    return alias_create(data={"alias": "stored", "repo": "acme/S-GGUF", "filename": "s.gguf"}, by=admin_user)


def test_admin_lists_and_offers_to_add_aliases(client_for, admin_user, stored):
    client = client_for(admin_user)
    changelist = client.get(CHANGELIST_URL, {"q": "stor"})
    assert changelist.status_code == 200
    assert "stored" in changelist.content.decode()
    assert client.get(ADD_URL).status_code == 200
    assert client.get(reverse("admin:aliases_aliaschange_changelist")).status_code == 200


def test_editors_are_not_let_into_the_admin(client_for, editor):
    response = client_for(editor).get(CHANGELIST_URL)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


def test_admin_add_rejects_out_of_range_values(client_for, admin_user):
    response = client_for(admin_user).post(ADD_URL, admin_form(temperature="2.5", n_ctx="64"))
    content = response.content.decode()
    assert response.status_code == 200
    assert "Must be between 0 and 2 (got 2.5)." in content
    assert "Must be 0, or between 128 and 1,048,576 (got 64)." in content
    assert not Alias.objects.filter(alias="admin-made").exists()


def test_admin_add_goes_through_the_services(client_for, admin_user):
    response = client_for(admin_user).post(ADD_URL, admin_form(temperature="0.5", stop="###\\n"))
    assert response.status_code == 302
    alias = Alias.objects.get(alias="admin-made")
    assert alias.temperature == 0.5
    assert alias.stop == ["###\n"]
    assert alias.created_by == admin_user
    assert AliasChange.objects.filter(alias=alias, action="create", changed_by=admin_user).exists()


def test_admin_change_records_the_change_and_bumps_the_version(client_for, admin_user, stored):
    client = client_for(admin_user)
    url = reverse("admin:aliases_alias_change", args=[stored.pk])
    assert 'name="expected_version" value="1"' in client.get(url).content.decode()
    data = admin_form(alias="stored", repo="acme/S-GGUF", filename="s.gguf", n_ctx="4096", expected_version="1")
    response = client.post(url, data)
    assert response.status_code == 302
    stored.refresh_from_db()
    assert stored.n_ctx == 4096
    assert stored.version == 2
    assert AliasChange.objects.filter(alias=stored, action="update", version=2).exists()


def test_admin_refuses_a_stale_change(client_for, admin_user, editor, stored):
    alias_update(alias=stored, data={"temperature": 1.1}, expected_version=1, by=editor)
    url = reverse("admin:aliases_alias_change", args=[stored.pk])
    data = admin_form(alias="stored", repo="acme/S-GGUF", filename="s.gguf", temperature="0.2", expected_version="1")
    response = client_for(admin_user).post(url, data)
    assert response.status_code == 200
    assert "changed by someone else since you opened it" in response.content.decode()
    stored.refresh_from_db()
    assert stored.temperature == 1.1


def test_admin_cannot_change_or_delete_model_aliases(client_for, admin_user, alias_factory):
    generated = alias_factory(alias="gen:Q4_K_M", source=Alias.Source.MODEL)
    client = client_for(admin_user)
    url = reverse("admin:aliases_alias_change", args=[generated.pk])
    assert client.get(url).status_code == 200  # shown for viewing
    response = client.post(url, admin_form(alias="gen:Q4_K_M", temperature="0.3", expected_version="1"))
    assert response.status_code == 403
    assert client.post(reverse("admin:aliases_alias_delete", args=[generated.pk]), {"post": "yes"}).status_code == 403
    generated.refresh_from_db()
    assert generated.temperature is None


def test_admin_delete_is_recorded(client_for, admin_user, stored):
    response = client_for(admin_user).post(reverse("admin:aliases_alias_delete", args=[stored.pk]), {"post": "yes"})
    assert response.status_code == 302
    assert not Alias.objects.filter(pk=stored.pk).exists()
    assert AliasChange.objects.filter(alias_name="stored", action="delete", changed_by=admin_user).exists()


def test_change_history_is_read_only_in_the_admin(client_for, admin_user, stored):
    client = client_for(admin_user)
    change = AliasChange.objects.get(alias=stored)
    assert client.get(reverse("admin:aliases_aliaschange_add")).status_code == 403
    page = client.get(reverse("admin:aliases_aliaschange_change", args=[change.pk]))
    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode()
