"""Production mode as docs/security.md configures it, checked in fresh processes.

Settings are read from the environment once, at start-up, so each case runs `manage.py` or a
short Python program in a subprocess with its own environment and data folder.
"""

from __future__ import annotations

import json
import os
import secrets
import stat
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# Variables of the parent test run that would leak into the child's settings.
INHERITED = ("DJANGO_", "LABELER_", "DATABASE_URL", "REDIS_URL", "CELERY_")


def strong_key() -> str:
    return secrets.token_urlsafe(64)


def run(args: list[str], data_dir: Path, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(INHERITED)}
    clean.update(DJANGO_SETTINGS_MODULE="labeler.settings", LABELER_DATA_DIR=str(data_dir), **env)
    return subprocess.run(
        [sys.executable, *args], cwd=REPO, env=clean, capture_output=True, text=True, timeout=120
    )


def production_env() -> dict[str, str]:
    """The variables docs/security.md tells a deployment to set."""
    return {
        "LABELER_PRODUCTION": "1",
        "DJANGO_SECRET_KEY": strong_key(),
        "DJANGO_ALLOWED_HOSTS": "labeler.example.org",
        "DJANGO_CSRF_TRUSTED_ORIGINS": "https://labeler.example.org",
    }


def test_check_deploy_is_clean_in_production_mode(tmp_path):
    result = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], tmp_path,
                 **production_env())
    assert result.returncode == 0, result.stdout + result.stderr
    # ... and the same check does fail without production mode (it is not vacuous).
    local = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], tmp_path / "local")
    assert local.returncode != 0
    for code in ("W004", "W008", "W012", "W016"):
        assert f"security.{code}" in local.stderr + local.stdout, code


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "DJANGO_SECRET_KEY"),
        ({"DJANGO_SECRET_KEY": ""}, "DJANGO_SECRET_KEY"),
        ({"DJANGO_SECRET_KEY": "labeler-insecure-local-development-key-change-me"}, "too weak"),
        ({"DJANGO_SECRET_KEY": "short"}, "too weak"),
        ({"DJANGO_SECRET_KEY": "django-insecure-" + "x1y2z3" * 10}, "too weak"),
        ({"DJANGO_SECRET_KEY": strong_key(), "DJANGO_DEBUG": "1"}, "DJANGO_DEBUG"),
    ],
)
def test_production_refuses_to_start_without_a_real_secret_key(tmp_path, env, message):
    # A key left in the data folder by a local run does not count: production names its key.
    (tmp_path / "secret_key").write_text(strong_key())
    result = run(["manage.py", "check"], tmp_path, LABELER_PRODUCTION="1", **env)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and message in result.stderr, result.stderr


def test_web_and_worker_refuse_to_start_without_a_key(tmp_path):
    """The WSGI app gunicorn loads and the web worker's Celery configuration stop as manage.py does
    (a GPU-only worker, worker.celery_app, loads no Django settings and needs no key)."""
    for code in ("import labeler.wsgi",
                 "from labeler.celery import app; print(app.conf.broker_url)"):
        result = run(["-c", code], tmp_path, LABELER_PRODUCTION="1")
        assert result.returncode != 0, code
        assert "ImproperlyConfigured" in result.stderr, result.stderr


def test_production_starts_with_a_key_from_a_file(tmp_path):
    key_file = tmp_path / "key"
    key_file.write_text(strong_key() + "\n")
    env = production_env()
    del env["DJANGO_SECRET_KEY"]
    result = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], tmp_path,
                 DJANGO_SECRET_KEY_FILE=str(key_file), **env)
    assert result.returncode == 0, result.stderr


PRINT_SETTINGS = """
import json, django
django.setup()
from django.conf import settings as s
print(json.dumps({k: getattr(s, k) for k in [
    "SECRET_KEY", "DEBUG", "SECURE_PROXY_SSL_HEADER", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE",
    "SECURE_SSL_REDIRECT", "SECURE_HSTS_SECONDS", "SECURE_HSTS_INCLUDE_SUBDOMAINS",
    "SECURE_HSTS_PRELOAD", "CSRF_TRUSTED_ORIGINS"]}))
"""


