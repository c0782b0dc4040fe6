"""Fault-injection fixtures: a Redis that a test may stop and restart, the `make run` stack under
scripts/supervise.py (worker, beat, web) on it, and an HTTP client logged in as a member."""

from __future__ import annotations

import http.client
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.test.client import BOUNDARY, MULTIPART_CONTENT, encode_multipart

from ..conftest import REPO, _free_port, _pings, _redis_binary, _test_database_url, wait_for

#: Sweep interval of the stack under test: a broker outage catches up within about this much
#: (plus Celery's reconnect and the work itself; see test_broker_outage.py for the bound).
SWEEP_SECONDS = 2


class RedisServer:
    """A redis-server on a fixed loopback port that can be stopped and started again."""

    def __init__(self, workdir: Path) -> None:
        self.port, self.workdir = _free_port(), workdir
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        import redis

        self.proc = subprocess.Popen(
            # No persistence, as a Redis restarted on an empty disk: queued messages are lost.
            [_redis_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
        )
        wait_for(lambda: _pings(redis.Redis(port=self.port)), 20, 0.1, "redis-server to answer")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


@pytest.fixture
def private_redis(tmp_path):
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


class Stack:
    """`make run`'s parts (see scripts/run.sh) under scripts/supervise.py, on the test's data."""

    def __init__(self, proc: subprocess.Popen, log: Path, pid_dir: Path, port: int) -> None:
        self.proc, self.log, self.pid_dir, self.port = proc, log, pid_dir, port

    def pid(self, part: str) -> int:
        return int((self.pid_dir / f"{part}.pid").read_text())

    def kill(self, part: str) -> int:
        """SIGKILL one part's main process, as the OOM killer or a crash would."""
        pid = self.pid(part)
        os.kill(pid, signal.SIGKILL)
        return pid

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def stack_factory(private_redis, labeler_dirs, settings, transactional_db):
    stacks: list[tuple[subprocess.Popen, object]] = []

    def start(*, web: bool = True, **extra_env: str) -> Stack:
        env = dict(
            os.environ,
            DJANGO_SETTINGS_MODULE="labeler.settings",
            DATABASE_URL=_test_database_url(),
            REDIS_URL=private_redis.url,
            CELERY_BROKER_URL=private_redis.url,
            CELERY_RESULT_BACKEND=private_redis.url,
            LABELER_MEDIA_ROOT=str(settings.MEDIA_ROOT),
            LABELER_EMBEDDINGS_ROOT=str(settings.EMBEDDINGS_ROOT),
            LABELER_MODELS_ROOT=str(settings.MODELS_ROOT),
            LABELER_SWEEP_SECONDS=str(SWEEP_SECONDS),
            LABELER_ORPHAN_SECONDS="4",
            LABELER_EMBED_BATCH_SIZE="2",
            PYTHONUNBUFFERED="1",
        )
        env.update(extra_env)
        port = _free_port()
        py = sys.executable
        parts = [
            # As scripts/run.sh starts them (one worker, resume_work before each start).
            f"worker={py} manage.py resume_work; exec {py} -m celery -A labeler worker"
            " -l info --concurrency 2 -Q web,gpu --without-gossip --without-mingle",
            f"beat=exec {py} -m celery -A labeler beat -l info"
            f" --schedule {labeler_dirs / 'celerybeat-schedule'}",
        ]
        if web:
            parts.append(f"web=exec {py} -m gunicorn labeler.wsgi -b 127.0.0.1:{port}"
                         " --workers 1 --threads 4")
        log_path = labeler_dirs / f"stack{len(stacks)}.log"
        log = open(log_path, "w")
        pid_dir = labeler_dirs / f"run{len(stacks)}"
        proc = subprocess.Popen(
            [py, "scripts/supervise.py", "--pid-dir", str(pid_dir), "--stop-timeout", "5", *parts],
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        stacks.append((proc, log))
        stack = Stack(proc, log_path, pid_dir, port)
        wait_for(lambda: "ready" in stack.output() or proc.poll() is not None, 90, 0.3,
                 "the celery worker to start")
        if web:
            wait_for(lambda: _listening(port), 60, 0.2, "gunicorn to listen")
        assert proc.poll() is None, stack.output()
        return stack

    yield start
    for proc, log in stacks:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        log.close()


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


class WebClient:
    """HTTP as a logged-in member: a session made in the database, CSRF by cookie and header."""

    def __init__(self, port: int, user) -> None:
        from django.contrib.sessions.backends.db import SessionStore

        session = SessionStore()
        session["_auth_user_id"] = str(user.pk)
        session["_auth_user_backend"] = "django.contrib.auth.backends.ModelBackend"
        session["_auth_user_hash"] = user.get_session_auth_hash()
        session.create()
        token = secrets.token_hex(16)
        self.port = port
        self.headers = {"Cookie": f"sessionid={session.session_key}; csrftoken={token}",
                        "X-CSRFToken": token, "Host": "127.0.0.1"}

    def request(self, method: str, path: str, body: bytes | None = None,
                content_type: str | None = None) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        headers = dict(self.headers)
        if content_type:
            headers["Content-Type"] = content_type
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def json(self, path: str) -> dict:
        status, body = self.request("GET", path)
        assert status == 200, (status, body[:500])
        return json.loads(body)

    def label_next(self, project_id: int, label_id: int) -> int:
        """Take the next item and label it; returns the label API's status."""
        items = self.json(f"/api/projects/{project_id}/next/?n=1")["items"]
        assert items, "nothing left to label"
        body = json.dumps({"item": items[0]["id"], "label": label_id, "seconds": 1.0,
                           "client_id": str(uuid.uuid4())}).encode()
        status, _ = self.request("POST", f"/api/projects/{project_id}/annotations/", body,
                                 "application/json")
        return status

    def upload(self, project_id: int, files: dict[str, bytes]) -> tuple[int, str]:
        from django.core.files.uploadedfile import SimpleUploadedFile

        uploads = [SimpleUploadedFile(name, data, "image/jpeg") for name, data in files.items()]
        body = encode_multipart(BOUNDARY, {"files": uploads})
        status, page = self.request("POST", f"/projects/{project_id}/", body, MULTIPART_CONTENT)
        return status, page.decode("utf-8", "replace")


def embedded_ids(project) -> set[int]:
    from labeler.training.stores import store_for

    return set(store_for(project.pk, project.backbone).ids().tolist())


def settled(project) -> bool:
    """All embedded and no background work queued or running."""
    from labeler.training.models import Job

    project.refresh_from_db()
    busy = Job.objects.filter(project=project, kind__in=[Job.Kind.EMBED, Job.Kind.RETRAIN],
                              status__in=Job.ACTIVE).exists()
    return all_embedded(project) and not busy


def all_embedded(project) -> bool:
    from labeler.items.models import Item

    return embedded_ids(project) == set(Item.objects.filter(project=project)
                                        .values_list("pk", flat=True))


def elapsed_since(started: float) -> float:
    return time.monotonic() - started
