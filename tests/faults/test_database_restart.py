"""PostgreSQL restarted while annotators label through gunicorn: requests fail cleanly (503 with
a message, never a 500 or a traceback), labeling recovers on its own once the database is back,
and nothing is half-saved (every acknowledged label stored, every item's count matches its labels).

It starts its own PostgreSQL (scripts/services.sh), so it runs in the SQLite pass of the suite
and is skipped in the PostgreSQL pass (it would only repeat itself there).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid

import pytest

from ..conftest import REPO, _free_port, wait_for
from .conftest import _listening

SETUP = """
import json, django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from django.contrib.auth import get_user_model
from django.contrib.sessions.backends.db import SessionStore
from labeler.items.models import Item
from labeler.projects.models import Role
from labeler.projects.services import create_project, set_member
project = create_project("Restart", ["a", "b"], retrain_every=1000)
Item.objects.bulk_create([Item(project=project, image=f"x{i}.jpg", original_name=f"{i}.jpg",
                               sha256=f"{i:064x}", width=8, height=8) for i in range(400)])
sessions = []
for n in range(2):
    user = get_user_model().objects.create_user(f"ann{n}", password="pw-for-tests-1")
    set_member(project, user, Role.ANNOTATOR)
    s = SessionStore()
    s["_auth_user_id"] = str(user.pk)
    s["_auth_user_backend"] = "django.contrib.auth.backends.ModelBackend"
    s["_auth_user_hash"] = user.get_session_auth_hash()
    s.create()
    sessions.append(s.session_key)
print(json.dumps({"project": project.pk, "label": project.classes.first().pk,
                  "sessions": sessions}))
"""

CHECK = """
import json, sys, django
django.setup()
from django.db.models import Count, F
from labeler.annotations.models import Annotation
from labeler.items.models import Item
acked = json.loads(sys.stdin.read())
stored = set(str(c) for c in Annotation.objects.values_list("client_id", flat=True))
bad_counts = Item.objects.annotate(n=Count("annotations")).exclude(annotation_count=F("n")).count()
print(json.dumps({"missing": len(set(acked) - stored), "bad_counts": bad_counts,
                  "stored": len(stored)}))
"""


def _sh(command: str, timeout: float = 60) -> str:
    out = subprocess.run(["bash", "-c", command], cwd=REPO, capture_output=True, text=True,
                         timeout=timeout)
    if out.returncode:
        raise RuntimeError(out.stderr[-2000:])
    return out.stdout.strip()


def _as_postgres(command_file: str) -> None:
    command = open(command_file).read().strip()
    _sh(command if os.getuid() != 0 else f"su postgres -s /bin/bash -c '{command}'")


@pytest.fixture
def private_postgres():
    if os.environ.get("DATABASE_URL"):
        pytest.skip("runs once, in the SQLite pass, against a PostgreSQL of its own")
    try:
        url, folder = _sh("source scripts/services.sh && start_postgres").split("|")
    except (RuntimeError, ValueError) as exc:
        pytest.skip(f"could not start a private PostgreSQL (scripts/services.sh): {exc}")
    yield url, folder
    _sh(f"source scripts/services.sh && stop_postgres {folder}")


class Annotator(threading.Thread):
    """Labels over and over through the real HTTP stack; keeps every answer."""

    def __init__(self, port: int, setup: dict, session: str) -> None:
        super().__init__(daemon=True)
        self.port, self.setup = port, setup
        token = uuid.uuid4().hex
        self.headers = {"Cookie": f"sessionid={session}; csrftoken={token}",
                        "X-CSRFToken": token, "Content-Type": "application/json",
                        "Host": "127.0.0.1"}
        self.answers: list[tuple[float, int, bytes]] = []
        self.acked: list[str] = []
        self.stop = threading.Event()

    def call(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        import http.client

        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, path, body=body, headers=self.headers)
            response = conn.getresponse()
            answer = (response.status, response.read())
        except OSError:
            answer = (0, b"")
        finally:
            conn.close()
        self.answers.append((time.monotonic(), *answer))
        return answer

    def run(self) -> None:
        project = self.setup["project"]
        while not self.stop.wait(0.05):
            status, body = self.call("GET", f"/api/projects/{project}/next/?n=1")
            if status != 200:
                continue
            items = json.loads(body)["items"]
            if not items:
                return
            client_id = str(uuid.uuid4())
            payload = json.dumps({"item": items[0]["id"], "label": self.setup["label"],
                                  "seconds": 1.0, "client_id": client_id}).encode()
            status, _ = self.call("POST", f"/api/projects/{project}/annotations/", payload)
            if status in (200, 201):
                self.acked.append(client_id)


def test_postgres_restart_mid_labeling(private_postgres, tmp_path):
    url, folder = private_postgres
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="labeler.settings", DATABASE_URL=url,
               LABELER_DATA_DIR=str(tmp_path), CELERY_BROKER_URL="memory://")
    setup = json.loads(subprocess.run(
        [sys.executable, "-c", SETUP], cwd=REPO, env=env, capture_output=True, text=True,
        timeout=180, check=True,
    ).stdout.strip().splitlines()[-1])
    port = _free_port()
    web = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "labeler.wsgi", "-b", f"127.0.0.1:{port}",
         "--workers", "1", "--threads", "2", "--log-level", "warning"],
        cwd=REPO, env=env, stdout=open(tmp_path / "web.log", "w"), stderr=subprocess.STDOUT,
    )
    try:
        wait_for(lambda: _listening(port), 60, 0.2, "gunicorn to listen")
        annotators = [Annotator(port, setup, session) for session in setup["sessions"]]
        for a in annotators:
            a.start()
        wait_for(lambda: sum(len(a.acked) for a in annotators) >= 5, 60, 0.2, "first labels")
        _as_postgres(f"{folder}/stop")
        down = time.monotonic()
        time.sleep(3)  # the outage: every request in it must fail cleanly
        _as_postgres(f"{folder}/start")
        up = time.monotonic()
        acked_before = sum(len(a.acked) for a in annotators)
        wait_for(lambda: sum(len(a.acked) for a in annotators) >= acked_before + 5, 60, 0.2,
                 "labeling to recover after the restart")
        recovered = time.monotonic() - up
        for a in annotators:
            a.stop.set()
            a.join(30)
    finally:
        web.terminate()
        web.wait(20)
    answers = [x for a in annotators for x in a.answers]
    during = [(status, body) for t, status, body in answers if down <= t <= up]
    assert during, "no request was made while the database was down"
    assert {status for status, _ in during} <= {503, 200, 201}, {s for s, _ in during}
    assert any(status == 503 for status, _ in during)
    for status, body in during:
        if status == 503:
            assert json.loads(body)["error"].startswith("The database is unavailable")
    assert all(status != 500 and b"Traceback" not in body for _, status, body in answers), [
        (round(t - down, 2), s, b[:300]) for t, s, b in answers if s not in (200, 201, 503)]
    print(f"postgres restart: {len(during)} requests during the outage, "
          f"labeling recovered {recovered:.1f}s after the restart")
    check = json.loads(subprocess.run(
        [sys.executable, "-c", CHECK], cwd=REPO, env=env, capture_output=True, text=True,
        timeout=120, check=True, input=json.dumps([c for a in annotators for c in a.acked]),
    ).stdout.strip().splitlines()[-1])
    assert check["missing"] == 0 and check["bad_counts"] == 0, check
