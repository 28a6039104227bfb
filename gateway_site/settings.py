"""Settings, all from the environment (django-environ), with an embedded default that needs
nothing but Python: SQLite under var/, local-memory cache, eager Celery.

Production sets DATABASE_URL, REDIS_URL and SECRET_KEY. A malformed value stops start-up with
a message naming the variable, never a half-configured gateway.
"""

from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()
# `make run` writes var/env once (a generated SECRET_KEY); real environment variables win.
if (VAR_DIR / "env").exists():
    environ.Env.read_env(VAR_DIR / "env", overwrite=False)


def _typed(name: str, cast, default):
    """Read one variable, turning a bad value into a start-up error that names it."""
    try:
        return cast(name, default=default)
    except (ValueError, TypeError, ImproperlyConfigured) as exc:
        raise ImproperlyConfigured(f"Environment variable {name} is malformed: {exc}") from None


_BOOLEANS = {"1", "0", "true", "false", "yes", "no", "on", "off"}


def _strict_bool(name: str, default: bool) -> bool:
    """django-environ reads any unknown word ("maybe") as False; a typo must not silently turn DEBUG off."""
    raw = env.str(name, default=None)
    if raw is None or not raw.strip():
        return default
    if raw.strip().lower() not in _BOOLEANS:
        raise ImproperlyConfigured(
            f"Environment variable {name} is malformed: expected 1/0, true/false, yes/no or on/off, got {raw!r}"
        )
    return raw.strip().lower() in {"1", "true", "yes", "on"}


DEBUG = _strict_bool("DEBUG", False)
SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "Environment variable SECRET_KEY is required when DEBUG is off "
            "(set SECRET_KEY, or DEBUG=1 for development only)."
        )
    SECRET_KEY = "dev-only-insecure-secret-key-do-not-use-in-production"

ALLOWED_HOSTS = _typed("ALLOWED_HOSTS", env.list, ["*"])
CSRF_TRUSTED_ORIGINS = _typed("CSRF_TRUSTED_ORIGINS", env.list, [])

# Served over HTTPS behind a proxy that terminates TLS and sets X-Forwarded-Proto: the admin's
# cookies are Secure, plain HTTP is redirected, browsers are told to stay on HTTPS (HSTS), so
# `manage.py check --deploy` is clean. Off by default: `make run` serves plain HTTP on loopback.
GATEWAY_HTTPS = _strict_bool("GATEWAY_HTTPS", False)
if GATEWAY_HTTPS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = 365 * 24 * 3600
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI's files, served as static files (no CDN)
    "core",
    "catalog",
    "orgs",
    "ai_proxy",
    "billing",
    "dashboard",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "gateway_site.urls"
ASGI_APPLICATION = "gateway_site.asgi.application"

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
            ],
        },
    },
]

VAR_DIR.mkdir(exist_ok=True)
(VAR_DIR / "static").mkdir(exist_ok=True)
try:
    DATABASES = {"default": env.db_url("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'gateway.sqlite3'}")}
except (ValueError, ImproperlyConfigured, KeyError) as exc:
    raise ImproperlyConfigured(f"Environment variable DATABASE_URL is malformed: {exc}") from None
if DATABASES["default"]["ENGINE"] not in ("django.db.backends.postgresql", "django.db.backends.sqlite3"):
    # django-environ passes an unknown scheme through as the ENGINE; say so here, not at first query.
    raise ImproperlyConfigured(
        "Environment variable DATABASE_URL is malformed: use postgres://user:password@host:port/name "
        "or sqlite:////absolute/path"
    )
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Persistent connections: the request path must not pay a connect per request.
    DATABASES["default"].setdefault("CONN_MAX_AGE", _typed("DB_CONN_MAX_AGE", env.int, 60))
    DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", True)
elif DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the ledger writer and readers work side by side; busy timeout instead of
    # "database is locked" under concurrent writes.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            # Take the write lock at BEGIN: a deferred transaction that later tries to write
            # fails at once with "database is locked" instead of waiting for the timeout.
            "transaction_mode": "IMMEDIATE",
        }
    )

REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL and not REDIS_URL.startswith(("redis://", "rediss://", "unix://")):
    raise ImproperlyConfigured("Environment variable REDIS_URL is malformed: expected redis://host:port/db")

if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "gateway"}}

