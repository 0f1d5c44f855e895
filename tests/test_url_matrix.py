"""Every URL of the URLconf, anonymous and the four roles, GET/POST/PUT/DELETE, against tests/url_expectations.py.

The patterns are read from the live URLconf, so a URL added without an entry in the table (or an entry left
behind by a removed URL) fails here with a message saying what to change. Each case runs in a savepoint that is
rolled back, so a DELETE or a cancel by one role never changes what the next role sees, and nothing that would
be enqueued on commit ever reaches the broker.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import pytest
from django.conf import settings
from django.db import transaction
from django.http import HttpResponse
from django.shortcuts import resolve_url
from django.test import Client
from django.urls import NoReverseMatch, URLPattern, URLResolver, get_resolver, include, path, reverse
from django.utils import timezone

from aliases.models import Alias
from aliases.presets.models import Preset
from aliases.services import alias_create, alias_delete, alias_update
from config.accounts.roles import ADMIN as ADMIN_ROLE
from config.accounts.roles import EDITOR as EDITOR_ROLE
from config.accounts.roles import OPERATOR as OPERATOR_ROLE
from config.accounts.roles import VIEWER as VIEWER_ROLE
from config.accounts.services import apitoken_create
from config.audit.services import audit_record
from config.health.models import WorkerHeartbeat
from modelfiles.models import Download, ModelFile
from modelfiles.services import modelfile_sync
from tests.factories import AliasFactory, UserFactory
from tests.gguf_files import tiny_gguf
from tests.modelfiles import cache_file, make_download
from tests.url_expectations import (
    ADMIN,
    ADMIN_LOGIN,
    ADMIN_SITE,
    ADMIN_SITE_NAMESPACE,
    ANONYMOUS,
    API,
    EDITOR,
    EVERYONE,
    EXPECTATIONS,
    FORBIDDEN,
    LOGIN,
    METHODS,
    NOT_ALLOWED,
    OK,
    OPERATOR,
    PAGE,
    SAMPLE_FOR_KWARG,
    SAMPLES,
    SIGNED_IN,
    UNAUTHORIZED,
    USER_ALIAS,
    USER_PRESET,
    VIEWER,
    Expectation,
    api,
    page,
    url_key,
)

pytestmark = pytest.mark.django_db

TABLE = "tests/url_expectations.py"
ROLE_OF = {VIEWER: VIEWER_ROLE, OPERATOR: OPERATOR_ROLE, EDITOR: EDITOR_ROLE, ADMIN: ADMIN_ROLE}
MODEL_REPO, MODEL_FILENAME = USER_ALIAS["repo"], USER_ALIAS["filename"]


# --- the URLconf ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    route: str  # the full route, prefixes included
    name: str | None  # namespaced URL name, e.g. "aliases:edit"
    namespaces: tuple[str, ...]
    pattern: URLPattern

    @property
    def key(self) -> str:
        return self.name or self.route

    @property
    def in_admin_site(self) -> bool:
        return self.namespaces[:1] == (ADMIN_SITE_NAMESPACE,)

    @property
    def arguments(self) -> list[str]:
        converters = getattr(self.pattern.pattern, "converters", None)
        if converters is not None:
            return list(converters)
        return list(self.pattern.pattern.regex.groupindex)


def walk(patterns, prefix: str = "", namespaces: tuple[str, ...] = ()) -> list[Route]:
    routes: list[Route] = []
    for item in patterns:
        if isinstance(item, URLResolver):
            inner = (*namespaces, item.namespace) if item.namespace else namespaces
            routes += walk(item.url_patterns, prefix + str(item.pattern), inner)
        else:
            name = ":".join((*namespaces, item.name)) if item.name else None
            routes.append(Route(route=prefix + str(item.pattern), name=name, namespaces=namespaces, pattern=item))
    return routes


def url_routes() -> list[Route]:
    return walk(get_resolver().url_patterns)


def view_methods(route: Route) -> list[str]:
    """The methods among ours the view class declares, to suggest a table line (function views: GET)."""
    view_class = getattr(route.pattern.callback, "view_class", None) or getattr(route.pattern.callback, "cls", None)
    if view_class is None:
        return ["GET"]
    return [m for m in METHODS if m.lower() in view_class.http_method_names and hasattr(view_class, m.lower())]


def suggested_line(route: Route) -> str:
    kind = "api" if route.route.startswith("api/") else "page"
    methods = ", ".join(f"{method}=ADMIN_ROLES" for method in view_methods(route)) or "GET=ADMIN_ROLES"
    # Every argument named, with the default sample where there is one: an <int:pk> cannot take a download's uuid.
    samples = ", ".join(f'"{arg}": "{SAMPLE_FOR_KWARG.get(arg, "<sample>")}"' for arg in route.arguments)
    extra = f", kwargs={{{samples}}}" if samples else ""
    return f'    "{route.key}": {kind}({methods}{extra}),'


def table_problems(routes: list[Route]) -> list[str]:
    """What the table lacks or has too much of, compared with these patterns, each said as what to change."""
    ours = [route for route in routes if not route.in_admin_site]
    covered = {url_key(key) for key in EXPECTATIONS}
    missing = [route for route in ours if route.key not in covered]
    # An entry for a URL with a label (``"api-docs?script"``) is stale once its URL is gone.
    stale = sorted(key for key in EXPECTATIONS if url_key(key) not in {route.key for route in ours})
    stale_admin = sorted(set(ADMIN_SITE) - {route.name for route in routes if route.in_admin_site})
    problems = []
    if missing:
        problems.append(
            f"{len(missing)} URL pattern(s) have no entry in {TABLE} EXPECTATIONS. Add a line per URL saying which "
            "roles may use which method (replace ADMIN_ROLES with the roles DESIGN.md allows, and <sample> with one "
            "of SAMPLES there):\n" + "\n".join(f"{suggested_line(route)}  # {route.route}" for route in missing)
        )
    if stale:
        problems.append(
            f"{TABLE} EXPECTATIONS has entries for URLs that no longer exist; remove them: {', '.join(stale)}"
        )
    if stale_admin:
        problems.append(f"{TABLE} ADMIN_SITE names admin URLs that no longer exist: {', '.join(stale_admin)}")
    return problems


def test_every_url_pattern_has_an_expectation_and_every_expectation_a_pattern():
    routes = url_routes()

    problems = table_problems(routes)

    assert not problems, "\n\n".join(problems)
    admin_patterns = [route for route in routes if route.in_admin_site]
    assert len(admin_patterns) > len(ADMIN_SITE), "the admin site's patterns were not found under admin/"


def test_a_new_url_without_an_entry_is_reported_with_the_line_to_add():
    new = path("reports/", include(([path("<int:pk>/", lambda request, pk: None, name="detail")], "reports")))
    routes = url_routes() + walk([new])

    problems = table_problems(routes)

    assert len(problems) == 1
    line = '"reports:detail": page(GET=ADMIN_ROLES, kwargs={"pk": "active_download"}),  # reports/<int:pk>/'
    assert line in problems[0]


def test_a_pattern_without_a_name_is_keyed_and_filled_in_by_its_route():
    (route,) = walk([path("api/", include([path("things/<int:pk>/<path:rest>", lambda request, **kwargs: None)]))])
    entry = api(GET=("admin",), kwargs={"pk": "user_alias_pk", "rest": "model_alias"})

    url = sample_url(route.key, route, entry, {"user_alias_pk": "7", "model_alias": "acme/Tiny:Q4"}, VIEWER)

    assert (route.key, url) == ("api/things/<int:pk>/<path:rest>", "/api/things/7/acme/Tiny%3AQ4")


def test_an_entry_whose_url_is_gone_is_reported():
    routes = [route for route in url_routes() if route.key != "modelfiles:rescan"]

    assert table_problems(routes) == [
        f"{TABLE} EXPECTATIONS has entries for URLs that no longer exist; remove them: modelfiles:rescan"
    ]


def test_the_samples_are_the_ones_the_table_documents(samples):
    assert sorted(samples) == sorted(SAMPLES)
    assert set(SAMPLE_FOR_KWARG.values()) <= set(SAMPLES)


def test_every_path_argument_has_a_sample():
    routes = {route.key: route for route in url_routes()}
    missing = [
        f"{key} ({routes[url_key(key)].route}): argument {arg!r}"
        for key, expectation in EXPECTATIONS.items()
        if url_key(key) in routes
        for arg in routes[url_key(key)].arguments
        if _sample_key(expectation, arg) not in SAMPLES
    ]
    assert not missing, (
        f"No sample object for these path arguments; give the entry in {TABLE} kwargs={{'<argument>': "
        f"'<sample>'}} naming one of {sorted(SAMPLES)}, or add the argument to SAMPLE_FOR_KWARG:\n" + "\n".join(missing)
    )


# --- samples and clients -------------------------------------------------------------------------------------------


@pytest.fixture
def hf_home(monkeypatch, tmp_path) -> Path:
    """A Hugging Face cache of this test's own: the rescan and pull cases never see the real one."""
    home = tmp_path / "hf_home"
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(home))
    # "Check for updates" asks the Hub: a closed local port answers at once, and the internet is never reached.
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    return home


