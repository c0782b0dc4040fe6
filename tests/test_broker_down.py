"""With Redis (the broker) down, labeling goes on: a save that makes a retrain due neither fails
nor hangs, and the retrain request is not left half-made."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from .conftest import _free_port

REPO = Path(__file__).resolve().parents[1]

SCRIPT = """
import json, time, django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from django.contrib.auth import get_user_model
from labeler.annotations.services import save_annotation
from labeler.items.models import Item
from labeler.projects.models import Project
from labeler.projects.services import create_project
from labeler.training.models import Job
from labeler.training.services import retraining
project = create_project("Broker down", ["a", "b"], retrain_every=2)
user = get_user_model().objects.create_user("ann", password="pw-for-tests-1")
items = [Item.objects.create(project=project, image=f"x{i}.jpg", original_name=f"{i}.jpg",
                             sha256=f"{i:064x}", width=8, height=8) for i in range(3)]
label = project.classes.first()
times = []
for item in items:
    started = time.monotonic()
    save_annotation(item, label, user)
    times.append(time.monotonic() - started)
project.refresh_from_db()
print(json.dumps({"times": times, "labeled": Item.objects.filter(annotation_count=1).count(),
                  "guard": retraining(project),
                  "delayed": Job.objects.filter(project=project, status="delayed").count()}))
"""


def test_save_does_not_wait_for_a_broker_that_is_down(tmp_path):
    dead = f"redis://127.0.0.1:{_free_port()}/0"  # nothing listens there
    env = dict(
        os.environ, DJANGO_SETTINGS_MODULE="labeler.settings", LABELER_DATA_DIR=str(tmp_path),
        REDIS_URL=dead, CELERY_BROKER_URL=dead, CELERY_RESULT_BACKEND=dead,
    )
    env.pop("DATABASE_URL", None)
    started = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=REPO, env=env, capture_output=True, text=True,
        timeout=180,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["labeled"] == 3  # every label kept
    assert not result["guard"]  # no retrain counts as queued: the next label may retry
    assert result["delayed"] == 1  # the request waits, delayed, for the sweep (not lost)
    # Before, Celery retried the result store for ~20 s inside the request. Generous bound: this
    # checks that nothing waits on the dead broker, not how fast a save is.
    assert max(result["times"]) < 5, result["times"]
    assert time.monotonic() - started < 120
    # The refusal is logged as one line that says what happens next, not as a traceback.
    assert "is Redis running? The work waits" in out.stderr, out.stderr[-2000:]
    assert "Traceback" not in out.stderr, out.stderr[-2000:]