# Celery: Redis as the broker in production, eager (in-process) in the embedded default.
CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = None
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULE: dict = {}
# Beat's own state (celerybeat-schedule.*) belongs with the other runtime files, not in the checkout.
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
# Raw ledger rows older than this many days are deleted, only for days already rolled up.
BILLING_LEDGER_RETENTION_DAYS = _typed("BILLING_LEDGER_RETENTION_DAYS", env.int, 90)

# Budget alerts. EMAIL_URL is django-environ's form (smtp+tls://user:password@smtp.example.com:587);
# the default writes mail to the log instead of sending it, so nothing leaves by accident.
globals().update(_typed("EMAIL_URL", env.email_url, "consolemail://"))
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="ai-gateway@localhost")
# Alert webhooks to loopback, private or link-local addresses are refused unless this is on
# (tests, on-premise receivers).
ALERT_WEBHOOK_ALLOW_PRIVATE = _strict_bool("ALERT_WEBHOOK_ALLOW_PRIVATE", False)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/dashboard/"
LOGOUT_REDIRECT_URL = "/accounts/login/"
STATIC_ROOT = VAR_DIR / "static"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["orgs.authentication.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "EXCEPTION_HANDLER": "core.errors.drf_exception_handler",
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}

# The OpenAPI document of /api/ai/ (ai_proxy/openapi.py) and Swagger UI at /api/ai/docs/, public.
SPECTACULAR_SETTINGS = {
    "TITLE": "AI gateway API",
    "DESCRIPTION": "Every endpoint under /api/ai/: OpenAI and Anthropic formats for any catalog model, the catalog, "
                   "usage and health. Authenticate with an organization key, `Authorization: Bearer dm_...` or "
                   "`x-api-key: dm_...`; errors use the route's native body.",
    "VERSION": "1",
    "OAS_VERSION": "3.1.0",
    "SERVE_PUBLIC": True,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "SERVE_INCLUDE_SCHEMA": False,
    "PREPROCESSING_HOOKS": ["ai_proxy.openapi.endpoints_under_api"],
    "POSTPROCESSING_HOOKS": ["ai_proxy.openapi.schema_complete"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    # validatorUrl null: Swagger UI would otherwise send the document to validator.swagger.io.
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None, "tryItOutEnabled": False,
                            "displayOperationId": False, "defaultModelsExpandDepth": 0},
}

# LOG_FORMAT=json: one JSON object per line (gateway, Django and Celery alike), for log shippers;
# plain: human-readable lines. Default: plain with DEBUG on (`make run`), json otherwise.
LOG_FORMAT = env.str("LOG_FORMAT", default="plain" if DEBUG else "json").strip().lower()
if LOG_FORMAT not in ("json", "plain"):
    raise ImproperlyConfigured(f"Environment variable LOG_FORMAT is malformed: expected json or plain, got {LOG_FORMAT!r}")
