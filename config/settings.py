"""ModelDesk settings, read from the environment (and an optional `.env` file beside manage.py).

Defaults give the embedded setup: SQLite in WAL mode and a Celery broker on disk, both under `var/`.
Production points DATABASE_URL at PostgreSQL and CELERY_BROKER_URL at Redis; no code path exists only there.
"""

from __future__ import annotations

import os
import re
import socket
from datetime import timedelta
from pathlib import Path

import bootstrap_wrapper
import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

VAR_DIR = Path(env("MODELDESK_VAR_DIR", default=str(BASE_DIR / "var")))

DEBUG = env.bool("DEBUG", default=False)
# Required outside DEBUG: a missing key must stop the server, not fall back to a known value.
SECRET_KEY = env("SECRET_KEY", default="insecure-development-key-only-for-debug") if DEBUG else env("SECRET_KEY")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "django_tables2",
    "django_filters",
    "crispy_forms",
    "crispy_bootstrap5",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "axes",
    "config.accounts",
    "config.audit",
    "config.serving",
    "config.health",
    "aliases",
    "aliases.presets",
    "modelfiles",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # WhiteNoise, reading files in a thread under ASGI (config/middleware.py).
    "config.middleware.StaticFilesMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    # Django's, with the signed-in user and their permissions read from the cache (config/accounts/middleware.py).
    "config.accounts.middleware.CachedAuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # Oversized bodies (413) and NUL in a path, query or form (400), before any view reads them.
    "config.middleware.RequestLimitsMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # After WhiteNoise, which answers static files before these run: their headers are for pages and the API.
    "csp.middleware.CSPMiddleware",
    "config.security.SecurityHeadersMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # After htmx's: a page (not a poll, not the API) tells its visitor how their pulls ended.
    "modelfiles.middleware.DownloadNoticeMiddleware",
    "config.middleware.HtmxLoginRedirectMiddleware",
    # Last: turns a sign-in that django-axes refused into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "config.context_processors.user_role",
            ],
            # Tags of the layout every page shares (config is not an app of its own).
            "libraries": {"layout": "config.templatetags.layout"},
        },
    },
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'modeldesk.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web server read while a worker writes; IMMEDIATE takes the write lock at BEGIN so two
    # writers queue on the busy timeout instead of failing with "database is locked" halfway through.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": env.int("SQLITE_BUSY_TIMEOUT", default=20),
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
    # A file, not memory, so worker processes started by tests can open it; named per run so that two
    # runs at once do not share it.
    DATABASES["default"].setdefault("TEST", {})["NAME"] = env(
        "SQLITE_TEST_NAME", default=str(VAR_DIR / f"test-modeldesk-{os.getpid()}.sqlite3")
    )
DATABASES["default"]["ATOMIC_REQUESTS"] = False
# Persistent connections (seconds; DATABASE_URL's ?conn_max_age= sets the same): under gunicorn's sync workers a
# PostgreSQL connection per request cost a third of a live poll (bench/pollers.py). Off by default because Django
# wants them off under ASGI (uvicorn, which `make run` uses, on SQLite where it matters little).
if "DB_CONN_MAX_AGE" in os.environ:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE")
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True  # a kept connection the server dropped is replaced, not an error
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"
SESSION_COOKIE_AGE = env.int("SESSION_COOKIE_AGE", default=60 * 60 * 12)

