from __future__ import annotations

import re

import pytest
from django.test import Client

from config.accounts.services import apitoken_create

pytestmark = pytest.mark.django_db

SCHEMA_URL = "/api/schema/"
DOCS_URL = "/api/docs/"


def test_schema_documents_the_alias_endpoints(client_for, viewer):
    response = client_for(viewer).get(SCHEMA_URL, {"format": "json"})

    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    paths = schema["paths"]
    assert set(paths["/api/models"]) >= {"get", "post"}
    assert set(paths["/api/models/{alias}"]) >= {"get", "put", "delete"}
    list_parameters = {parameter["name"] for parameter in paths["/api/models"]["get"]["parameters"]}
    assert list_parameters >= {"page", "page_size", "sort", "sort_order", "search"}
    put_responses = paths["/api/models/{alias}"]["put"]["responses"]
    assert {"200", "400", "401", "403", "404", "409"} <= set(put_responses)
    components = schema["components"]["schemas"]
    assert set(components["AliasList"]["properties"]) == {"data", "total", "page", "page_size"}
    assert set(components["ApiError"]["properties"]) >= {"message", "type", "code", "param", "fields"}
    assert "bearerAuth" in schema["components"]["securitySchemes"]


def test_schema_reads_bounds_from_the_model(client_for, viewer):
    schema = client_for(viewer).get(SCHEMA_URL, {"format": "json"}).json()

    context = schema["components"]["schemas"]["ContextParamsRequest"]["properties"]
    assert "0, or between 128 and 1,048,576" in context["n_ctx"]["description"]
    assert (context["n_ctx"]["minimum"], context["n_threads"]["maximum"]) == (0, 1024)


def test_schema_is_readable_with_a_bearer_token(editor):
    token = apitoken_create(user=editor)

    response = Client().get(SCHEMA_URL, {"format": "json"}, headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 200
    assert "/api/models" in response.json()["paths"]


def test_schema_needs_credentials(client):
    response = client.get(SCHEMA_URL, {"format": "json"})

    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication_error"


def test_docs_send_signed_out_visitors_to_the_login_page(client):
    response = client.get(DOCS_URL)

    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


def test_docs_load_only_local_assets(client_for, viewer):
    client = client_for(viewer)

    response = client.get(DOCS_URL)

    assert response.status_code == 200
    html = response.content.decode()
    assert "swagger-ui" in html
    urls = re.findall(r"""<(?:script|link)\b[^>]*?\b(?:src|href)=["']([^"']+)["']""", html)
    assert urls, "the docs page should load its Swagger UI assets"
    external = [url for url in urls if re.match(r"(?i)(https?:)?//", url)]
    assert external == []
    # Swagger UI's start-up script comes from the docs URL itself (no inline script, for the CSP).
    start_script = f"{DOCS_URL}?script="
    for url in urls:
        assert url.startswith("/static/") or url == start_script, url
        assert client.get(url).status_code == 200, url
    assert SCHEMA_URL in client.get(start_script).content.decode()