# One line per finished proxy request (logger gateway.requests, INFO): off with GATEWAY_REQUEST_LOG=0.
GATEWAY_REQUEST_LOG = _strict_bool("GATEWAY_REQUEST_LOG", True)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"()": "gateway_site.log_format.PlainFormatter"},
        "json": {"()": "gateway_site.log_format.JsonFormatter"},
    },
    "filters": {"quiet_during_outage": {"()": "core.outages.QuietDuringOutage"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    # One line per request from the server is noise at thousands of requests a second.
    "loggers": {
        "django.request": {"level": "ERROR", "filters": ["quiet_during_outage"]},
        # httpx logs every upstream request at INFO: a log line per proxied call costs throughput.
        "httpx": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
    },
}

# --- gateway ---------------------------------------------------------------------------
# How long a process trusts its cached key and catalog lookups before re-checking the shared
# version counters. Revocation reaches every instance within this many seconds.
GATEWAY_CACHE_CHECK_SECONDS = _typed("GATEWAY_CACHE_CHECK_SECONDS", env.float, 1.0)
# Largest request body accepted, in bytes (default 20 MiB: a few base64 images).
GATEWAY_MAX_BODY_BYTES = _typed("GATEWAY_MAX_BODY_BYTES", env.int, 20 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = GATEWAY_MAX_BODY_BYTES + 1024
# A route that fails this many times in a row cools down for GATEWAY_COOLDOWN_SECONDS.
GATEWAY_COOLDOWN_FAILURES = _typed("GATEWAY_COOLDOWN_FAILURES", env.int, 3)
GATEWAY_COOLDOWN_SECONDS = _typed("GATEWAY_COOLDOWN_SECONDS", env.float, 30.0)
# Default grace period during which a rotated key keeps working.
GATEWAY_ROTATION_GRACE_HOURS = _typed("GATEWAY_ROTATION_GRACE_HOURS", env.float, 24.0)
# Upstream connection pool size per process.
GATEWAY_UPSTREAM_MAX_CONNECTIONS = _typed("GATEWAY_UPSTREAM_MAX_CONNECTIONS", env.int, 4096)
# While Redis is unreachable hard budgets cannot be held: requests of hard-budget organizations
# get 503 (retryable). 1 lets them through unreserved instead (availability over the budget).
GATEWAY_BUDGET_FAIL_OPEN = _strict_bool("GATEWAY_BUDGET_FAIL_OPEN", False)
# On SIGTERM each worker stops accepting and lets requests in flight (streams) finish for up to
# this many seconds, then is stopped; what it could not finish is recorded lost in flight.
GATEWAY_DRAIN_SECONDS = _typed("GATEWAY_DRAIN_SECONDS", env.int, 120)
if not 1 <= GATEWAY_DRAIN_SECONDS <= 1800:
    raise ImproperlyConfigured("Environment variable GATEWAY_DRAIN_SECONDS is malformed: expected 1 to 1800 seconds")
# A gateway process silent this long is presumed dead: another process (or the Celery ledger
# drain) records its requests in flight as lost, charged their worst case.
BILLING_INFLIGHT_TTL_SECONDS = _typed("BILLING_INFLIGHT_TTL_SECONDS", env.float, 30.0)
if BILLING_INFLIGHT_TTL_SECONDS < 1:
    raise ImproperlyConfigured("Environment variable BILLING_INFLIGHT_TTL_SECONDS is malformed: expected at least 1 second")
# Who moves ledger rows from Redis into the database: `process` (each gateway process's background
# task, and the Celery task) or `celery` (only the Celery `ledger_drain` task, every 5 s: the
# gateway's event loop and GIL are left to requests; rows wait in Redis, durable, until then).
# Without REDIS_URL rows are in process memory and the process always writes them.
GATEWAY_LEDGER_DRAIN = env.str("GATEWAY_LEDGER_DRAIN", default="process").strip().lower()
if GATEWAY_LEDGER_DRAIN not in ("process", "celery"):
    raise ImproperlyConfigured(
        f"Environment variable GATEWAY_LEDGER_DRAIN is malformed: expected process or celery, got {GATEWAY_LEDGER_DRAIN!r}")
# The request path's Redis round trips (admission, settlement) share one pipelined connection per
# event loop, written once per loop turn (core.shared_state._Pipelined). 0: one redis-py
# connection per round trip from a pool instead (the behaviour before; also used for rediss://
# and unix:// URLs).
GATEWAY_REDIS_PIPELINED = _strict_bool("GATEWAY_REDIS_PIPELINED", True)
# Write-ahead journals of ledger rows buffered in process memory (one subdirectory per database).
BILLING_JOURNAL_DIR = _typed("BILLING_JOURNAL_DIR", env.str, str(VAR_DIR / "journal"))

# Reverse proxies whose X-Forwarded-For is believed (IPs or CIDRs, comma-separated; empty: none).
# The default is loopback: nginx on the same machine, as in deploy/. See core/client_ip.py.
from core.client_ip import networks_parse  # noqa: E402

try:
    GATEWAY_TRUSTED_PROXIES = networks_parse(
        env.list("GATEWAY_TRUSTED_PROXIES", default=["127.0.0.1", "::1"]), setting="GATEWAY_TRUSTED_PROXIES")
    # Addresses that may read /metrics without a staff session (Prometheus). Empty: staff only.
    GATEWAY_METRICS_ALLOWED_IPS = networks_parse(
        env.list("GATEWAY_METRICS_ALLOWED_IPS", default=["127.0.0.1", "::1"]), setting="GATEWAY_METRICS_ALLOWED_IPS")
except ValueError as exc:
    raise ImproperlyConfigured(f"Environment variable {exc}") from None
# After SIGTERM, `serve` keeps serving this long with /api/ai/health/ready answering 503, so load
# balancers that poll it stop sending new requests before the listener closes.
GATEWAY_READY_GRACE_SECONDS = _typed("GATEWAY_READY_GRACE_SECONDS", env.float, 2.0)
# A Celery beat heartbeat older than this shows as "stale" in /api/ai/health.
GATEWAY_BEAT_STALE_SECONDS = _typed("GATEWAY_BEAT_STALE_SECONDS", env.float, 120.0)