@pytest.fixture
def samples(hf_home, users, bearer_tokens) -> dict[str, str | dict[str, str]]:
    """The objects path arguments are filled with, by name (the table's ``kwargs`` and SAMPLE_FOR_KWARG use these
    names). A value that is a dict depends on who asks (their own token); anonymous visitors get the viewer's."""
    # A template of its own: the sample aliases use `embedded`, which a file without one refuses.
    cache_file(hf_home, MODEL_REPO, MODEL_FILENAME, content=tiny_gguf(chat_template="{{ messages }}"))
    modelfile_sync()
    model_alias = Alias.objects.get(source=Alias.Source.MODEL)
    assert "/" in model_alias.alias
    user_alias = AliasFactory(**USER_ALIAS)
    history = alias_create(data={**USER_ALIAS, "alias": "matrix-history"}, by=None)
    alias_update(alias=history, data={"temperature": 0.5}, expected_version=1, by=None)
    alias_delete(alias=alias_create(data={**USER_ALIAS, "alias": "matrix-gone"}, by=None), by=None)
    active = make_download(status=Download.Status.QUEUED)
    failed = make_download(status=Download.Status.FAILED, error_code="network_error", error_message="Reset.")
    paused = make_download(status=Download.Status.PAUSED)
    target = UserFactory(username="matrix-target", role=VIEWER_ROLE)
    apitoken_create(user=target, name="matrix")
    own_tokens = {name: str(user.api_tokens.get().pk) for name, user in users.items()}
    entry = audit_record(actor=users[ADMIN], kind="alias", action="update", object_id=user_alias.pk)
    user_preset = Preset.objects.create(**USER_PRESET)
    # A worker that has just sent its heartbeat, so /readyz can answer 200 (its 503 is tests/health's).
    now = timezone.now()
    WorkerHeartbeat.objects.create(name="celery@matrix", host="matrix", pid=1, started_at=now, last_seen=now)
    return {
        "user_alias": user_alias.alias,
        "user_alias_pk": str(user_alias.pk),
        "model_alias": model_alias.alias,
        "modelfile_pk": str(ModelFile.objects.get().pk),
        "active_download": str(active.pk),
        "failed_download": str(failed.pk),
        "paused_download": str(paused.pk),
        "target_user_pk": str(target.pk),  # a viewer who is none of the signed-in clients
        "target_user_token_pk": str(target.api_tokens.get().pk),
        "own_token_pk": {ANONYMOUS: own_tokens[VIEWER], **own_tokens},
        "audit_entry_pk": str(entry.pk),
        "user_preset": user_preset.name,
        "history_alias": history.alias,
        "history_version": "1",
        "deleted_alias": "matrix-gone",
        "export_format": "llama-server",
    }


