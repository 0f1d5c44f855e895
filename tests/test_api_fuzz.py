"""Schema-driven fuzzing of the whole API (issue 7): schemathesis reads /api/schema/ and sends what it allows
(positive) and what it refuses (negative) to every operation, through the Django WSGI app in-process, as an admin
and as a viewer with real API tokens.

Every response must be a non-5xx answer the schema documents: a documented status code and content type, a body
matching the documented schema. Fixed seed (derandomized), bounded, no shrinking (each failure is collected with
its curl line and reported together), and at least MIN_CASES requests in all.
"""

from __future__ import annotations

import itertools
import re
import time
from urllib.parse import unquote

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from django.urls import Resolver404, resolve
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from config.accounts.roles import ADMIN, VIEWER
from config.accounts.services import apitoken_create
from modelfiles.models import Download, ModelFile
from tests.factories import AliasFactory, UserFactory

pytestmark = pytest.mark.django_db

# Per operation, per generation mode, per role: about 16 operations x 2 modes x 40, fewer where an operation has
# little to vary. The assertion below keeps each role at MIN_CASES requests or more.
EXAMPLES = 40
MIN_CASES = 1_000
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(autouse=True)
def hf_home(monkeypatch, tmp_path):
    """An empty Hugging Face cache of this test's own, and a Hub address where nothing listens: pulls and scans
    the requests set off never read the real cache or reach a network."""
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")


def _seed_rows() -> None:
    """Rows for lists and look-ups to return, so response bodies are checked with data in them."""
    AliasFactory.create_batch(5)
    ModelFile.objects.create(
        repo="owner/fuzz-GGUF",
        filename="fuzz.Q4_K_M.gguf",
        snapshot="a" * 40,
        refs=["main"],
        size=1234,
        etag="b" * 64,
        modified_at="2026-01-01T00:00:00Z",
    )
    Download.objects.create(repo="owner/fuzz-GGUF", filename="other.gguf", status=Download.Status.FAILED)


def _route(path: str) -> str | None:
    try:
        return resolve(path).view_name
    except Resolver404:
        return None


def _run(operation, mode: GenerationMode, label: str, headers: dict, cases, failures: list[str]) -> None:
    # The operation's own route. A generated path parameter can spell a fixed route instead (alias "deleted" makes
    # /api/models/deleted, the deleted aliases' list, reserved before /api/models/{alias}): that request belongs to
    # the other operation, which is fuzzed on its own, so it is not sent here.
    own_route = _route(re.sub(r"\{[^}]+\}", "1", operation.path))

    @settings(
        max_examples=EXAMPLES,
        derandomize=True,  # the fixed seed: every run sends the same requests
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: failures are collected, not raised
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def send(case) -> None:
        if _route(unquote(case.formatted_path)) not in (own_route, None):
            return
        next(cases)
        try:
            case.call_and_validate(headers=headers, checks=CHECKS)
        except (Exception, BaseExceptionGroup) as exc:  # a FailureGroup, or a crash in the app itself
            failures.append(f"{label}: {exc}")

    send()


def _fuzz(role: str) -> tuple[int, list[str]]:
    user = UserFactory(username=f"fuzz-{role}", role=role)
    headers = {"Authorization": f"Bearer {apitoken_create(user=user, name='fuzz')}"}
    app = get_wsgi_application()
    schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", app, headers=headers)
    cases = itertools.count()
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            _run(operation, mode, f"{role} {mode.value} {operation.label}", headers, cases, failures)
    return next(cases), failures


@pytest.fixture
def keep_test_connection():
    """The WSGI app closes the database connection after each request, which would end the test's transaction;
    Django's own test client disconnects the same signal handler for the same reason."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.mark.parametrize("role", [ADMIN, VIEWER])
def test_schema_driven_fuzzing_finds_no_server_error_and_no_schema_violation(role, keep_test_connection):
    _seed_rows()
    started = time.monotonic()

    count, failures = _fuzz(role)

    print(f"\nfuzz {role}: {count} generated requests, {len(failures)} failures, {time.monotonic() - started:.1f} s")
    assert not failures, "\n\n".join(failures[:10])
    assert count >= MIN_CASES
