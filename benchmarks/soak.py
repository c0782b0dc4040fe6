#!/usr/bin/env python
"""Soak: many annotators label for minutes while imports, embedding and retrains run, and the
worker and Redis fail on the way. Nothing acknowledged may be lost, nothing embedded twice.

Starts `make run`'s stack (scripts/run.sh's parts under scripts/supervise.py: Redis, Celery
worker and beat, gunicorn with make run's process counts) on loopback in a throw-away data
folder, imports --items images, then runs --annotators HTTP clients (benchmarks/
next_item_latency.py's Client: next item, label, think) for --minutes. On the way a lead uploads
a zip of --zip-items images (at 10 % of the run), the worker is SIGKILLed (at 33 %) and Redis is
restarted (SIGTERM, at 66 %; the supervisor restarts both). Then it waits (up to
--drain-minutes) for the embedding and the last retrain, and prints one JSON object: requests,
errors, p50/p95, labels acknowledged vs stored (must be equal), and the embedding check
(items_embedded_twice and items_not_embedded must be 0).

    python benchmarks/soak.py [--minutes 10] [--annotators 50] [--items 3000] [--zip-items 500]

On a small machine, fewer images with --overlap k (each image labeled by k annotators) keep the
annotators busy without hours of embedding.
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import re
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from next_item_latency import Client, free_port, login_session  # noqa: E402


def log(msg: str) -> None:
    print(f"[soak] {msg}", file=sys.stderr, flush=True)


class Annotator(Client):
    """next_item_latency's annotator, keeping a tally of the answers (method, status)."""

    def __init__(self, *args) -> None:
        super().__init__(*args)
        self.answers: Counter[str] = Counter()

    def request(self, conn, method, path, body=None):
        try:
            status, data = super().request(conn, method, path, body)
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            # gunicorn closes a keep-alive connection idle for 2 s (longer than a think): a
            # browser then reconnects and sends again, and so does this annotator (the label API
            # is idempotent by client_id). Not an error of the server.
            conn.close()
            self.answers["reconnects"] += 1
            status, data = super().request(conn, method, path, body)
        self.answers[f"{method} {status}"] += 1
        if status >= 400 and len(self.answers) < 20:
            self.answers[f"{method} {status} {data[:120]!r}"] += 1
        return status, data


