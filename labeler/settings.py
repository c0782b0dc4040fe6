"""Django settings for labeler.

Everything comes from the environment with embedded defaults, so `make run` works on a fresh
machine and production deploys only set variables (12-factor style).
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else default


DATA_DIR = Path(os.environ.get("LABELER_DATA_DIR", BASE_DIR / "var")).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env_bool("DJANGO_DEBUG", False)
# The embedded default key is only for local use; deployments must set DJANGO_SECRET_KEY.
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "labeler-insecure-local-development-key-change-me")
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
        os.environ.get("DATABASE_URL", f"sqlite:///{SQLITE_PATH}"), conn_max_age=60
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
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True

# Uploaded images live here; they are served only through a login-checked view, never directly.
MEDIA_ROOT = Path(os.environ.get("LABELER_MEDIA_ROOT", DATA_DIR / "media"))
MEDIA_URL = "/media/"
EMBEDDINGS_ROOT = Path(os.environ.get("LABELER_EMBEDDINGS_ROOT", DATA_DIR / "embeddings"))
MODELS_ROOT = Path(os.environ.get("LABELER_MODELS_ROOT", DATA_DIR / "models"))

# Upload limits: validated on the server for every file and archive.
LABELER_MAX_UPLOAD_BYTES = env_int("LABELER_MAX_UPLOAD_BYTES", 512 * 1024 * 1024)
LABELER_MAX_IMAGE_BYTES = env_int("LABELER_MAX_IMAGE_BYTES", 50 * 1024 * 1024)
LABELER_MAX_IMAGE_PIXELS = env_int("LABELER_MAX_IMAGE_PIXELS", 80_000_000)
LABELER_MAX_ZIP_MEMBERS = env_int("LABELER_MAX_ZIP_MEMBERS", 200_000)
LABELER_MAX_ZIP_RATIO = env_int("LABELER_MAX_ZIP_RATIO", 200)
DATA_UPLOAD_MAX_NUMBER_FILES = env_int("LABELER_MAX_FILES_PER_UPLOAD", 1000)
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024

LABELER_EMBED_BATCH_SIZE = env_int("LABELER_EMBED_BATCH_SIZE", 0)  # 0 = featurizer's default
# Items embedded per task run; the task re-enqueues itself until done (resumable backfill).
LABELER_EMBED_CHUNK = env_int("LABELER_EMBED_CHUNK", 1024)
LABELER_QUERY_POOL_SIZE = env_int("LABELER_QUERY_POOL_SIZE", 300)
LABELER_WEIGHTS_DIR = os.environ.get("LABELER_WEIGHTS_DIR", "")
# Run the backbone check by itself (5 labels per class, then whenever the labels double).
LABELER_BACKBONE_CHECK_AUTO = env_bool("LABELER_BACKBONE_CHECK_AUTO", True)
# Backbones the backbone check compares (comma-separated); empty = every installed backbone.
LABELER_CHECK_BACKBONES = [
    b.strip() for b in os.environ.get("LABELER_CHECK_BACKBONES", "").split(",") if b.strip()
]

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", REDIS_URL)
CELERY_RESULT_BACKEND = os.environ.get("CELERY_RESULT_BACKEND", REDIS_URL)
CELERY_TASK_ACKS_LATE = True  # a worker killed mid-task leaves the task queued, not lost
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_DEFAULT_QUEUE = "labeler"
CELERY_RESULT_EXPIRES = 3600
# Tasks report progress on the project's rows, not through results. Ignoring results also keeps
# sending a task (after a label is saved) from waiting on the result store: with Redis down,
# Celery would otherwise retry it for ~20 s inside the annotator's request.
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_TIMEOUT = 2
# A task unacknowledged this long (its worker died) is handed to another worker. Each task run
# is bounded (one chunk of embeddings, one retrain), so this is far above a normal run.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env_int("LABELER_BROKER_VISIBILITY_TIMEOUT", 1800)
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        "labeler": {"handlers": ["console"], "level": "INFO"},
        "worker": {"handlers": ["console"], "level": "INFO"},
    },
}

if not DEBUG:
    SESSION_COOKIE_HTTPONLY = True
    X_FRAME_OPTIONS = "DENY"
