#!/usr/bin/env python
"""Latency of label-submit + get-next through the real HTTP stack (gunicorn + Django + database).

Fills a throw-away database with --items items (embeddings in the real store and a model
trained by the real retrain code), starts gunicorn on loopback, and drives it from
--annotators concurrent clients, each pausing --think-ms after a label (default 500 ms, a very
fast annotator; --think-ms 0 measures saturation instead). Prints one JSON object: p50_ms, p95_ms, p99_ms, requests, duplicates (items
handed to two annotators) and lost (labels answered 2xx but missing from the database).

    python benchmarks/next_item_latency.py [--items 100000] [--annotators 20] [--seconds 20]

--sets N gives the project N label sets (the second one multi-label, with 3 tags; the others
single-choice, 5 classes): each submit then answers every set at once (one visit, N rows).

--data-dir DIR keeps the filled database there and reuses it on the next run (quicker when
comparing changes; labels from earlier runs stay, which a 100k pool hardly notices).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def log(msg: str) -> None:
    print(f"[next_item_latency] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = 60, interval: float = 0.05) -> None:
    """Until a server listens on the loopback port (or the timeout passes)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(interval)


WORKER_NICE = os.environ.get("LABELER_WORKER_NICE", "10")
RETRAIN_LOOP = """
import sys, django
django.setup()
from labeler.projects.models import Project
from labeler.training.retrain import retrain_now
project = Project.objects.get(pk=int(sys.argv[1]))
while True:
    retrain_now(project)
"""


