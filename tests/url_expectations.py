"""Who may use which URL with which method: the table tests/test_url_matrix.py checks against the real URLconf.

Format
------
One entry per URL pattern of config/urls.py, keyed by its URL name with its namespaces (``"aliases:edit"``),
or by its full route when the pattern has no name (``"api/thing/<int:pk>"``). Adding a URL is one line:

    "aliases:edit": page(GET=EDITOR_ROLES, POST=EDITOR_ROLES),

``page(...)`` is a signed-in HTML page, ``api(...)`` a JSON endpoint, ``public(...)`` a page that needs no
sign-in (the login page). Each keyword is a method (GET, POST, PUT, DELETE) and the roles that may use it: for them
the request must pass the permission check (2xx, a 3xx that is not the login page, or a 400/409/415 about the
body or the object's state; never 5xx, never 404 with the sample objects). Every other cell is derived:

- anonymous visitors get 302 to the login page (``page``) or 401 (``api``), whatever the method;
- a method the entry does not list answers 405 to every signed-in role (``public``: to everyone);
- a listed method answers 403 to the signed-in roles not listed.

Options, all optional:

- ``kwargs={"name": "model_alias"}``: which sample object fills each path argument, one of SAMPLES below (built
  by the ``samples`` fixture in tests/test_url_matrix.py). Without it, SAMPLE_FOR_KWARG below decides by the
  argument's name; a pattern whose argument has no sample fails with a message saying so.
- ``data={"POST": {...}}``: the body sent with that method (form fields for pages, JSON for api); default empty.
- ``query={"repo": "x"}``: a query string sent with every request to that URL.
- ``answers={"POST": 201}``: the exact status the allowed roles must get for that method (to show the sample
  body really went through, not only past the permission check).
- ``cells={(ROLES, METHODS): OUTCOME}``: override single cells where the derived answer is not the right one
  (ROLES and METHODS may be one name or a tuple). Say why in a comment.
- ``bearer_cells={(ROLES, METHODS): OUTCOME}`` (``api`` only): the same, for the second run of the API where
  the signed-in roles send their bearer token instead of the session cookie; cells it does not name expect what
  the session gets. Say why in a comment.

A URL that answers differently by its query string (another view behind the same pattern) gets one more entry,
keyed by its key, ``?`` and a label, with the ``query`` that selects it; both entries are checked:

    "api-docs?script": page(GET=READ_ROLES, query={"script": ""}),

The Django admin (every pattern in the ``admin`` namespace, hundreds of them) is one group: ADMIN_SITE lists a few
representative URLs, each checked for every method with ``admin_site(...)``: admins pass, everyone else is sent to
the admin's login page.

Where the code does not give the right answer yet, the table still says the right one, with a ``# BUG:`` comment
at the entry (or above EXPECTATIONS for what many entries share): the test fails until the code is fixed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

ANONYMOUS, VIEWER, OPERATOR, EDITOR, ADMIN = "anonymous", "viewer", "operator", "editor", "admin"
SIGNED_IN = (VIEWER, OPERATOR, EDITOR, ADMIN)
EVERYONE = (ANONYMOUS, *SIGNED_IN)
# DESIGN.md, "Roles and permissions".
READ_ROLES = SIGNED_IN
OPERATOR_ROLES = (OPERATOR, ADMIN)  # pulls, cancel, retry, rescan
EDITOR_ROLES = (EDITOR, ADMIN)  # create / edit / delete aliases
SERVE_ROLES = (OPERATOR, ADMIN)  # load / unload an alias on the llama-server router
ADMIN_ROLES = (ADMIN,)  # delete files, users, roles, tokens of others, audit log, the Django admin

METHODS = ("GET", "POST", "PUT", "DELETE")

# Outcomes of one (role, URL, method) cell.
OK = "ok"  # passed the permission check
LOGIN = "login"  # 302 to the sign-in page with ?next=
ADMIN_LOGIN = "admin-login"  # 302 to the Django admin's sign-in page with ?next=
UNAUTHORIZED = "401"
FORBIDDEN = "403"
NOT_ALLOWED = "405"
OUTCOMES = (OK, LOGIN, ADMIN_LOGIN, UNAUTHORIZED, FORBIDDEN, NOT_ALLOWED)

PAGE, API, PUBLIC, ADMIN_SITE_KIND = "page", "api", "public", "admin"
# Between a URL's key and the label of a second entry for it (``"api-docs?script"``).
VARIANT = "?"


@dataclass(frozen=True)
class Expectation:
    kind: str
    allowed: Mapping[str, tuple[str, ...]]
    kwargs: Mapping[str, str] = field(default_factory=dict)
    data: Mapping[str, Any] = field(default_factory=dict)
    query: Mapping[str, str] = field(default_factory=dict)
    answers: Mapping[str, int] = field(default_factory=dict)
    cells: Mapping[tuple[str, str], str] = field(default_factory=dict)
    bearer_cells: Mapping[tuple[str, str], str] = field(default_factory=dict)

    def outcome(self, role: str, method: str, *, bearer: bool = False) -> str:
        if bearer and (role, method) in self.bearer_cells:
            return self.bearer_cells[(role, method)]
        if (role, method) in self.cells:
            return self.cells[(role, method)]
        if role in self.allowed.get(method, ()):
            return OK
        if self.kind == ADMIN_SITE_KIND:
            return ADMIN_LOGIN
        if role == ANONYMOUS and self.kind != PUBLIC:
            return UNAUTHORIZED if self.kind == API else LOGIN
        if method not in self.allowed:
            return NOT_ALLOWED
        return FORBIDDEN


def _names(value: str | tuple[str, ...]) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value)


def _flat_cells(cells) -> dict[tuple[str, str], str]:
    flat: dict[tuple[str, str], str] = {}
    for (roles, methods), outcome in (cells or {}).items():
        assert outcome in OUTCOMES, f"unknown outcome {outcome!r}; use one of {OUTCOMES}"
        for role in _names(roles):
            for method in _names(methods):
                flat[(role, method)] = outcome
    return flat


def _expectation(
    kind: str, *, kwargs=None, data=None, query=None, answers=None, cells=None, bearer_cells=None, **allowed
) -> Expectation:
    unknown = set(allowed) - set(METHODS)
    assert not unknown, f"unknown method(s) {sorted(unknown)}; use {', '.join(METHODS)}"
    assert kind == API or not bearer_cells, "bearer_cells: only api() entries are run with bearer tokens"
    bearer = _flat_cells(bearer_cells)
    assert ANONYMOUS not in {role for role, _ in bearer}, "bearer_cells: anonymous visitors have no token"
    return Expectation(
        kind=kind,
        allowed={method: _names(roles) for method, roles in allowed.items()},
        kwargs=kwargs or {},
        data=data or {},
        query=query or {},
        answers=answers or {},
        cells=_flat_cells(cells),
        bearer_cells=bearer,
    )


def url_key(entry_key: str) -> str:
    """The URL an entry is about: its key without a ``?label`` (see "Format")."""
    return entry_key.partition(VARIANT)[0]


def page(**options) -> Expectation:
    return _expectation(PAGE, **options)


def api(**options) -> Expectation:
    return _expectation(API, **options)


def public(**options) -> Expectation:
    return _expectation(PUBLIC, **options)


def admin_site(**options) -> Expectation:
    """Admins may use every method unless the entry says otherwise."""
    if not set(options) & set(METHODS):
        options.update(dict.fromkeys(METHODS, ADMIN_ROLES))
    return _expectation(ADMIN_SITE_KIND, **options)


# The sample objects a path argument can name (tests/test_url_matrix.py's `samples` fixture makes exactly these).
SAMPLES = {
    "user_alias": "name of a user alias (USER_ALIAS below)",
    "user_alias_pk": "its primary key (the Django admin's change page)",
    "model_alias": "name of the alias generated from a cached file: owner/repo:quant, with a slash",
    "modelfile_pk": "primary key of that cached file's ModelFile row",
    "active_download": "id (uuid) of a queued download",
    "failed_download": "id (uuid) of a failed download",
    "paused_download": "id (uuid) of a paused download",
    "target_user_pk": "primary key of a viewer who is none of the signed-in roles (user pages)",
    "target_user_token_pk": "primary key of that viewer's API token (someone else's token)",
    "own_token_pk": "primary key of the requesting role's own API token (anonymous: the viewer's)",
    "audit_entry_pk": "primary key of an audit entry",
    "user_preset": "name of a preset made by an editor (USER_PRESET below; built-in ones are read-only)",
    "history_alias": "name of a user alias saved twice through the services (versions 1 and 2 on record)",
    "history_version": "1, an older saved version of history_alias",
    "deleted_alias": "name of a user alias that was deleted (restorable: the name is free)",
    "export_format": "llama-server, an export format of one alias (the model alias's file is local)",
}

# Which sample object fills a path argument, by the argument's name.
SAMPLE_FOR_KWARG = {
    "name": "user_alias",  # aliases pages
    "alias": "user_alias",  # /api/models/<alias>
    "pk": "active_download",  # /files/downloads/<uuid:pk>/...
    "download_id": "active_download",  # /api/modelfiles/status/<id>...
    "preset": "user_preset",  # /presets/<preset>/..., /api/presets/<preset>
}

# The alias the samples fixture creates (path arguments "name" and "alias"), and bodies that make or replace one.
USER_ALIAS = {
    "alias": "matrix-alias",
    "repo": "acme/Tiny-GGUF",
    "filename": "tiny.Q4_K_M.gguf",
    "snapshot": "main",
    "chat_template": "embedded",
}
NEW_ALIAS = {**USER_ALIAS, "alias": "matrix-new"}
REPLACED_ALIAS = {**USER_ALIAS, "filename": "other.Q4_K_M.gguf", "version": 1}

# A bulk "set" on the sample alias, from the list page's action bar (the box carries its version) and the API.
BULK_SET_PAGE = {"action": "set", "field": "temperature", "value": "0.5", "selected": f"1:{USER_ALIAS['alias']}"}
BULK_SET = {"action": "set", "aliases": [USER_ALIAS["alias"]], "values": {"temperature": 0.5}}

# The preset the samples fixture creates, and bodies that make or replace one.
USER_PRESET = {"name": "matrix-preset", "temperature": 0.3}
NEW_PRESET = {"name": "matrix-new-preset", "temperature": 0.5}
REPLACED_PRESET = {"name": "matrix-preset", "version": 1, "request_params": {"top_p": 0.5}}

# A pull the test cache does not hold: the request is queued (never run: the case's transaction is rolled back
# before the commit that would enqueue it).
PULL = {"repo": "acme/Other-GGUF", "filename": "other.Q4_K_M.gguf", "revision": "main"}

# A user the admin creates (user-create), and a password an admin sets (user-password): both pass the validators.
NEW_PASSWORD = "matrix-Staple-Lantern-42"
NEW_USER = {
    "username": "matrix-new-user",
    "email": "",
    "role": "viewer",
    "password1": NEW_PASSWORD,
    "password2": NEW_PASSWORD,
}

EXPECTATIONS: dict[str, Expectation] = {
    # --- sign-in -------------------------------------------------------------------------------------------------
    "home": page(GET=READ_ROLES),
    "login": public(
        GET=EVERYONE,
        POST=EVERYONE,  # an empty form: 200 with its errors
        # Django's FormView treats PUT as POST; request.POST is empty for a PUT, so it only re-renders the form.
        # Only a GET sends a signed-in visitor home (config/views.py SignInView), so they get the same answers:
        # DELETE, which the page does not have, is a 405 for everyone.
        cells={(EVERYONE, "PUT"): OK},
    ),
    "logout": public(POST=EVERYONE),
    # Health for load balancers and process managers: no sign-in, read only.
    "health:healthz": public(GET=EVERYONE),
    "health:readyz": public(GET=EVERYONE),
    "favicon": public(GET=EVERYONE),
    # --- aliases -------------------------------------------------------------------------------------------------
    "aliases:list": page(GET=READ_ROLES),
    "aliases:create": page(GET=EDITOR_ROLES, POST=EDITOR_ROLES, data={"POST": NEW_ALIAS}, answers={"POST": 302}),
    # A POST with no file re-shows the upload form with a 400 saying so.
    "aliases:import": page(GET=EDITOR_ROLES, POST=EDITOR_ROLES),
    "aliases:export": page(GET=READ_ROLES, query={"format": "json"}),
    "aliases:bulk": page(POST=EDITOR_ROLES, data={"POST": BULK_SET_PAGE}, answers={"POST": 302}),
    # Any reader chooses their own columns; an empty form hides every optional column, then back to the list.
    "aliases:columns": page(POST=READ_ROLES, answers={"POST": 302}),
    "aliases:model-options": page(GET=READ_ROLES, query={"repo": USER_ALIAS["repo"]}),
    "aliases:edit": page(GET=EDITOR_ROLES, POST=EDITOR_ROLES, data={"POST": REPLACED_ALIAS}, answers={"POST": 302}),
    "aliases:delete": page(GET=EDITOR_ROLES, POST=EDITOR_ROLES, data={"POST": {"version": 1}}, answers={"POST": 302}),
    # The generated alias, whose name holds a slash: read-only, but editors may copy it into a new one.
    "aliases:duplicate": page(GET=EDITOR_ROLES, kwargs={"name": "model_alias"}),
    "aliases:detail": page(GET=READ_ROLES, kwargs={"name": "model_alias"}),
    # --- presets -------------------------------------------------------------------------------------------------
    "presets:list": page(GET=READ_ROLES),
    "presets:create": page(GET=EDITOR_ROLES, POST=EDITOR_ROLES, data={"POST": NEW_PRESET}, answers={"POST": 302}),
    "presets:detail": page(GET=READ_ROLES),
    "presets:edit": page(
        GET=EDITOR_ROLES, POST=EDITOR_ROLES, data={"POST": {**USER_PRESET, "version": 1}}, answers={"POST": 302}
    ),
    "presets:delete": page(GET=EDITOR_ROLES, POST=EDITOR_ROLES, data={"POST": {"version": 1}}, answers={"POST": 302}),
    "presets:form-values": page(GET=READ_ROLES, answers={"GET": 200}),
    "aliases:history": page(GET=READ_ROLES, kwargs={"name": "history_alias"}, query={"a": "1", "b": "2"}),
    "aliases:revert": page(
        GET=EDITOR_ROLES,
        POST=EDITOR_ROLES,
        kwargs={"name": "history_alias", "version": "history_version"},
        answers={"GET": 200, "POST": 302},
    ),
    "aliases:deleted": page(GET=EDITOR_ROLES, answers={"GET": 200}),
    "aliases:restore": page(POST=EDITOR_ROLES, kwargs={"name": "deleted_alias"}, answers={"POST": 302}),
    # --- model files and downloads -------------------------------------------------------------------------------
    "modelfiles:list": page(GET=READ_ROLES),
    "modelfiles:detail": page(GET=READ_ROLES, kwargs={"pk": "modelfile_pk"}),
    "modelfiles:rescan": page(POST=OPERATOR_ROLES, answers={"POST": 302}),
    "modelfiles:pull": page(GET=OPERATOR_ROLES, POST=OPERATOR_ROLES, data={"POST": PULL}, answers={"POST": 302}),
    # No repo given: the page says so without asking the Hub.
    "modelfiles:pull-files": page(GET=OPERATOR_ROLES),
    "modelfiles:downloads": page(GET=READ_ROLES),
    # An empty POST lacks the confirmation: 400 with the page again, nothing deleted or cleaned.
    "modelfiles:delete": page(
        GET=ADMIN_ROLES, POST=ADMIN_ROLES, kwargs={"pk": "modelfile_pk"}, answers={"GET": 200, "POST": 400}
    ),
    "modelfiles:storage": page(GET=ADMIN_ROLES, answers={"GET": 200}),
    "modelfiles:cleanup": page(GET=ADMIN_ROLES, POST=ADMIN_ROLES, answers={"GET": 200, "POST": 400}),
    "modelfiles:downloads-active": page(GET=READ_ROLES),
    # GET: the confirmation page a cancel of more than a few MB leads to; the queued sample has fetched nothing,
    # so its POST cancels at once.
    "modelfiles:download-cancel": page(GET=OPERATOR_ROLES, POST=OPERATOR_ROLES, answers={"GET": 200, "POST": 302}),
    "modelfiles:download-pause": page(POST=OPERATOR_ROLES, answers={"POST": 302}),
    "modelfiles:download-resume": page(POST=OPERATOR_ROLES, kwargs={"pk": "paused_download"}, answers={"POST": 302}),
    "modelfiles:download-retry": page(POST=OPERATOR_ROLES, kwargs={"pk": "failed_download"}, answers={"POST": 302}),
    # Queue order and limits: the same roles as pause. The sample is queued (move, speed); limits is the page's
    # global bandwidth form. The speed page (GET) is the form, its POST sets 5 MB/s.
    "modelfiles:download-move": page(POST=OPERATOR_ROLES, data={"POST": {"to": "top"}}, answers={"POST": 302}),
    "modelfiles:download-speed": page(
        GET=OPERATOR_ROLES, POST=OPERATOR_ROLES, data={"POST": {"max_speed": "5"}}, answers={"GET": 200, "POST": 302}
    ),
    "modelfiles:download-limits": page(POST=OPERATOR_ROLES, data={"POST": {"max_speed": "20"}}, answers={"POST": 302}),
    "modelfiles:verify": page(POST=OPERATOR_ROLES, kwargs={"pk": "modelfile_pk"}, answers={"POST": 302}),
    "modelfiles:verification": page(GET=READ_ROLES, kwargs={"pk": "modelfile_pk"}),
    # The sample file is not corrupt: the re-pull is refused with a message (302 back to the list).
    "modelfiles:repull": page(POST=OPERATOR_ROLES, kwargs={"pk": "modelfile_pk"}, answers={"POST": 302}),
    "modelfiles:check-updates": page(POST=OPERATOR_ROLES, answers={"POST": 302}),
    # No update is known for the sample file: refused with a message (302 back to the list).
    "modelfiles:update": page(POST=OPERATOR_ROLES, kwargs={"pk": "modelfile_pk"}, answers={"POST": 302}),
    # --- JSON API ------------------------------------------------------------------------------------------------
    "aliases_api:model-list": api(GET=READ_ROLES, POST=EDITOR_ROLES, data={"POST": NEW_ALIAS}, answers={"POST": 201}),
    "aliases_api:model-import": api(
        POST=EDITOR_ROLES, query={"format": "json", "dry_run": "1"}, data={"POST": [NEW_ALIAS]}, answers={"POST": 200}
    ),
    "aliases_api:model-export": api(GET=READ_ROLES, query={"format": "csv"}, answers={"GET": 200}),
    "aliases_api:model-bulk": api(POST=EDITOR_ROLES, data={"POST": BULK_SET}, answers={"POST": 200}),
    "aliases_api:model-detail": api(
        GET=READ_ROLES,
        PUT=EDITOR_ROLES,
        DELETE=EDITOR_ROLES,
        data={"PUT": REPLACED_ALIAS},
        answers={"GET": 200, "PUT": 200, "DELETE": 204},
    ),
    "presets_api:preset-list": api(
        GET=READ_ROLES, POST=EDITOR_ROLES, data={"POST": {"name": "matrix-new-preset"}}, answers={"POST": 201}
    ),
    "presets_api:preset-detail": api(
        GET=READ_ROLES,
        PUT=EDITOR_ROLES,
        DELETE=EDITOR_ROLES,
        data={"PUT": REPLACED_PRESET},
        answers={"GET": 200, "PUT": 200, "DELETE": 204},
    ),
    "aliases_api:model-versions": api(GET=READ_ROLES, kwargs={"alias": "history_alias"}, answers={"GET": 200}),
    "aliases_api:model-revert": api(
        POST=EDITOR_ROLES, kwargs={"alias": "history_alias", "n": "history_version"}, answers={"POST": 200}
    ),
    "aliases_api:model-deleted": api(GET=READ_ROLES, answers={"GET": 200}),
    "aliases_api:model-restore": api(POST=EDITOR_ROLES, kwargs={"alias": "deleted_alias"}, answers={"POST": 201}),
    "modelfiles_api:modelfile-list": api(GET=READ_ROLES),
    "modelfiles_api:pull": api(POST=OPERATOR_ROLES, data={"POST": PULL}, answers={"POST": 201}),
    "modelfiles_api:download-list": api(GET=READ_ROLES),
    "modelfiles_api:download-detail": api(GET=READ_ROLES),
    "modelfiles_api:download-cancel": api(POST=OPERATOR_ROLES, answers={"POST": 200}),
    "modelfiles_api:download-pause": api(POST=OPERATOR_ROLES, answers={"POST": 200}),
    "modelfiles_api:download-resume": api(
        POST=OPERATOR_ROLES, kwargs={"download_id": "paused_download"}, answers={"POST": 200}
    ),
    "modelfiles_api:download-retry": api(
        POST=OPERATOR_ROLES, kwargs={"download_id": "failed_download"}, answers={"POST": 200}
    ),
    "modelfiles_api:download-move": api(POST=OPERATOR_ROLES, data={"POST": {"to": "top"}}, answers={"POST": 200}),
    "modelfiles_api:download-speed": api(
        POST=OPERATOR_ROLES, data={"POST": {"max_speed": 5_000_000}}, answers={"POST": 200}
    ),
    "modelfiles_api:limits": api(
        GET=READ_ROLES, PUT=OPERATOR_ROLES, data={"PUT": {"max_speed": 20_000_000}}, answers={"GET": 200, "PUT": 200}
    ),
    "api-schema": api(GET=READ_ROLES),
    # The Swagger UI page, and the start-up script the same view serves at ?script= (kept out of the page for the
    # Content-Security-Policy): both for signed-in users only.
    "api-docs": page(GET=READ_ROLES),
    "api-docs?script": page(GET=READ_ROLES, query={"script": ""}),
    "modelfiles_api:scan": api(POST=OPERATOR_ROLES, answers={"POST": 200}),
    # The sample file is loaded by the sample user alias: 409 in_use without ?force=1, nothing deleted.
    "modelfiles_api:modelfile-delete": api(
        DELETE=ADMIN_ROLES, kwargs={"modelfile_id": "modelfile_pk"}, answers={"DELETE": 409}
    ),
    "modelfiles_api:check-updates": api(POST=OPERATOR_ROLES, answers={"POST": 200}),
    "modelfiles_api:modelfile-verify": api(
        GET=READ_ROLES, POST=OPERATOR_ROLES, kwargs={"modelfile_id": "modelfile_pk"}, answers={"GET": 200, "POST": 202}
    ),
    # No update is known for the sample file: 409 no_update.
    "modelfiles_api:modelfile-update": api(
        POST=OPERATOR_ROLES, kwargs={"modelfile_id": "modelfile_pk"}, answers={"POST": 409}
    ),
    # One's own tokens, every role. A bearer token may list them but not make one (403 session_required): a leaked
    # token must not be able to outlive its own revocation.
    "accounts_api:token-list": api(
        GET=READ_ROLES,
        POST=READ_ROLES,
        data={"POST": {"name": "matrix-new"}},
        answers={"GET": 200, "POST": 201},
        bearer_cells={(SIGNED_IN, "POST"): FORBIDDEN},
    ),
    # Someone else's token would be a 404: each role revokes its own.
    "accounts_api:token-detail": api(DELETE=READ_ROLES, kwargs={"token_id": "own_token_pk"}, answers={"DELETE": 204}),
    "audit_api:audit-list": api(GET=ADMIN_ROLES, answers={"GET": 200}),
    # --- my API tokens -------------------------------------------------------------------------------------------
    # The new token is shown on the page it is made on (200), never redirected to.
    "accounts:tokens": page(
        GET=READ_ROLES, POST=READ_ROLES, data={"POST": {"name": "matrix-new"}}, answers={"GET": 200, "POST": 200}
    ),
    # Only one's own token (someone else's is a 404).
    "accounts:token-revoke": page(
        GET=READ_ROLES, POST=READ_ROLES, kwargs={"pk": "own_token_pk"}, answers={"GET": 200, "POST": 302}
    ),
    # --- users (admins) ------------------------------------------------------------------------------------------
    # The user acted on is a viewer of its own, not the admin asking (who may not demote or deactivate the last
    # admin).
    "accounts:users": page(GET=ADMIN_ROLES, answers={"GET": 200}),
    "accounts:user-create": page(GET=ADMIN_ROLES, POST=ADMIN_ROLES, data={"POST": NEW_USER}, answers={"POST": 302}),
    "accounts:user-detail": page(GET=ADMIN_ROLES, kwargs={"pk": "target_user_pk"}, answers={"GET": 200}),
    "accounts:user-role": page(
        POST=ADMIN_ROLES, kwargs={"pk": "target_user_pk"}, data={"POST": {"role": "editor"}}, answers={"POST": 302}
    ),
    "accounts:user-password": page(
        GET=ADMIN_ROLES,
        POST=ADMIN_ROLES,
        kwargs={"pk": "target_user_pk"},
        data={"POST": {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD}},
        answers={"GET": 200, "POST": 302},
    ),
    "accounts:user-deactivate": page(
        GET=ADMIN_ROLES, POST=ADMIN_ROLES, kwargs={"pk": "target_user_pk"}, answers={"GET": 200, "POST": 302}
    ),
    # The target is active: reactivating it changes nothing, and still lands on its page.
    "accounts:user-reactivate": page(POST=ADMIN_ROLES, kwargs={"pk": "target_user_pk"}, answers={"POST": 302}),
    "accounts:user-revoke-tokens": page(
        GET=ADMIN_ROLES, POST=ADMIN_ROLES, kwargs={"pk": "target_user_pk"}, answers={"GET": 200, "POST": 302}
    ),
    # --- audit log (admins) --------------------------------------------------------------------------------------
    "audit:list": page(GET=ADMIN_ROLES, answers={"GET": 200}),
    "audit:detail": page(GET=ADMIN_ROLES, kwargs={"pk": "audit_entry_pk"}, answers={"GET": 200}),
    "audit:export-csv": page(GET=ADMIN_ROLES, answers={"GET": 200}),
    "audit:export-json": page(GET=ADMIN_ROLES, answers={"GET": 200}),
    # --- serving with llama-server (every role reads) ------------------------------------------------------------
    "serving:index": page(GET=READ_ROLES, answers={"GET": 200}),
    "serving:preset": page(GET=READ_ROLES, answers={"GET": 200}),
    "serving:export": page(
        GET=READ_ROLES, kwargs={"fmt": "export_format", "name": "model_alias"}, answers={"GET": 200}
    ),
    "serving_api:preset": api(GET=READ_ROLES, answers={"GET": 200}),
    # No router is configured here: the pages say so and go back (302), the API answers 409 router_not_configured.
    "serving:load": page(POST=SERVE_ROLES, kwargs={"name": "model_alias"}, answers={"POST": 302}),
    "serving:unload": page(POST=SERVE_ROLES, kwargs={"name": "model_alias"}, answers={"POST": 302}),
    "serving_api:models": api(GET=READ_ROLES, answers={"GET": 409}),
    "serving_api:load": api(POST=SERVE_ROLES, kwargs={"alias": "model_alias"}, answers={"POST": 409}),
    "serving_api:unload": api(POST=SERVE_ROLES, kwargs={"alias": "model_alias"}, answers={"POST": 409}),
    # --- the OpenAI-compatible gateway (/v1/): an API token of any role, never the session -----------------------
    # These views take no CSRF token, so a signed-in browser's cookie must not spend its user's tokens: 401 to the
    # session, and with a token what the entry's methods say (the empty body is a 400 about it).
    "gateway:models": api(
        GET=READ_ROLES,
        answers={"GET": 200},
        cells={(SIGNED_IN, METHODS): UNAUTHORIZED},
        bearer_cells={(SIGNED_IN, "GET"): OK, (SIGNED_IN, ("POST", "PUT", "DELETE")): NOT_ALLOWED},
    ),
    "gateway:chat-completions": api(
        POST=READ_ROLES,
        answers={"POST": 400},
        cells={(SIGNED_IN, METHODS): UNAUTHORIZED},
        bearer_cells={(SIGNED_IN, "POST"): OK, (SIGNED_IN, ("GET", "PUT", "DELETE")): NOT_ALLOWED},
    ),
    "gateway:completions": api(
        POST=READ_ROLES,
        answers={"POST": 400},
        cells={(SIGNED_IN, METHODS): UNAUTHORIZED},
        bearer_cells={(SIGNED_IN, "POST"): OK, (SIGNED_IN, ("GET", "PUT", "DELETE")): NOT_ALLOWED},
    ),
    "aliases_api:model-export-one": api(
        GET=READ_ROLES, kwargs={"alias": "model_alias", "fmt": "export_format"}, answers={"GET": 200}
    ),
}

# The Django admin: a few URLs standing for all of its patterns. Admins pass with every method (the admin's own
# views answer PUT and DELETE like GET); everyone else gets its login page.
ADMIN_SITE_NAMESPACE = "admin"
ADMIN_SITE: dict[str, Expectation] = {
    "admin:index": admin_site(),
    "admin:aliases_alias_changelist": admin_site(),
    "admin:aliases_alias_add": admin_site(),
    "admin:aliases_alias_change": admin_site(kwargs={"object_id": "user_alias_pk"}),
    "admin:auth_user_changelist": admin_site(),
    # Its sign-in page: for everyone (Django's FormView treats PUT as POST, with an empty request.POST).
    "admin:login": public(GET=EVERYONE, POST=EVERYONE, cells={(EVERYONE, "PUT"): OK}),
}
