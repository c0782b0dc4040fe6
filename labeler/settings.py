"""Django settings for labeler.

Everything comes from the environment with embedded defaults, so `make run` works on a fresh
machine and production deploys only set variables (12-factor style).
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url

from labeler import security_settings as sec
from labeler import storage_settings
from labeler.envvars import env_bool, env_int

BASE_DIR = Path(__file__).resolve().parent.parent

DATA_DIR = Path(os.environ.get("LABELER_DATA_DIR", BASE_DIR / "var")).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)

# Production mode, the secret key (required in production; locally generated into DATA_DIR) and
# the TLS/CSP settings further down: labeler/security_settings.py, docs/security.md.
PRODUCTION = sec.PRODUCTION
DEBUG = sec.debug_setting()
SECRET_KEY = sec.secret_key(DATA_DIR, PRODUCTION)
ALLOWED_HOSTS = [h for h in os.environ.get("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]").split(",") if h]
CSRF_TRUSTED_ORIGINS = [o for o in os.environ.get("DJANGO_CSRF_TRUSTED_ORIGINS", "").split(",") if o]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "labeler.projects",
    "labeler.items",
    "labeler.annotations",
    "labeler.training",
    "labeler.insights",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI as local static files (no CDN)
    "labeler.api",
    "labeler.webhooks",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Every page and API needs a login unless a view opts out explicitly (login page only).
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "labeler.urls"
WSGI_APPLICATION = "labeler.wsgi.application"

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

SQLITE_PATH = Path(os.environ.get("LABELER_SQLITE_PATH", DATA_DIR / "labeler.sqlite3"))
DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{SQLITE_PATH}"), conn_max_age=60,
        # A kept connection is checked before reuse: after a database restart the next request
        # reconnects instead of failing on a dead socket.
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL + IMMEDIATE transactions: the web server and the Celery worker write concurrently
    # without "database is locked" errors.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # A file, not :memory:, so that a real Celery worker process can share the test database.
    DATABASES["default"]["TEST"] = {
        "NAME": os.environ.get("LABELER_TEST_SQLITE_PATH", str(DATA_DIR / "test.sqlite3"))
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "projects:list"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = DATA_DIR / "static"
STATICFILES_DIRS = [BASE_DIR / "labeler" / "static"]
STATIC_ROOT.mkdir(exist_ok=True)
# Storage shared with the GPU workers (worker.storage): embeddings, heads, results files, maps,
# and item images. A local folder by default; s3://bucket/prefix puts all of it on an
# S3-compatible store (docs/storage.md), by settings only. Workers get full locations in their
# task messages.
LABELER_STORAGE_URL = os.environ.get("LABELER_STORAGE_URL", "") or str(DATA_DIR)
STORAGES = {
    "default": storage_settings.default_storage_backend(LABELER_STORAGE_URL),
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True

# Uploaded images live here (or in the bucket); they are served only through a login-checked
# view, never directly. Thumbnails are a cache on the web host's disk in either case.
MEDIA_ROOT = Path(os.environ.get("LABELER_MEDIA_ROOT", DATA_DIR / "media"))
MEDIA_URL = "/media/"


def _in_storage(variable: str, name: str) -> Path | str:
    value = os.environ.get(variable) or f"{LABELER_STORAGE_URL.rstrip('/')}/{name}"
    return value if "://" in value else Path(value)


EMBEDDINGS_ROOT = _in_storage("LABELER_EMBEDDINGS_ROOT", "embeddings")
MODELS_ROOT = _in_storage("LABELER_MODELS_ROOT", "models")
RESULTS_ROOT = _in_storage("LABELER_RESULTS_ROOT", "results")
# Files of export jobs (labeler.insights.export_jobs): written by the web side's Celery worker,
# served by the web server, so both need this folder.
EXPORTS_ROOT = Path(os.environ.get("LABELER_EXPORTS_ROOT", DATA_DIR / "exports"))

# Upload limits: validated on the server for every file and archive.
LABELER_MAX_UPLOAD_BYTES = env_int("LABELER_MAX_UPLOAD_BYTES", 512 * 1024 * 1024)
LABELER_MAX_IMAGE_BYTES = env_int("LABELER_MAX_IMAGE_BYTES", 50 * 1024 * 1024)
LABELER_MAX_IMAGE_PIXELS = env_int("LABELER_MAX_IMAGE_PIXELS", 80_000_000)
LABELER_MAX_ZIP_MEMBERS = env_int("LABELER_MAX_ZIP_MEMBERS", 200_000)
LABELER_MAX_ZIP_RATIO = env_int("LABELER_MAX_ZIP_RATIO", 200)
DATA_UPLOAD_MAX_NUMBER_FILES = env_int("LABELER_MAX_FILES_PER_UPLOAD", 1000)
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024

LABELER_EMBED_BATCH_SIZE = env_int("LABELER_EMBED_BATCH_SIZE", 0)  # 0 = featurizer's default
# Items per embedding task: the web side cuts the project into chunks by id (a cursor), one GPU
# task each (resumable backfill: a lost worker costs one chunk).
LABELER_EMBED_CHUNK = env_int("LABELER_EMBED_CHUNK", 1024)
LABELER_QUERY_POOL_SIZE = env_int("LABELER_QUERY_POOL_SIZE", 300)
# Custom backbone weights: a lead may pick only checkpoint files inside this folder (empty: no
# custom weights). The worker also looks here for official checkpoints (worker.ml.backbones).
LABELER_WEIGHTS_DIR = os.environ.get("LABELER_WEIGHTS_DIR", "")
# Background work that could not be queued, or whose worker died, is queued again by a periodic
# sweep (labeler.training.sweep, scheduled by `celery beat`): the catch-up delay after the broker
# returns is about one interval plus Celery's reconnect. A job silent for ORPHAN seconds that no
# live worker holds while the queues are empty is an orphan (lost message, dead worker); a job
# silent for JOB_STALE seconds is presumed dead in any case.
LABELER_SWEEP_SECONDS = env_int("LABELER_SWEEP_SECONDS", 30)
# A background job (labeler.training.models.Job) with no sign of life (a heartbeat the worker
# sends every LABELER_HEARTBEAT_SECONDS, or a chunk done) for this long is presumed dead: the one
# staleness rule of every kind of job. (LABELER_EMBED_STALE_SECONDS: its former name.)
LABELER_JOB_STALE_SECONDS = env_int(
    "LABELER_JOB_STALE_SECONDS", env_int("LABELER_EMBED_STALE_SECONDS", 300))
LABELER_HEARTBEAT_SECONDS = env_int("LABELER_HEARTBEAT_SECONDS", 30)
LABELER_ORPHAN_SECONDS = env_int("LABELER_ORPHAN_SECONDS", 120)
# Run the backbone check by itself (5 labels per class, then whenever the labels double).
LABELER_BACKBONE_CHECK_AUTO = env_bool("LABELER_BACKBONE_CHECK_AUTO", True)
# Backbones the backbone check compares (comma-separated); empty = every installed backbone.
LABELER_CHECK_BACKBONES = [
    b.strip() for b in os.environ.get("LABELER_CHECK_BACKBONES", "").split(",") if b.strip()
]

# Celery: the broker, queues, acknowledgements and routes are configured from the environment in
# worker/celery_app.py (a GPU machine runs without Django); labeler/celery.py adds these.
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_BEAT_SCHEDULE = {
    "sweep": {
        "task": "labeler.training.tasks.sweep",
        "schedule": float(LABELER_SWEEP_SECONDS),
        # A sweep not run by the next one is useless: don't let them pile up while no worker runs.
        "options": {"expires": float(LABELER_SWEEP_SECONDS)},
    },
}

# --- Logging: unexpected errors with their traceback --------------------------------------
# Django's default sends the traceback of a 500 only to the admins' e-mail when DEBUG is off,
# i.e. nowhere here. Errors go to stderr (the terminal of `make run`, gunicorn's error log) and,
# unless LABELER_ERROR_LOG is set empty, to an error log file in the data folder.
ERROR_LOG = os.environ.get("LABELER_ERROR_LOG", str(DATA_DIR / "log" / "errors.log"))
_LOG_HANDLERS = ["console", "errors"] if ERROR_LOG else ["console"]
if ERROR_LOG:
    Path(ERROR_LOG).parent.mkdir(parents=True, exist_ok=True)
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},  # stderr
        **({"errors": {
            "class": "logging.handlers.WatchedFileHandler", "filename": ERROR_LOG,
            "formatter": "plain", "level": "ERROR",
        }} if ERROR_LOG else {}),
    },
    "loggers": {
        "labeler": {"handlers": _LOG_HANDLERS, "level": "INFO"},
        "worker": {"handlers": _LOG_HANDLERS, "level": "INFO"},
        # A 500: the request's exception with its traceback (4xx are WARNING, not logged here).
        "django.request": {"handlers": _LOG_HANDLERS, "level": "ERROR", "propagate": False},
        # Refused hosts, oversized bodies and other suspicious requests.
        "django.security": {"handlers": _LOG_HANDLERS, "level": "WARNING", "propagate": False},
        "axes": {"handlers": _LOG_HANDLERS, "level": "WARNING", "propagate": False},
    },
}

# --- Security: production mode, secret key, TLS behind a proxy, CSP -------------------------
# All in labeler/security_settings.py (docs/security.md explains each variable).
SECURE_PROXY_SSL_HEADER = sec.SECURE_PROXY_SSL_HEADER
SESSION_COOKIE_SECURE = sec.SESSION_COOKIE_SECURE
CSRF_COOKIE_SECURE = sec.CSRF_COOKIE_SECURE
SECURE_SSL_REDIRECT = sec.SECURE_SSL_REDIRECT
SECURE_REDIRECT_EXEMPT = sec.SECURE_REDIRECT_EXEMPT
SECURE_HSTS_SECONDS = sec.SECURE_HSTS_SECONDS
SECURE_HSTS_INCLUDE_SUBDOMAINS = sec.SECURE_HSTS_INCLUDE_SUBDOMAINS
SECURE_HSTS_PRELOAD = sec.SECURE_HSTS_PRELOAD
SESSION_COOKIE_HTTPONLY = sec.SESSION_COOKIE_HTTPONLY
X_FRAME_OPTIONS = sec.X_FRAME_OPTIONS
SILENCED_SYSTEM_CHECKS = sec.SILENCED_SYSTEM_CHECKS
CONTENT_SECURITY_POLICY = sec.CONTENT_SECURITY_POLICY
INSTALLED_APPS += ["csp"]
# Right after SecurityMiddleware, so every response (admin and errors included) gets the header.
MIDDLEWARE.insert(MIDDLEWARE.index("django.middleware.security.SecurityMiddleware") + 1,
                  "csp.middleware.CSPMiddleware")

# --- Login throttling (django-axes) --------------------------------------------------------
# After LABELER_LOGIN_FAILURE_LIMIT failed logins for one account from one address, further
# attempts are refused (HTTP 429) for LABELER_LOGIN_COOLOFF_MINUTES, even with the right
# password. LABELER_LOGIN_LOCKOUT lists what a lock applies to, comma-separated groups with
# '+' for combinations (axes' AXES_LOCKOUT_PARAMETERS): "username+ip_address" by default.
INSTALLED_APPS += ["axes"]
MIDDLEWARE += ["axes.middleware.AxesMiddleware"]  # last, as axes requires
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_int("LABELER_LOGIN_FAILURE_LIMIT", 10)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("LABELER_LOGIN_COOLOFF_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = [
    group.split("+") if "+" in group else group
    for group in os.environ.get("LABELER_LOGIN_LOCKOUT", "username+ip_address").split(",")
    if group
]
AXES_RESET_ON_SUCCESS = True
AXES_ENABLE_ADMIN = True

# --- Public API (labeler.api), webhooks (labeler.webhooks) ----------------------------------
# Token auth failures per client address: after LABELER_API_AUTH_FAILURES within
# LABELER_API_AUTH_WINDOW seconds, that address gets 429 until the window ends.
LABELER_API_AUTH_FAILURES = env_int("LABELER_API_AUTH_FAILURES", 20)
# The counts live in Django's cache: per process by default; LABELER_CACHE_URL (redis://...)
# shares them between the web server's processes and machines.
if os.environ.get("LABELER_CACHE_URL"):
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                          "LOCATION": os.environ["LABELER_CACHE_URL"]}}
LABELER_API_AUTH_WINDOW = env_int("LABELER_API_AUTH_WINDOW", 300)
# URLs the server fetches (webhooks, import by URL) may reach private, loopback and link-local
# addresses only when an admin allows it (labeler.net_safety).
LABELER_ALLOW_PRIVATE_URLS = env_bool("LABELER_ALLOW_PRIVATE_URLS", False)
# Webhook deliveries: tries in all, and the first wait (doubling after each failure).
LABELER_WEBHOOK_TRIES = env_int("LABELER_WEBHOOK_TRIES", 5)
LABELER_WEBHOOK_RETRY_SECONDS = env_int("LABELER_WEBHOOK_RETRY_SECONDS", 30)
LABELER_WEBHOOK_TIMEOUT = env_int("LABELER_WEBHOOK_TIMEOUT", 10)
# Export jobs' files kept per project (older ones are removed when a new export finishes).
LABELER_EXPORTS_KEPT = env_int("LABELER_EXPORTS_KEPT", 5)
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "labeler.api.authentication.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",  # the pages' session, with CSRF
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "labeler.api.parsers.SafeJSONParser",
        "rest_framework.parsers.MultiPartParser",
        "rest_framework.parsers.FormParser",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "labeler.api.errors.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "labeler API",
    "DESCRIPTION": "Projects, images, labels, predictions, models, exports and webhooks. "
                   "Authenticate with `Authorization: Bearer <token>` (tokens: /account/tokens/).",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "ENUM_NAME_OVERRIDES": {"RoleEnum": "labeler.projects.models.Role.choices"},
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "labeler.api.schema.add_error_responses",
    ],
}