# The cache (fragments, sessions, signed-in users, the active downloads; README "Production"): Redis when CACHE_URL
# (django-environ's form, e.g. redis://host:6379/1) or REDIS_URL names one, shared by every web process and worker;
# else memory of each process, which needs no service. A poll then costs cache lookups, not queries (issue 12).
_cache_url = env("CACHE_URL", default="") or env("REDIS_URL", default="")
CACHES = {"default": env.cache_url_config(_cache_url) if _cache_url else {
    "BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}  # fmt: skip
CACHES["default"]["KEY_PREFIX"] = env("CACHE_KEY_PREFIX", default="modeldesk")
if CACHES["default"]["BACKEND"] == "django.core.cache.backends.redis.RedisCache":
    # A Redis that stops answering fails a request in about a second instead of holding it.
    CACHES["default"].setdefault("OPTIONS", {}).update(
        dict.fromkeys(("socket_timeout", "socket_connect_timeout"), env.float("CACHE_TIMEOUT_SECONDS", default=1.0))
    )
CACHE_SHARED = CACHES["default"]["BACKEND"] not in (
    "django.core.cache.backends.locmem.LocMemCache",
    "django.core.cache.backends.dummy.DummyCache",
)
# Sessions are read from the cache when every process shares it (a sign-out there ends the session everywhere at
# once) and written through to the database, so a cache that restarts signs nobody out. A cache of each process's
# own memory would keep a session another process ended: the database alone then.
SESSION_ENGINE = env(
    "SESSION_ENGINE",
    default="django.contrib.sessions.backends.cached_db" if CACHE_SHARED else "django.contrib.sessions.backends.db",
)
# How long a signed-in user and their permissions are kept in the cache at most (config/accounts/middleware.py).
# A change made through Django (the Users page, the admin, manage.py, a role change) drops the entry at once for
# every process sharing the cache; this bounds what else could be missed (raw SQL, another process's memory).
AUTH_CACHE_SECONDS = env.int("MODELDESK_AUTH_CACHE_SECONDS", default=10)
# The largest request body accepted, in bytes (API JSON and forms alike); larger ones get 413.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("MODELDESK_MAX_BODY_BYTES", default=2**20)

# Sign-in throttling (django-axes): the axes backend first refuses a locked-out username or address before any
# password is checked; this covers /login/ and the Django admin login alike. Attempts live in the database, so
# every web process sees the same count.
AUTHENTICATION_BACKENDS = [
    "config.accounts.auth.LockoutBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.float("AXES_COOLOFF_MINUTES", default=15))
# Either is enough to lock: one username guessed from many addresses, or many usernames from one address.
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
# A fixed end, so the lockout page can say when to try again (more tries while locked do not extend it).
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_LOCKOUT_CALLABLE = "config.accounts.views.locked_out"
AXES_CLIENT_IP_CALLABLE = "config.accounts.addresses.client_address"
AXES_DISABLE_ACCESS_LOG = True
# How many reverse proxies in front of the app append to X-Forwarded-For (0: trust only REMOTE_ADDR).
CLIENT_IP_PROXY_COUNT = env.int("CLIENT_IP_PROXY_COUNT", default=0)
# Failed bearer tokens per client address: past the limit within the window the API answers 429.
API_TOKEN_FAILURE_LIMIT = env.int("API_TOKEN_FAILURE_LIMIT", default=10)
API_TOKEN_FAILURE_WINDOW_SECONDS = env.int("API_TOKEN_FAILURE_WINDOW_SECONDS", default=300)

LANGUAGE_CODE = "en-us"
TIME_ZONE = env("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env("STATIC_ROOT", default=str(VAR_DIR / "staticfiles")))
STATICFILES_DIRS = [
    BASE_DIR / "static",
    ("bootstrap", bootstrap_wrapper.get_bootstrap_dir()),
]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
# Pages must work without `collectstatic` in development and tests; WhiteNoise then serves from the finders.
WHITENOISE_USE_FINDERS = env.bool("WHITENOISE_USE_FINDERS", default=True)
if WHITENOISE_USE_FINDERS and not (STATIC_ROOT / "staticfiles.json").exists():
    STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}

CRISPY_ALLOWED_TEMPLATE_PACKS = "bootstrap5"
CRISPY_TEMPLATE_PACK = "bootstrap5"
DJANGO_TABLES2_TEMPLATE = "django_tables2/bootstrap5-responsive.html"

REST_FRAMEWORK = {
    # Bearer first: its WWW-Authenticate header is what turns an anonymous API call into a 401, not a 403.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "config.accounts.auth.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    # DRF's JSON parser with a body size (413) and nesting depth (400) limit.
    "DEFAULT_PARSER_CLASSES": ["config.api_parsers.JSONParser"],
    "EXCEPTION_HANDLER": "config.api.exception_handler",
    # Documents each operation's error statuses and the request rules (patterns, lengths) of its fields.
    "DEFAULT_SCHEMA_CLASS": "config.api.ApiAutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "ModelDesk API",
    "DESCRIPTION": "Model aliases and Hugging Face model files. Authenticate with a session or "
    "`Authorization: Bearer <token>` (create one with `python manage.py apitoken USERNAME`).",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # Several lists answer an `action` (and bulk skips a `code`) of their own: name each set, so clients get stable
    # enum names.
    "ENUM_NAME_OVERRIDES": {
        "AliasVersionActionEnum": "aliases.models.AliasChange.Action",
        "BulkActionEnum": "aliases.bulk.BulkAction",
        "BulkSkipCodeEnum": "aliases.bulk.SkipCode",
        "ImportRowActionEnum": [
            ("create", "create"),
            ("update", "update"),
            ("unchanged", "unchanged"),
            ("error", "error"),
        ],
    },
}

# Celery: the on-disk broker needs no service; CELERY_BROKER_URL=redis://... for production and CI.
# The on-disk broker has no host; naming one keeps kombu from warning "No hostname was supplied" at every start.
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default="filesystem://localhost/")
if CELERY_BROKER_URL.startswith("filesystem://"):
    # kombu's own transport, with messages renamed into place whole (config/broker.py says why).
    CELERY_BROKER_TRANSPORT = "config.broker:Transport"
    _broker_dir = VAR_DIR / "broker"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "store_processed": False,
        "control_folder": str(_broker_dir / "control"),
        # The folder is polled: how long a queued pull may wait before a worker sees it.
        "polling_interval": env.float("MODELDESK_BROKER_POLL_SECONDS", default=0.05),
    }
    for _sub in ("queue", "processed", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
# A Redis that stops answering must not hold a web request: a publish gives up after about this long (twice,
# with the one retry below) and the download stays queued for the reconciler to send.
# Workers write a heartbeat this often (config/health); three missed in a row make a worker "silent".
MODELDESK_WORKER_HEARTBEAT_SECONDS = env.float("MODELDESK_WORKER_HEARTBEAT_SECONDS", default=10.0)
BROKER_TIMEOUT_SECONDS = env.float("MODELDESK_BROKER_TIMEOUT_SECONDS", default=1.0)
if CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "socket_timeout": BROKER_TIMEOUT_SECONDS,
        "socket_connect_timeout": BROKER_TIMEOUT_SECONDS,
    }
    CELERY_BROKER_CONNECTION_TIMEOUT = BROKER_TIMEOUT_SECONDS
# One quick retry (a pooled connection may be stale after a broker restart), not Celery's default of three.
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.2}
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_BEAT_SCHEDULE = {
    # Downloads whose worker died are resumed by another (or the same, restarted) worker.
    "requeue-stale-downloads": {
        "task": "modelfiles.requeue_stale",
        "schedule": env.float("MODELDESK_REQUEUE_EVERY_SECONDS", default=30.0),
    },
    # Queued downloads whose task never reached the broker (or that it lost) are sent again.
    "reconcile-queued-downloads": {
        "task": "modelfiles.reconcile",
        "schedule": env.float("MODELDESK_RECONCILE_EVERY_SECONDS", default=30.0),
        # A run still waiting in a busy queue when the next one is due is dropped: the next does the same work.
        "options": {"expires": env.float("MODELDESK_RECONCILE_EVERY_SECONDS", default=30.0)},
    },
    # Files that other tools add to or remove from the cache show up without anyone pressing Rescan.
    "scan-cache": {
        "task": "modelfiles.scan_cache",
        "schedule": env.float("MODELDESK_SCAN_EVERY_SECONDS", default=300.0),
    },
    # "Update available" for files pulled by a ref whose commit moved on the Hub (one HEAD per such file).
    "check-updates": {
        "task": "modelfiles.check_updates",
        "schedule": env.float("MODELDESK_UPDATE_CHECK_SECONDS", default=86400.0),
    },
}
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")