@pytest.fixture
def users(db) -> dict:
    return {name: UserFactory(username=f"matrix-{name}", role=role) for name, role in ROLE_OF.items()}


@pytest.fixture
def bearer_tokens(users) -> dict[str, str]:
    """One API token per signed-in role (raw keys)."""
    return {name: apitoken_create(user=user, name="matrix") for name, user in users.items()}


@pytest.fixture
def session_cookies(users) -> dict[str, str]:
    """A session cookie per role (none for anonymous); each case gets a fresh client carrying it, so a sign-out
    case cannot sign the next one out."""
    cookies = {ANONYMOUS: ""}
    for name, user in users.items():
        client = Client()
        client.force_login(user)
        cookies[name] = client.cookies[settings.SESSION_COOKIE_NAME].value
    return cookies


def _sample_key(expectation: Expectation, argument: str) -> str | None:
    return expectation.kwargs.get(argument, SAMPLE_FOR_KWARG.get(argument))


def sample_url(key: str, route: Route | None, expectation: Expectation, samples: dict, role: str) -> str:
    arguments = route.arguments if route is not None else list(expectation.kwargs)
    kwargs = {}
    for argument in arguments:
        value = samples[_sample_key(expectation, argument)]
        kwargs[argument] = value[role] if isinstance(value, dict) else value
    try:
        if route is not None and route.name is None:
            # No name to reverse: fill the route's own <converter:argument> parts in.
            return "/" + re.sub(r"<(?:\w+:)?(\w+)>", lambda match: quote(kwargs[match[1]]), route.route)
        return reverse(url_key(key), kwargs=kwargs)
    except NoReverseMatch as exc:
        raise AssertionError(
            f"{key}: the samples {kwargs} do not fit its route {route.route if route else '?'}; give its entry in "
            f"{TABLE} kwargs= naming samples that do (one of SAMPLES there)"
        ) from exc