def settings_of(data_dir: Path, **env: str) -> dict:
    result = run(["-c", PRINT_SETTINGS], data_dir, **env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_local_key_is_random_private_and_shared_by_concurrent_first_starts(tmp_path):
    clean = {k: v for k, v in os.environ.items() if not k.startswith(INHERITED)}
    clean.update(DJANGO_SETTINGS_MODULE="labeler.settings", LABELER_DATA_DIR=str(tmp_path))
    # Several processes start at once on an empty data folder (gunicorn workers, the worker).
    procs = [subprocess.Popen([sys.executable, "-c", PRINT_SETTINGS], cwd=REPO, env=clean,
                              stdout=subprocess.PIPE, text=True) for _ in range(4)]
    keys = {json.loads(p.communicate(timeout=120)[0])["SECRET_KEY"] for p in procs}
    key_file = tmp_path / "secret_key"
    assert keys == {key_file.read_text().strip()}
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert len(keys.pop()) >= 50
    assert not list(tmp_path.glob(".secret_key.*"))  # no temporary files left
    # Another data folder gets another key; DJANGO_SECRET_KEY wins over the file.
    assert settings_of(tmp_path / "other")["SECRET_KEY"] != key_file.read_text().strip()
    assert settings_of(tmp_path, DJANGO_SECRET_KEY="k" * 60)["SECRET_KEY"] == "k" * 60


def test_production_defaults_and_overrides(tmp_path):
    s = settings_of(tmp_path, **production_env())
    assert s["DEBUG"] is False
    assert s["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert s["SESSION_COOKIE_SECURE"] and s["CSRF_COOKIE_SECURE"] and s["SECURE_SSL_REDIRECT"]
    assert s["SECURE_HSTS_SECONDS"] == 31_536_000 and s["SECURE_HSTS_INCLUDE_SUBDOMAINS"]
    assert s["SECURE_HSTS_PRELOAD"] is False
    assert s["CSRF_TRUSTED_ORIGINS"] == ["https://labeler.example.org"]
    # Each value can be overridden on its own.
    s = settings_of(tmp_path, **production_env(), DJANGO_SECURE_SSL_REDIRECT="0",
                    DJANGO_SECURE_HSTS_SECONDS="3600", DJANGO_SECURE_HSTS_PRELOAD="1",
                    LABELER_PROXY_SSL_HEADER="HTTP_X_FORWARDED_SSL=on")
    assert s["SECURE_SSL_REDIRECT"] is False and s["SESSION_COOKIE_SECURE"]
    assert s["SECURE_HSTS_SECONDS"] == 3600 and s["SECURE_HSTS_PRELOAD"]
    assert s["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_SSL", "on"]
    # Production over plain HTTP (e.g. a private network) is one switch.
    s = settings_of(tmp_path, **production_env(), LABELER_HTTPS="0")
    assert not (s["SESSION_COOKIE_SECURE"] or s["SECURE_SSL_REDIRECT"] or s["SECURE_HSTS_SECONDS"])
    assert s["SECURE_PROXY_SSL_HEADER"] is None
    # The local default keeps plain HTTP working for `make run`.
    s = settings_of(tmp_path)
    assert not (s["SESSION_COOKIE_SECURE"] or s["SECURE_SSL_REDIRECT"] or s["SECURE_HSTS_SECONDS"])


RESPONSES = """
import json, django
django.setup()
from django.test import Client
c = Client(HTTP_HOST="labeler.example.org")
plain = c.get("/accounts/login/")
tls = c.get("/accounts/login/", HTTP_X_FORWARDED_PROTO="https")
print(json.dumps({
    "plain": [plain.status_code, plain.get("Location")],
    "tls": [tls.status_code, tls.get("Strict-Transport-Security"),
            tls.get("Content-Security-Policy"), str(tls.cookies.get("csrftoken", ""))],
}))
"""


def test_production_responses_behind_a_tls_proxy(tmp_path):
    """Through the whole middleware stack: redirect to HTTPS, HSTS, CSP, Secure cookies."""
    result = run(["-c", RESPONSES], tmp_path, **production_env())
    assert result.returncode == 0, result.stderr
    r = json.loads(result.stdout)
    assert r["plain"] == [301, "https://labeler.example.org/accounts/login/"]
    status, hsts, csp, cookie = r["tls"]
    assert status == 200
    assert hsts == "max-age=31536000; includeSubDomains"
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "; secure" in cookie.lower()