# huggingface_hub reads HF_HOME, HF_ENDPOINT and HF_TOKEN from the environment itself; they are listed here
# so the README has one place to point at. HF_TOKEN is never rendered in a page, log or API answer.
HF_HOME = env("HF_HOME", default=str(Path.home() / ".cache" / "huggingface"))
# The name of this process's host (README "Several hosts"): files its scans find are shown as on this host, and a
# worker also takes the tasks of the queue `host.<name>` (pulls aimed at this host). Workers on one machine with
# different HF_HOMEs need different names; hosts that share one cache folder are one location whatever their names.
MODELDESK_HOST = env("MODELDESK_HOST", default="") or (
    re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname().split(".")[0]).strip("-")[:63] or "localhost"
)
if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]{0,62}", MODELDESK_HOST):
    raise ImproperlyConfigured(
        f"MODELDESK_HOST={MODELDESK_HOST!r}: use 1-63 letters, digits, '-' or '_' (it names a Celery queue)."
    )

# Pull pre-flight and source rules (README "Checked before queueing"). The pre-flight asks the Hub about the file
# before a pull is queued; past this many seconds the pull is queued unchecked, as when the Hub is down.
PULL_PREFLIGHT_TIMEOUT_SECONDS = env.float("MODELDESK_PREFLIGHT_TIMEOUT_SECONDS", default=3.0)
# Every other call to the Hub made while a person waits on a page (list a repo's files, check for updates) waits
# at most this long per request, with no retries; workers have their own, longer patience.
HUB_PAGE_TIMEOUT_SECONDS = env.float("MODELDESK_HUB_PAGE_TIMEOUT_SECONDS", default=3.0)
# Glob patterns over owner/name (an owner alone allows all its repos); empty allows every repo.
PULL_ALLOWED_REPOS = [
    pattern.strip() for pattern in env("MODELDESK_ALLOWED_REPOS", default="").split(",") if pattern.strip()
]
# Largest file a pull may fetch, in bytes; 0 or empty: no limit.
PULL_MAX_FILE_BYTES = int(env("MODELDESK_MAX_FILE_BYTES", default="") or 0)