# --- one case ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    key: str
    url: str
    role: str
    method: str
    expected: str
    expectation: Expectation


@dataclass(frozen=True)
class Result:
    case: Case
    status: int
    observed: str
    location: str


def _redirects_to_sign_in(response: HttpResponse, login_path: str, url: str) -> bool:
    if response.status_code != 302:
        return False
    location = urlsplit(response["Location"])
    next_urls = parse_qs(location.query).get("next", [])
    return location.path == login_path and [urlsplit(n).path for n in next_urls] == [urlsplit(url).path]


def classify(response: HttpResponse, url: str) -> str:
    """What the answer means, in the table's words; anything else is its status code (e.g. "500", "404")."""
    status = response.status_code
    if _redirects_to_sign_in(response, resolve_url(settings.LOGIN_URL), url):
        return LOGIN
    if _redirects_to_sign_in(response, reverse("admin:login"), url):
        return ADMIN_LOGIN
    if status == 401:
        return UNAUTHORIZED if response.has_header("WWW-Authenticate") else "401 without WWW-Authenticate"
    if status in (403, 405):
        return str(status)
    # Passed the permission check: a page, a redirect to where the action lands, or a complaint about the body
    # or the object's state. A 404 would mean the sample object was not found: not a pass.
    if 200 <= status < 400 or status in (400, 409, 415):
        return OK
    return str(status)


def run(case: Case, cookie: str = "", token: str = "") -> Result:
    client = Client(raise_request_exception=False, headers={"Authorization": f"Bearer {token}"} if token else None)
    if cookie:
        client.cookies[settings.SESSION_COOKIE_NAME] = cookie
    expectation = case.expectation
    body = expectation.data.get(case.method, {})
    url = f"{case.url}?{urlencode(expectation.query)}" if expectation.query else case.url
    as_json = expectation.kind == API
    with transaction.atomic():
        if case.method == "GET":
            response = client.get(url)
        elif case.method == "POST":
            response = (
                client.post(url, json.dumps(body), content_type="application/json")
                if as_json
                else client.post(url, body)
            )
        elif case.method == "PUT":
            response = (
                client.put(url, json.dumps(body), content_type="application/json") if as_json else client.put(url)
            )
        else:
            response = client.delete(url)
        # Undo what the request changed, so the next role finds the same rows (and nothing is enqueued).
        transaction.set_rollback(True)
    observed = classify(response, case.url)
    wanted = expectation.answers.get(case.method)
    if observed == OK and wanted is not None and response.status_code != wanted:
        observed = f"ok with {response.status_code}, not {wanted}"
    return Result(case, response.status_code, observed, response.get("Location", ""))