def jpeg(i: int) -> bytes:
    """A small distinct JPEG (the importer skips duplicates by content)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(i)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


def setup(args) -> dict:
    """Database, project, the lead and annotators (with sessions), and the first images."""
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from labeler.items.importing import Importer
    from labeler.projects.models import Role
    from labeler.projects.services import create_project, set_member

    call_command("migrate", verbosity=0)
    User = get_user_model()
    project = create_project("Soak", [f"class{i}" for i in range(5)], retrain_every=10,
                             overlap=args.overlap)
    # No passwords (nothing logs in by form): hashing 50 of them costs a minute on a busy machine.
    lead = User.objects.create_user("lead", password=None)
    set_member(project, lead, Role.LEAD)
    sessions = []
    for i in range(args.annotators):
        user = User.objects.create_user(f"annotator{i}", password=None)
        set_member(project, user, Role.ANNOTATOR)
        sessions.append(login_session(user))
    t = time.monotonic()
    importer = Importer(project, user=lead)
    for i in range(args.items):
        importer.add(f"img{i}.jpg", jpeg(i))
    importer.finish()  # the embedding request waits for the worker (resume_work queues it)
    log(f"{args.items} images imported in {time.monotonic() - t:.0f}s")
    return {"project": project.pk, "labels": list(project.classes.values_list("pk", flat=True)),
            "sessions": sessions, "lead": login_session(lead)}


def start_stack(data: Path, redis_port: int, web_port: int, workers: int,
                env: dict[str, str]) -> subprocess.Popen:
    """The parts of scripts/run.sh under scripts/supervise.py (its output in data/stack.log)."""
    py = sys.executable
    redis = os.environ.get("LABELER_REDIS_SERVER", "redis-server")
    parts = [
        f"redis=exec {redis} --port {redis_port} --bind 127.0.0.1 --dir {data} --save 60 1"
        " --appendonly no --daemonize no",
        f"worker={py} manage.py resume_work; exec nice -n 10 {py} -m celery -A labeler"
        " worker -l info --concurrency 2 -Q web,gpu",
        f"beat=exec {py} -m celery -A labeler beat -l warning"
        f" --schedule {data / 'celerybeat-schedule'}",
        f"web=exec {py} -m gunicorn labeler.wsgi -b 127.0.0.1:{web_port} --workers {workers}"
        " --threads 1 --log-level warning",
    ]
    return subprocess.Popen(
        [py, "scripts/supervise.py", "--pid-dir", str(data / "run"), *parts], cwd=REPO,
        env=env, stdout=open(data / "stack.log", "w"), stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def upload_zip(port: int, project: int, session: str, first: int, n: int) -> int:
    """The lead uploads a zip of n new images through the project page, as a browser would."""
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.test.client import BOUNDARY, MULTIPART_CONTENT, encode_multipart

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for i in range(first, first + n):
            z.writestr(f"batch/img{i}.jpg", jpeg(i))
    body = encode_multipart(BOUNDARY, {"files": [
        SimpleUploadedFile("batch.zip", buf.getvalue(), "application/zip")]})
    token = secrets.token_hex(16)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    conn.request("POST", f"/projects/{project}/", body=body, headers={
        "Cookie": f"sessionid={session}; csrftoken={token}", "X-CSRFToken": token,
        "Content-Type": MULTIPART_CONTENT, "Host": "127.0.0.1"})
    response = conn.getresponse()
    page = response.read().decode("utf-8", "replace")
    match = re.search(r"(\d+) imported", page)
    log(f"zip upload: HTTP {response.status}, {match.group(0) if match else 'no report'}")
    return int(match.group(1)) if match else 0


def embed_rows_written(stack_log: Path) -> int:
    """Embeddings stored, counted from the worker's log: each chunk run logs how many were
    already stored when it began and its running total after every stored batch."""
    total, base, last = 0, None, None
    start = re.compile(r"embed project=\d+ backbone=\S+: (\d+) to embed, (\d+) already stored")
    progress = re.compile(r"embed project=\d+ backbone=\S+: (\d+)/\d+ \(")
    for line in stack_log.read_text(errors="replace").splitlines():
        if m := start.search(line):
            if base is not None:
                total += last - base
            base = last = int(m.group(2))
        elif (m := progress.search(line)) and base is not None:
            last = int(m.group(1))
    return total + (last - base if base is not None else 0)


def drain(project_id: int, deadline: float) -> bool:
    """Wait for the embedding to finish and a model on every label; True if it did in time."""
    from labeler.items.models import Item
    from labeler.projects.models import Project
    from labeler.training.models import Job, ModelVersion

    while time.monotonic() < deadline:
        p = Project.objects.get(pk=project_id)
        labeled = Item.objects.filter(project=p, annotation_count__gt=0).count()
        model = ModelVersion.objects.latest_ready(p)
        busy = Job.objects.filter(project=p, kind__in=["embed", "retrain"],
                                  status__in=Job.ACTIVE).exists()
        if not busy and model is not None and model.labels_used >= labeled:
            return True
        time.sleep(2)
    return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--annotators", type=int, default=50)
    parser.add_argument("--think-ms", type=float, default=3000.0,
                        help="pause after each label (an attentive annotator: ~3 s an image)")
    parser.add_argument("--items", type=int, default=3000, help="images imported first")
    parser.add_argument("--zip-items", type=int, default=500, help="images in the zip upload")
    parser.add_argument("--overlap", type=int, default=1,
                        help="annotators per item (more labels from fewer images to embed)")
    parser.add_argument("--drain-minutes", type=float, default=15.0,
                        help="how long to wait for embedding and the last retrain afterwards")
    parser.add_argument("--web-workers", type=int, default=2 * (os.cpu_count() or 1),
                        help="gunicorn processes (make run's default: 2 per core)")
    args = parser.parse_args()
    # Stopped from outside: still stop the stack (the finally below).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))

    data = Path(tempfile.mkdtemp(prefix="labeler-soak-"))
    redis_port, web_port = free_port(), free_port()
    os.environ.update(
        DJANGO_SETTINGS_MODULE="labeler.settings", LABELER_DATA_DIR=str(data),
        REDIS_URL=f"redis://127.0.0.1:{redis_port}/0", PYTHONUNBUFFERED="1",
    )
    os.environ.pop("DATABASE_URL", None)
    sys.path.insert(0, str(REPO))
    log(f"data in {data}")
    stack_env = dict(os.environ)
    # Requests made here (the first import) wait in a queue nobody reads: the worker's start
    # (resume_work, as in make run) queues that work for real.
    os.environ["CELERY_BROKER_URL"] = "memory://"
    config = setup(args)
    stack = start_stack(data, redis_port, web_port, args.web_workers, stack_env)
    events: dict[str, float] = {}
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and "ready" not in (data / "stack.log").read_text():
            time.sleep(0.5)
        log("stack up; annotators start")
        started = time.monotonic()
        seconds = args.minutes * 60
        clients = [Annotator(web_port, config["project"], config["labels"], s, started + seconds,
                          args.think_ms / 1000, None) for s in config["sessions"]]
        for c in clients:
            c.start()
        zip_result: list[int] = []

        def at(share: float) -> None:
            time.sleep(max(0.0, started + share * seconds - time.monotonic()))

        at(0.10)
        uploader = threading.Thread(target=lambda: zip_result.append(upload_zip(
            web_port, config["project"], config["lead"], args.items, args.zip_items)))
        uploader.start()
        events["zip_upload_s"] = time.monotonic() - started
        at(0.33)
        os.kill(int((data / "run" / "worker.pid").read_text()), signal.SIGKILL)
        events["worker_killed_s"] = time.monotonic() - started
        log("worker SIGKILLed")
        at(0.66)
        os.kill(int((data / "run" / "redis.pid").read_text()), signal.SIGTERM)
        events["redis_restarted_s"] = time.monotonic() - started
        log("redis restarted")
        for c in clients:
            c.join()
        uploader.join()
        log("annotators done; draining background work")
        drained_at = time.monotonic()
        drained = drain(config["project"], drained_at + args.drain_minutes * 60)
        drain_seconds = time.monotonic() - drained_at
    finally:
        stack.send_signal(signal.SIGTERM)
        stack.wait(60)

    from labeler.annotations.models import Annotation
    from labeler.items.models import Item
    from labeler.training.stores import store_for

    acked = [cid for c in clients for cid in c.saved]
    stored = set()
    for s in range(0, len(acked), 500):
        stored.update(str(x) for x in Annotation.objects.filter(
            client_id__in=acked[s:s + 500]).values_list("client_id", flat=True))
    latencies = sorted(x for c in clients for x in c.latencies)
    q = statistics.quantiles(latencies, n=100, method="inclusive") if len(latencies) > 1 else [0] * 99
    project_items = Item.objects.filter(project_id=config["project"])
    wanted = set(project_items.filter(embed_error="").values_list("pk", flat=True))
    from labeler.projects.models import Project

    project = Project.objects.get(pk=config["project"])
    embedded = set(store_for(project.pk, project.backbone).ids().tolist())
    written = embed_rows_written(data / "stack.log")
    output = (data / "stack.log").read_text(errors="replace")
    print(json.dumps({
        "minutes": args.minutes,
        "annotators": args.annotators,
        "overlap": args.overlap,
        "requests": len(latencies),
        "errors": sum(c.errors for c in clients),
        "answers": dict(sum((c.answers for c in clients), Counter())),
        "p50_ms": round(q[49], 1),
        "p95_ms": round(q[94], 1),
        "labels_acknowledged": len(acked),
        "labels_stored": len(stored),
        "annotations_in_database": Annotation.objects.filter(
            item__project_id=config["project"]).count(),
        "items": project_items.count(),
        "zip_imported": zip_result[0] if zip_result else None,
        "items_embedded": len(embedded & wanted),
        "items_not_embedded": len(wanted - embedded),
        "embeddings_written": written,
        "items_embedded_twice": max(0, written - len(embedded)),
        "model_versions": project.model_versions.filter(status="ready").count(),
        "drained": drained,
        "drain_seconds": round(drain_seconds, 1),
        "worker_restarts": output.count("restarted worker"),
        "redis_restarts": output.count("restarted redis"),
        **{k: round(v, 1) for k, v in events.items()},
        "data_dir": str(data),
    }))


if __name__ == "__main__":
    main()