# Downloads (issue 11, item 5): each finished download (completed, failed, cancelled) is POSTed there as JSON
# by a worker, retried for a few minutes while the receiver is down; empty: none.
MODELDESK_WEBHOOK_URL = env("MODELDESK_WEBHOOK_URL", default="")
MODELDESK_WEBHOOK_TIMEOUT_SECONDS = env.float("MODELDESK_WEBHOOK_TIMEOUT_SECONDS", default=5.0)

# Downloads (issue 11, item 3; README "Queue order and limits"): at most this many run at once over all workers,
# and at most this many on any one worker (each worker reads its own); 0 or empty: no limit (then a worker runs as
# many as its Celery processes). More wait in the queue and start as slots free. The global bandwidth limit in
# bytes per second starts at MODELDESK_MAX_DOWNLOAD_SPEED (0 or empty: none) until an operator changes it on the
# downloads page.
MODELDESK_MAX_CONCURRENT_DOWNLOADS = int(env("MODELDESK_MAX_CONCURRENT_DOWNLOADS", default="") or 0)
MODELDESK_WORKER_CONCURRENT_DOWNLOADS = int(env("MODELDESK_WORKER_CONCURRENT_DOWNLOADS", default="") or 0)
MODELDESK_MAX_DOWNLOAD_SPEED = int(env("MODELDESK_MAX_DOWNLOAD_SPEED", default="") or 0)