def build_cases(samples: dict, *, bearer: bool = False) -> list[Case]:
    """Every cell of the table; with ``bearer``, expecting what the entries' bearer_cells say for the token run."""
    routes = {route.key: route for route in url_routes()}
    table = {**EXPECTATIONS, **ADMIN_SITE}
    cases = []
    for key, expectation in table.items():
        for role in EVERYONE:
            url = sample_url(key, routes.get(url_key(key)), expectation, samples, role)
            for method in METHODS:
                expected = expectation.outcome(role, method, bearer=bearer)
                cases.append(Case(key, url, role, method, expected, expectation))
    return cases


# --- the matrix ----------------------------------------------------------------------------------------------------


def test_each_role_gets_the_expected_answer_for_every_url_and_method(samples, session_cookies, capsys):
    cases = build_cases(samples)
    results = [run(case, session_cookies[case.role]) for case in cases]

    failures = [result for result in results if result.observed != result.case.expected]
    expected = Counter(case.expected for case in cases)
    observed = Counter(result.observed for result in results)
    passed_with = Counter(result.status for result in results if result.observed == OK)
    server_errors = sum(result.status >= 500 for result in results)
    summary = (
        f"URL matrix: {len(EXPECTATIONS)} entries ({len({url_key(key) for key in EXPECTATIONS})} patterns) + "
        f"{len(ADMIN_SITE)} admin URLs x {len(EVERYONE)} roles x "
        f"{len(METHODS)} methods = {len(results)} cases; expected {_counts(expected)}; observed {_counts(observed)} "
        f"(passes answered {_counts(passed_with)}); {len(failures)} failure(s), {server_errors} server error(s)"
    )
    with capsys.disabled():
        print(f"\n{summary}")

    assert len(results) == (len(EXPECTATIONS) + len(ADMIN_SITE)) * len(EVERYONE) * len(METHODS), summary
    if failures:
        pytest.fail(f"{summary}\n{failure_report(failures)}", pytrace=False)
    assert observed == expected, summary


def test_an_api_token_gets_the_same_answers_as_the_session(samples, bearer_tokens, capsys):
    # Scripts use tokens (DESIGN.md); the bearer scheme is tried before the session, so it is a path of its own.
    cases = [
        case for case in build_cases(samples, bearer=True) if case.expectation.kind == API and case.role in SIGNED_IN
    ]
    results = [run(case, token=bearer_tokens[case.role]) for case in cases]

    failures = [result for result in results if result.observed != result.case.expected]
    with capsys.disabled():
        print(f"\nURL matrix with API tokens: {len(results)} cases, {len(failures)} failure(s)")
    assert len(results) == sum(e.kind == API for e in EXPECTATIONS.values()) * len(SIGNED_IN) * len(METHODS)
    if failures:
        pytest.fail(failure_report(failures), pytrace=False)


def _counts(counter: Counter) -> str:
    return ", ".join(f"{key} {count}" for key, count in sorted(counter.items(), key=lambda item: str(item[0])))


def failure_report(failures: list[Result]) -> str:
    """One line per URL and wrong answer, with the roles and methods that got it."""
    groups: dict[tuple, list[Result]] = {}
    for result in failures:
        answer = f"{result.status} to {result.location}" if result.location else str(result.status)
        groups.setdefault((result.case.key, result.case.url, result.case.expected, result.observed, answer), []).append(
            result
        )
    lines = []
    for (key, url, expected, observed, answer), results in groups.items():
        methods = "/".join(dict.fromkeys(r.case.method for r in results))
        roles = ", ".join(dict.fromkeys(r.case.role for r in results))
        lines.append(f"  {key}: {methods} {url} as {roles}: expected {expected}, got {observed} ({answer})")
    return "\n".join(lines)


