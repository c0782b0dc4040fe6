"""Production mode, the secret key, TLS behind a proxy, and the Content-Security-Policy.

Kept apart from settings.py so the security-relevant choices read in one place. Everything comes
from the environment; `LABELER_PRODUCTION=1` turns on the values a public deployment needs (see
docs/security.md) and each of them can still be overridden one by one.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

from labeler.envvars import env_bool, env_int, env_list

# The key settings.py used to embed: public, so it must never sign anything in production.
PUBLIC_DEFAULT_KEYS = {"labeler-insecure-local-development-key-change-me"}


def is_strong_key(key: str) -> bool:
    """Django's own bar (check security.W009): long, varied, not a generated insecure one."""
    return (
        len(key) >= 50
        and len(set(key)) >= 5
        and not key.startswith("django-insecure-")
        and key not in PUBLIC_DEFAULT_KEYS
    )


def local_secret_key(data_dir: Path) -> str:
    """A random key kept in the data folder (mode 0600), made once and shared by all processes.

    Written to a temporary file and hard-linked into place, so concurrent first starts (gunicorn
    workers, the Celery worker) all end up reading the same complete key.
    """
    path = data_dir / "secret_key"
    if not path.exists():
        tmp = data_dir / f".secret_key.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(64))
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process won the race: use its key
        finally:
            tmp.unlink()
    return path.read_text().strip()


def secret_key(data_dir: Path, production: bool) -> str:
    """DJANGO_SECRET_KEY (or the file DJANGO_SECRET_KEY_FILE names); locally a generated one.

    In production a missing or weak key stops start-up: a public or guessable key lets anyone
    forge sessions and password-reset tokens.
    """
    key = os.environ.get("DJANGO_SECRET_KEY", "").strip()
    key_file = os.environ.get("DJANGO_SECRET_KEY_FILE", "").strip()
    if not key and key_file:
        key = Path(key_file).read_text().strip()
    if production:
        if not key:
            raise ImproperlyConfigured(
                "LABELER_PRODUCTION is on but DJANGO_SECRET_KEY (or DJANGO_SECRET_KEY_FILE) is not "
                "set: refusing to start. Generate one with `python -c \"import secrets; "
                "print(secrets.token_urlsafe(64))\"` (see docs/security.md)."
            )
        if not is_strong_key(key):
            raise ImproperlyConfigured(
                "DJANGO_SECRET_KEY is too weak for production (needs 50+ varied characters, not a "
                "public default): refusing to start."
            )
        return key
    return key or local_secret_key(data_dir)


PRODUCTION = env_bool("LABELER_PRODUCTION", False)
# Behind a TLS-terminating proxy: on by default in production (LABELER_HTTPS=0 for plain HTTP).
HTTPS = env_bool("LABELER_HTTPS", PRODUCTION)


def debug_setting() -> bool:
    debug = env_bool("DJANGO_DEBUG", False)
    if PRODUCTION and debug:
        raise ImproperlyConfigured("DJANGO_DEBUG must be off when LABELER_PRODUCTION is on.")
    return debug


def proxy_ssl_header() -> tuple[str, str] | None:
    """The header the proxy sets on HTTPS requests, "NAME=value" (LABELER_PROXY_SSL_HEADER).

    Only trust it behind a proxy that always sets (or strips) this header itself.
    """
    default = "HTTP_X_FORWARDED_PROTO=https" if HTTPS else ""
    raw = os.environ.get("LABELER_PROXY_SSL_HEADER", default).strip()
    if not raw:
        return None
    name, _, value = raw.partition("=")
    return (name.strip(), value.strip() or "https")


SECURE_PROXY_SSL_HEADER = proxy_ssl_header()
SESSION_COOKIE_SECURE = env_bool("DJANGO_SESSION_COOKIE_SECURE", HTTPS)
CSRF_COOKIE_SECURE = env_bool("DJANGO_CSRF_COOKIE_SECURE", HTTPS)
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", HTTPS)
# Health checks that reach the app over plain HTTP from inside the network (regexes on the path).
SECURE_REDIRECT_EXEMPT = env_list("DJANGO_SECURE_REDIRECT_EXEMPT")
# One year, as recommended once HTTPS works; start lower (e.g. 3600) on a first deployment.
SECURE_HSTS_SECONDS = env_int("DJANGO_SECURE_HSTS_SECONDS", 31_536_000 if HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", HTTPS)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_SECURE_HSTS_PRELOAD", False)
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"

# Browser preload lists are a commitment for the whole domain that only its owner can make, so
# preload stays opt-in; the check that asks for it (W021) is then silenced on purpose.
SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD or not SECURE_HSTS_SECONDS else ["security.W021"]

# Content-Security-Policy (django-csp 4.x format), on every page in every mode: scripts and
# styles come only from our own static files - no inline <script>, no style="" attributes, no
# 'unsafe-inline' - so an injected tag cannot run even if escaping were ever missed.
# Item thumbnails are same-origin views; data:/blob: cover Django admin icons and chart export.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:", "blob:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
        **({"report-uri": env_list("LABELER_CSP_REPORT_URI")} if env_list("LABELER_CSP_REPORT_URI") else {}),
    },
}