def process_tree_cpu(pid: int) -> float:
    """CPU seconds used so far by `pid` and its children (Linux /proc)."""
    total = 0.0
    pids = [pid]
    try:
        pids += [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        pass
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def fill(n_items: int, n_annotators: int, dim: int, n_sets: int = 1) -> dict:
    """Create the project, items, embeddings, some labels and a real model version."""
    import django

    django.setup()
    import numpy as np
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from labeler.annotations.services import save_annotation
    from labeler.items.models import Item
    from labeler.projects.models import Role
    from labeler.projects.services import create_project, set_member
    from labeler.training.retrain import retrain_now
    from labeler.training.stores import store_for

    call_command("migrate", verbosity=0)
    User = get_user_model()
    classes = [f"class{i}" for i in range(10)]
    project = create_project("Latency", classes, audit_share=0.1)
    rng = np.random.default_rng(0)
    t = time.monotonic()
    batch = []
    for i in range(n_items):
        digest = f"{i:064x}"
        batch.append(Item(project=project, image=f"items/{digest}.jpg", original_name=f"{i}.jpg",
                          sha256=digest, width=400, height=533, random_key=rng.random()))
        if len(batch) == 5000:
            Item.objects.bulk_create(batch)
            batch = []
    if batch:
        Item.objects.bulk_create(batch)
    log(f"{n_items} items in {time.monotonic() - t:.1f}s")
    ids = np.array(Item.objects.filter(project=project).order_by("pk").values_list("pk", flat=True))
    # Embeddings: clustered vectors, one cluster per class, so the model has something to learn.
    centers = rng.normal(size=(len(classes), dim)).astype(np.float32)
    truth = rng.integers(0, len(classes), size=len(ids))
    store = store_for(project.pk, project.backbone)
    for s in range(0, len(ids), 20000):
        X = centers[truth[s:s + 20000]] + rng.normal(scale=2.0, size=(len(ids[s:s + 20000]), dim))
        store.append(ids[s:s + 20000], X.astype(np.float32))
    store.compact()
    lead = User.objects.create_user("lead", password=secrets.token_hex(8))
    set_member(project, lead, Role.LEAD)
    label_ids = list(project.classes.values_list("pk", flat=True))
    items = {i.pk: i for i in Item.objects.filter(pk__in=ids[:200].tolist())}
    for k, pk in enumerate(ids[:200].tolist()):
        save_annotation(items[pk], project.classes.get(pk=label_ids[truth[k]]), lead,
                        trigger_retrain=False)
    t = time.monotonic()
    result = retrain_now(project)
    log(f"model v{result['version']} trained and pool ranked in {time.monotonic() - t:.1f}s")
    sessions = []
    for i in range(n_annotators):
        user = User.objects.create_user(f"annotator{i}", password=secrets.token_hex(8))
        set_member(project, user, Role.ANNOTATOR)
        sessions.append(login_session(user))
    sets = []
    if n_sets > 1:
        from labeler.projects.label_sets import add_set, primary_set

        sets.append({"id": primary_set(project).pk, "kind": "single", "classes": label_ids})
        for k in range(1, n_sets):
            kind = "multi" if k == 1 else "single"
            names = [f"tag{j}" for j in range(3)] if kind == "multi" else [
                f"s{k}c{j}" for j in range(5)]
            extra = add_set(project, f"set{k}", kind, names)
            sets.append({"id": extra.pk, "kind": kind,
                         "classes": list(extra.classes.values_list("pk", flat=True))})
    return {"project": project.pk, "labels": label_ids, "sessions": sessions, "sets": sets}


def login_session(user) -> str:
    """A session key logged in as `user` (made in the database: no login round trip)."""
    from django.contrib.sessions.backends.db import SessionStore

    s = SessionStore()
    s["_auth_user_id"] = str(user.pk)
    s["_auth_user_backend"] = "django.contrib.auth.backends.ModelBackend"
    s["_auth_user_hash"] = user.get_session_auth_hash()
    s.create()
    return s.session_key


class Client(threading.Thread):
    """One annotator: get next, label it, repeat — over one keep-alive connection."""

    def __init__(self, port, project, labels, session, stop_at, think, out, sets=()):
        super().__init__(daemon=True)
        self.sets = list(sets)
        self.port, self.project, self.labels = port, project, labels
        self.stop_at, self.think, self.out = stop_at, think, out
        token = secrets.token_hex(16)
        self.headers = {
            "Cookie": f"sessionid={session}; csrftoken={token}",
            "X-CSRFToken": token,
            "Content-Type": "application/json",
            "Host": "127.0.0.1",
        }
        self.latencies: list[float] = []
        self.by_kind: dict[str, list[float]] = {"next": [], "save": []}
        self.trace: list[tuple[float, float, str]] = []
        self.handed: list[int] = []
        self.saved: list[str] = []
        self.errors = 0

    def request(self, conn, method, path, body=None):
        t = self.started = time.perf_counter()
        conn.request(method, path, body=body, headers=self.headers)
        response = conn.getresponse()
        data = response.read()
        ms = (time.perf_counter() - t) * 1000
        self.latencies.append(ms)
        self.trace.append((t, ms, method))
        self.by_kind["next" if method == "GET" else "save"].append(ms)
        return response.status, data

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        import random

        rng = random.Random()
        # Annotators don't all press a key in the same millisecond: each starts at a random
        # point of its first pause.
        time.sleep(rng.uniform(0, self.think))
        while time.monotonic() < self.stop_at:
            try:
                status, data = self.request(conn, "GET", f"/api/projects/{self.project}/next/?n=1")
                if status != 200:
                    self.errors += 1
                    continue
                items = json.loads(data)["items"]
                if not items:
                    break
                item = items[0]["id"]
                self.handed.append(item)
                cid = str(uuid.uuid4())
                body = json.dumps({"item": item, "seconds": 1.0, "client_id": cid, **(
                    {"labels": [
                        {"set": s["id"], "tags": rng.sample(s["classes"], rng.randint(0, 2))}
                        if s["kind"] == "multi" else
                        {"set": s["id"], "label": rng.choice(s["classes"])}
                        for s in self.sets]}
                    if self.sets else {"label": rng.choice(self.labels)})})
                status, _ = self.request(conn, "POST", f"/api/projects/{self.project}/annotations/", body)
                if status in (200, 201):
                    self.saved.append(cid)
                else:
                    self.errors += 1
                if self.think:
                    time.sleep(self.think)
            except (OSError, http.client.HTTPException):
                # A request that failed (timed out) counts at the time it took, not as missing.
                ms = (time.perf_counter() - self.started) * 1000
                self.latencies.append(ms)
                self.trace.append((self.started, ms, "ERR"))
                self.errors += 1
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--annotators", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=20.0, help="how long the clients run")
    # A fast annotator labels at most about two images a second; 0 measures saturation instead.
    parser.add_argument("--think-ms", type=float, default=500.0, help="pause after each label")
    parser.add_argument("--dim", type=int, default=1280, help="embedding size")
    # The defaults are those of `make run` (scripts/run.sh).
    parser.add_argument("--workers", type=int, default=2 * (os.cpu_count() or 1),
                        help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=1, help="threads per gunicorn worker (as make run)")
    parser.add_argument("--database-url", default=None, help="default: SQLite in a temp folder")
    parser.add_argument("--retrain", action="store_true",
                        help="retrain the model over and over (real code, another process) while "
                             "the clients label, as the Celery worker does on a busy project")
    parser.add_argument("--data-dir", default=None, help="keep (and reuse) the filled data here")
    parser.add_argument("--sets", type=int, default=1, help="label sets answered per submit")
    args = parser.parse_args()

    tmp = args.data_dir or tempfile.mkdtemp(prefix="labeler-latency-")
    os.makedirs(tmp, exist_ok=True)
    os.environ["LABELER_DATA_DIR"] = tmp
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "labeler.settings")
    # Retrains are requested every 10 labels as in the product, into an in-process queue that
    # nothing consumes: the guard then holds further requests, as while a real retrain runs.
    os.environ["CELERY_BROKER_URL"] = "memory://"
    if args.database_url:
        os.environ["DATABASE_URL"] = args.database_url
    sys.path.insert(0, str(REPO))
    t = time.monotonic()
    ready = Path(tmp) / "filled.json"
    if ready.exists():
        import django

        django.setup()
        setup = json.loads(ready.read_text())
        log(f"reusing the database in {tmp}")
    else:
        setup = fill(args.items, args.annotators, args.dim, args.sets)
        ready.write_text(json.dumps(setup))
        log(f"filled in {time.monotonic() - t:.1f}s; starting gunicorn")
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "labeler.wsgi", "-b", f"127.0.0.1:{port}",
         "--workers", str(args.workers), "--threads", str(args.threads), "--log-level", "warning"],
        cwd=REPO, env=dict(os.environ),
    )
    try:
        wait_for_port(port)
        # Warm up every worker process (imports, connections) before measuring.
        # Warm up every worker process and thread (imports, connections, caches): as many
        # concurrent connections as the server has threads, for 3 seconds.
        warm_until = time.monotonic() + 3
        warm = [
            Client(port, setup["project"], setup["labels"], s, warm_until, 0.05, None)
            for s in setup["sessions"][: args.workers * args.threads]
        ]
        for c in warm:
            c.start()
        for c in warm:
            c.join()
        client_cpu, server_cpu = time.process_time(), process_tree_cpu(server.pid)
        retrainer = None
        if args.retrain:
            retrainer = subprocess.Popen(
                # At the priority `make run` gives the Celery worker.
                ["nice", "-n", WORKER_NICE, sys.executable, "-c", RETRAIN_LOOP,
                 str(setup["project"])],
                cwd=REPO, env=dict(os.environ),
            )
        stop_at = time.monotonic() + args.seconds
        clients = [
            Client(port, setup["project"], setup["labels"], s, stop_at, args.think_ms / 1000, None,
                   setup.get("sets", ()))
            for s in setup["sessions"][: args.annotators]
        ]
        for c in clients:
            c.start()
        for c in clients:
            c.join()
        client_cpu = time.process_time() - client_cpu
        if retrainer is not None:
            retrainer.terminate()
            retrainer.wait(30)
        server_cpu = process_tree_cpu(server.pid) - server_cpu
    finally:
        server.terminate()
        server.wait(20)

    from labeler.annotations.models import Annotation

    latencies = sorted(x for c in clients for x in c.latencies)
    handed: dict[int, int] = {}
    for c in clients:
        for item in set(c.handed):
            handed[item] = handed.get(item, 0) + 1
    saved = [cid for c in clients for cid in c.saved]
    stored = set()
    for s in range(0, len(saved), 500):
        stored.update(str(x) for x in Annotation.objects.filter(
            client_id__in=saved[s:s + 500]).values_list("client_id", flat=True))
    q = statistics.quantiles(latencies, n=100, method="inclusive") if len(latencies) > 1 else [0] * 99
    if os.environ.get("LATENCY_TRACE"):
        Path(os.environ["LATENCY_TRACE"]).write_text(json.dumps(
            sorted(x for c in clients for x in c.trace)))

    def p95(kind: str) -> float:
        xs = [x for c in clients for x in c.by_kind[kind]]
        return round(statistics.quantiles(xs, n=100, method="inclusive")[94], 2) if len(xs) > 1 else 0

    print(json.dumps({
        "p50_ms": round(q[49], 2),
        "p95_ms": round(q[94], 2),
        "p99_ms": round(q[98], 2),
        "p95_next_ms": p95("next"),
        "p95_save_ms": p95("save"),
        "requests": len(latencies),
        "requests_per_s": round(len(latencies) / args.seconds, 1),
        "labels_saved": len(saved),
        "duplicates": sum(1 for n in handed.values() if n > 1),
        "lost": len(set(saved) - stored),
        "errors": sum(c.errors for c in clients),
        # CPU per request: the server's (all gunicorn processes) and the load generator's, which
        # shares the same cores.
        "server_cpu_ms_per_request": round(1000 * server_cpu / max(1, len(latencies)), 2),
        "client_cpu_ms_per_request": round(1000 * client_cpu / max(1, len(latencies)), 2),
        "items": args.items,
        "annotators": args.annotators,
        "database": "postgresql" if args.database_url else "sqlite",
        "retraining": bool(args.retrain),
        "label_sets": max(1, len(setup.get("sets", ()))),
    }))


if __name__ == "__main__":
    main()