def test_page_and_api_kinds_match_the_route():
    # A page entry for an /api/ URL would expect login redirects where the API answers 401, and the other way round.
    routes = {route.key: route for route in url_routes()}
    wrong = [
        key
        for key, expectation in EXPECTATIONS.items()
        if url_key(key) in routes
        and expectation.kind in (PAGE, API)
        and (expectation.kind == API) != _is_api(routes[url_key(key)])
    ]
    assert not wrong, f"entries in {TABLE} whose kind (page/api) does not match the URL: {wrong}"


def _is_api(route: Route) -> bool:
    # api/docs/ is the Swagger page for people: it signs visitors in like the other pages. v1/ is the
    # OpenAI-compatible gateway: JSON, 401 without a token.
    return route.route.startswith(("api/", "v1/")) and route.name != "api-docs"


def test_forbidden_is_never_expected_of_anonymous_visitors():
    # The derivation gives anonymous visitors a login redirect or a 401; an override saying 403 would be a typo.
    table = {**EXPECTATIONS, **ADMIN_SITE}
    wrong = [key for key, e in table.items() for method in METHODS if e.outcome(ANONYMOUS, method) == FORBIDDEN]
    assert not wrong, wrong


def test_not_allowed_is_the_same_for_every_signed_in_role():
    table = {**EXPECTATIONS, **ADMIN_SITE}
    mixed = [
        (key, method, "bearer" if bearer else "session")
        for key, e in table.items()
        for method in METHODS
        for bearer in (False, True)
        if len({e.outcome(role, method, bearer=bearer) == NOT_ALLOWED for role in SIGNED_IN}) > 1
    ]
    assert not mixed, f"a method is 405 for some signed-in roles and not others: {mixed}"


def test_cells_not_in_the_table_are_derived_from_role_and_method():
    entry = page(GET=("viewer", "admin"), POST=("admin",))
    assert entry.outcome(ANONYMOUS, "GET") == LOGIN
    assert entry.outcome(ANONYMOUS, "DELETE") == LOGIN
    assert entry.outcome(VIEWER, "GET") == OK
    assert entry.outcome(VIEWER, "POST") == FORBIDDEN
    assert entry.outcome(VIEWER, "PUT") == NOT_ALLOWED
    assert entry.outcome(ADMIN, "PUT") == NOT_ALLOWED
    assert api(GET=("admin",)).outcome(ANONYMOUS, "PUT") == UNAUTHORIZED


def test_bearer_cells_change_only_the_token_run():
    entry = api(GET=SIGNED_IN, POST=SIGNED_IN, bearer_cells={(SIGNED_IN, "POST"): FORBIDDEN})
    assert entry.outcome(VIEWER, "POST") == OK
    assert entry.outcome(VIEWER, "POST", bearer=True) == FORBIDDEN
    assert entry.outcome(VIEWER, "GET", bearer=True) == OK
    assert entry.outcome(VIEWER, "PUT", bearer=True) == NOT_ALLOWED
    with pytest.raises(AssertionError):
        page(GET=SIGNED_IN, bearer_cells={(VIEWER, "GET"): FORBIDDEN})


def test_a_labelled_entry_is_about_its_url_and_goes_with_it():
    assert url_key("api-docs?script") == "api-docs"
    assert url_key("api/thing/<int:pk>") == "api/thing/<int:pk>"
    routes = [route for route in url_routes() if route.key != "api-docs"]

    (problem,) = table_problems(routes)

    assert problem.endswith("remove them: api-docs, api-docs?script")


def test_static_files_are_served_to_everyone_outside_the_urlconf(client):
    # WhiteNoise serves them before the URLconf (no pattern above covers them): the sign-in page needs its CSS.
    response = client.get(f"/{settings.STATIC_URL.strip('/')}/css/modeldesk.css")

    assert response.status_code == 200
    assert not any(route.route.startswith(settings.STATIC_URL.strip("/")) for route in url_routes())