# Serving with llama-server (README "Serving with llama-server"): the router preset file ModelDesk keeps up to date
# (empty: none is written), and the router told to reload it after each change (empty: none is told).
MODELDESK_LLAMA_PRESET_PATH = env("MODELDESK_LLAMA_PRESET_PATH", default="")
MODELDESK_LLAMA_SERVER_URL = env("MODELDESK_LLAMA_SERVER_URL", default="")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "filters": {"no_client_tracebacks": {"()": "config.logs.NoTracebackForClientErrors"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["no_client_tracebacks"]}
    },
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # django-axes logs every sign-in at INFO; failures and lockouts are WARNING.
        "axes": {"level": env("AXES_LOG_LEVEL", default="WARNING")},
        # httpx logs every request at INFO, a line per call that says nothing went wrong (the gateway used it
        # for the router, one call per completion, until it got config/serving/router_http.py).
        "httpx": {"level": env("HTTPX_LOG_LEVEL", default="WARNING")},
        # Periodic jobs: the beat's "Sending due task" every 30 s and the worker's "received" / "succeeded" lines
        # say nothing happened. The jobs log themselves when they do something (a download re-queued, files
        # found by a scan); failures still log (ERROR).
        "celery.beat": {"level": env("CELERY_BEAT_LOG_LEVEL", default="WARNING")},
        "celery.worker.strategy": {"level": env("CELERY_TASK_LOG_LEVEL", default="WARNING")},
        "celery.app.trace": {"level": env("CELERY_TASK_LOG_LEVEL", default="WARNING")},
    },
}

# --- Security headers and HTTPS (README "Production") ---------------------------------------------------------------
# The defaults suit `make run` (plain http on 127.0.0.1); an HTTPS deployment turns each of these on from its
# environment, with Django's own names, and then `check --deploy` has nothing to warn about.
SECURE_CONTENT_TYPE_NOSNIFF = True
SESSION_COOKIE_HTTPONLY = True
# Only behind a proxy that always sets (and never passes on a client's) X-Forwarded-Proto.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env.bool("BEHIND_TLS_PROXY", False) else None
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
# Load balancers and process managers probe health over plain http from inside: answer them, don't redirect.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
# Off by default: once a browser has seen HSTS it refuses plain http to the host for that long.
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=False)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=SESSION_COOKIE_SECURE)
SECURE_REFERRER_POLICY = env("SECURE_REFERRER_POLICY", default="same-origin")

# Content-Security-Policy (django-csp): scripts and styles come only from our own static files, so an injected
# <script>, style="" or onclick="" does nothing. Nothing we render is inline (tests/test_headers.py keeps it so):
# htmx's own indicator <style> is switched off in base.html, progress widths are CSS classes, and the API docs
# use drf-spectacular's split Swagger view, whose start-up script is a URL of its own.
_SELF, _NONE = "'self'", "'none'"
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [_SELF],
        "script-src": [_SELF],
        "style-src": [_SELF],
        # Bootstrap draws its select arrows and the navbar toggler as data: SVGs in its stylesheet.
        "img-src": [_SELF, "data:"],
        "connect-src": [_SELF],
        "font-src": [_SELF],
        "object-src": [_NONE],
        "base-uri": [_SELF],
        "form-action": [_SELF],
        "frame-ancestors": [_NONE],
    },
}
# Browser features no page here uses: a script that gets in cannot ask for them either (config/security.py).
PERMISSIONS_POLICY = [
    "accelerometer",
    "autoplay",
    "camera",
    "display-capture",
    "encrypted-media",
    "geolocation",
    "gyroscope",
    "magnetometer",
    "microphone",
    "midi",
    "payment",
    "picture-in-picture",
    "publickey-credentials-get",
    "screen-wake-lock",
    "serial",
    "usb",
    "xr-spatial-tracking",
]
# Swagger UI's default validator badge is an <img> from a public validator service: img-src refuses it, and the
# API docs must not send the schema's address to anyone else anyway.
SPECTACULAR_SETTINGS["SWAGGER_UI_SETTINGS"] = {"deepLinking": True, "validatorUrl": None}

VAR_DIR.mkdir(parents=True, exist_ok=True)
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
