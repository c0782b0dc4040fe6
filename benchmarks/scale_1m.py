#!/usr/bin/env python
"""A project of 1,000,000 items on PostgreSQL: labeling, retraining and the lead's pages.

Fills a project with --items items (COPY; synthetic clustered embeddings in the real store;
--labels labels by a lead), starts gunicorn, a Celery worker (Redis broker) and measures, through
HTTP where a user would:

  retrain     a retrain requested as the product does (labeler.training.services.request_retrain:
              a retrain job on the gpu queue, its results ingested on the web queue) until the
              new version is ready and its ranking and suggestions are served by the next-item
              API (target < 60 s);
  map         the projection task, then the map data request (the page's one request);
  next_item   p50/p95 of get-next + save-label with --annotators annotators (the client of
              benchmarks/next_item_latency.py; target p95 < 25 ms), once no retrain runs and no
              pool refresh is being written (the retrains its labels trigger run meanwhile);
              next_item_no_retrain: with retrains off (as the 100k figure was measured);
              next_item_during_refresh: while the first version's million suggestions are
              being written (the worst case);
  pages       dashboard, label errors, item table, map data (target < 1 s each);
  export      the labels CSV (and COCO JSON) streamed: time, bytes, the web process's peak RSS;
  memory      peak RSS (VmHWM) of every gunicorn and Celery process.

    nice -n 5 .venv/bin/python benchmarks/scale_1m.py --items 1000000
    .venv/bin/python benchmarks/scale_1m.py --items 100000 --database-url postgres://...

Without --database-url a private PostgreSQL is started (scripts/services.sh) and removed after.
--data-dir with --database-url keeps the filled project for the next run. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from next_item_latency import Client, free_port, login_session, wait_for_port  # noqa: E402
from procs import peak_rss_mb, renice_tree, services  # noqa: E402
from scale_fill import fill, log  # noqa: E402


class Http:
    """The lead's requests, logged in by session cookie."""

    def __init__(self, port: int, session: str) -> None:
        self.port, self.session = port, session

    def get(self, path: str, sink=None) -> tuple[int, int, float]:
        """(status, bytes, seconds) of one GET (a fresh loopback connection: gunicorn closes
        idle ones); the body is read in 64 KiB pieces."""
        started = time.perf_counter()
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)
        conn.request("GET", path, headers={"Cookie": f"sessionid={self.session}",
                                           "Host": "127.0.0.1"})
        response = conn.getresponse()
        size = 0
        while piece := response.read(65536):
            size += len(piece)
            if sink is not None:
                sink(piece)
        conn.close()
        return response.status, size, time.perf_counter() - started


def timed_pages(http_: Http, pages: dict[str, str], repeat: int = 3) -> dict:
    out = {}
    for name, path in pages.items():
        times, status, size = [], 0, 0
        for _ in range(repeat):
            status, size, seconds = http_.get(path)
            times.append(seconds * 1000)
        out[name] = {"status": status, "median_ms": round(statistics.median(times), 1),
                     "max_ms": round(max(times), 1), "bytes": size}
    return out


def measure_retrain(project_id: int, http_: Http) -> dict:
    """Request a retrain the product's way; wait for the version and its suggestions served."""
    from labeler.training.actions import Kind, active_job
    from labeler.training.models import Job, ModelVersion
    from labeler.training.services import request_retrain

    before = ModelVersion.objects.filter(project_id=project_id).count()
    started = time.monotonic()
    if not request_retrain(project_id):
        raise SystemExit("the retrain request was refused (guard or broker)")
    job = active_job(project_id, Kind.RETRAIN)
    while Job.objects.filter(pk=job.pk, status__in=Job.ACTIVE).exists():
        if time.monotonic() - started > 3600:
            raise SystemExit("no version after an hour")
        time.sleep(0.2)
    ready = time.monotonic() - started
    v = ModelVersion.objects.filter(project_id=project_id).order_by("-number").first()
    if v is None or ModelVersion.objects.filter(project_id=project_id).count() <= before:
        raise SystemExit(f"retrain failed: {Job.objects.get(pk=job.pk).message}")
    body: list[bytes] = []
    # Five items: an audit item (10 %) may be one whose suggestion the pool refresh writes later.
    status, _, _ = http_.get(f"/api/projects/{project_id}/next/?n=5", body.append)
    served = json.loads(b"".join(body))["items"]
    served_s = time.monotonic() - started
    return {
        "path": "labeler.training.services.request_retrain -> retrain job (gpu queue) -> web ingest",
        "labels": v.labels_used, "version": v.number, "job": job.pk,
        "seconds_to_ready": round(ready, 1),
        "seconds_to_served": round(served_s, 1),
        "suggestion_served": any(item["suggestion"] for item in served),
        "worker_compute_s": (v.metrics or {}).get("seconds"),
        "web_ingest_s": (v.metrics or {}).get("ingest_seconds"),
        "pool_refresh": bool(v.metrics.get("pool_refresh")), "_started": started,
    }


def wait_pool_refresh(project_id: int, retrain: dict) -> None:
    """The rest of the pool's suggestions, written after the version is served: wait for them."""
    from labeler.training.models import ModelVersion

    started = retrain.pop("_started")
    refreshing = ModelVersion.objects.filter(project_id=project_id, metrics__pool_refresh=True)
    while True:  # a newer version's refresh replaces an older one's: the newest one counts
        v = refreshing.order_by("-number").first()
        if v is None or "suggestions_seconds" in v.metrics or time.monotonic() - started > 1800:
            break
        time.sleep(0.5)
    retrain["seconds_to_all_suggestions"] = round(time.monotonic() - started, 1)
    retrain["pool_refreshed_by"] = v.number if v is not None else None
    retrain["web_backfill_s"] = v.metrics.get("suggestions_seconds") if v is not None else None


def measure_map(project_id: int, http_: Http) -> dict:
    """The map data request: the first (queues the projection), then when the map is ready."""
    path = f"/api/projects/{project_id}/map/"
    body: list[bytes] = []
    _, size, first = http_.get(path, body.append)
    started = time.monotonic()
    while json.loads(b"".join(body)).get("status") != "ready":
        if time.monotonic() - started > 3600:
            raise SystemExit("no map after an hour")
        time.sleep(2)
        body = []
        http_.get(path, body.append)
    computed = time.monotonic() - started
    payload = json.loads(b"".join(body))
    return {"first_request_ms": round(first * 1000, 1), "projection_s": round(computed, 1),
            "points": payload.get("n"), "of_items": payload.get("items")}


def without_retrains(project_id: int, measure):
    """Run ``measure`` with the project's retrains off (its cadence raised for the while)."""
    from labeler.projects.models import Project

    every = Project.objects.get(pk=project_id).retrain_every
    Project.objects.filter(pk=project_id).update(retrain_every=10**9)
    try:
        return measure()
    finally:
        Project.objects.filter(pk=project_id).update(retrain_every=every)


def measure_latency(port: int, setup: dict, sessions: list[str], seconds: float,
                    think: float) -> dict:
    warm_until = time.monotonic() + 3
    warm = [Client(port, setup["project"], setup["labels"], s, warm_until, 0.05, None)
            for s in sessions[:8]]
    for c in warm:
        c.start()
    for c in warm:
        c.join()
    stop_at = time.monotonic() + seconds
    clients = [Client(port, setup["project"], setup["labels"], s, stop_at, think, None)
               for s in sessions]
    for c in clients:
        c.start()
    for c in clients:
        c.join()
    lat = sorted(x for c in clients for x in c.latencies)
    q = statistics.quantiles(lat, n=100, method="inclusive")
    handed: dict[int, int] = {}
    for c in clients:
        for item in set(c.handed):
            handed[item] = handed.get(item, 0) + 1
    return {"p50_ms": round(q[49], 2), "p95_ms": round(q[94], 2), "p99_ms": round(q[98], 2),
            "requests": len(lat), "errors": sum(c.errors for c in clients),
            "duplicates": sum(1 for n in handed.values() if n > 1),
            "annotators": len(clients)}


def measure_export(http_: Http, server_pid: int, project_id: int, fmt: str, query: str = ""
                   ) -> dict:
    before = peak_rss_mb(server_pid)
    status, size, seconds = http_.get(f"/projects/{project_id}/export/{fmt}/{query}")
    after = peak_rss_mb(server_pid)
    growth = max((after[p] - before.get(p, 0.0) for p in after), default=0.0)
    return {"status": status, "seconds": round(seconds, 1), "mb": round(size / 2**20, 1),
            "web_peak_rss_mb": round(max(after.values()), 1),
            "web_peak_rss_growth_mb": round(growth, 1)}


def loaded(loads: dict, name: str, measure):
    """Run ``measure()``, noting the machine's 1-minute load average before and after (the
    figures of a shared machine mean little without it)."""
    before = os.getloadavg()[0]
    out = measure()
    loads[name] = [round(before, 2), round(os.getloadavg()[0], 2)]
    return out


def last_retrain_job(project_id: int) -> int:
    """The id of the project's latest retrain job (0: none): retrains after it are counted."""
    from labeler.training.actions import Kind
    from labeler.training.models import Job

    last = Job.objects.filter(project_id=project_id, kind=Kind.RETRAIN).order_by("-pk").first()
    return last.pk if last else 0


def retrains_since(project_id: int, job_id: int) -> int:
    """Retrains that the annotators' labels triggered after job ``job_id``."""
    from labeler.training.actions import Kind
    from labeler.training.models import Job

    return Job.objects.filter(project_id=project_id, kind=Kind.RETRAIN, pk__gt=job_id).count()


def settle(project_id: int, limit: float = 600.0) -> float:
    """Wait until no retrain runs and the last version's pool refresh is done: seconds waited
    (the pages are then measured alone, not against a million-row refresh)."""
    from labeler.training.actions import Kind, active_job
    from labeler.training.models import ModelVersion

    started = time.monotonic()
    while time.monotonic() - started < limit:
        v = ModelVersion.objects.filter(project_id=project_id).order_by("-number").first()
        busy = active_job(project_id, Kind.RETRAIN) is not None or (
            v is not None and v.metrics.get("pool_refresh")
            and "suggestions_seconds" not in v.metrics)
        if not busy:
            break
        time.sleep(1)
    return round(time.monotonic() - started, 1)




def start_servers(args, tmp: str) -> tuple[subprocess.Popen, subprocess.Popen, subprocess.Popen,
                                           int]:
    redis_port = free_port()
    redis = subprocess.Popen([services("redis_binary"), "--port", str(redis_port), "--bind",
                              "127.0.0.1", "--dir", tmp, "--save", "", "--appendonly", "no"],
                             stdout=subprocess.DEVNULL)
    wait_for_port(redis_port)
    os.environ["REDIS_URL"] = os.environ["CELERY_BROKER_URL"] = \
        os.environ["CELERY_RESULT_BACKEND"] = f"redis://127.0.0.1:{redis_port}/0"
    env = dict(os.environ, LABELER_BACKBONE_CHECK_AUTO="0")
    worker = subprocess.Popen(
        ["nice", "-n", str(args.worker_nice), sys.executable, "-m", "celery", "-A", "labeler",
         "worker", "-l", "warning", "-c", "2", "-Q", "web,gpu", "--without-gossip",
         "--without-mingle"],
        cwd=REPO, env=env, stdout=sys.stderr)
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "labeler.wsgi", "-b", f"127.0.0.1:{port}",
         "--workers", str(args.workers), "--threads", str(args.threads), "--log-level", "warning",
         "--timeout", "600"], cwd=REPO, env=env, stdout=sys.stderr)
    wait_for_port(port)
    return redis, worker, server, port


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--labels", type=int, default=1000)
    parser.add_argument("--annotators", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--think-ms", type=float, default=500.0)
    parser.add_argument("--dim", type=int, default=1280)
    parser.add_argument("--workers", type=int, default=2 * (os.cpu_count() or 1))
    parser.add_argument("--threads", type=int, default=1,
                        help="gunicorn threads per process (make run's default 1: the sync worker)")
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--data-dir", default=None)
    # `make run` gives the worker +10; on a machine shared with other jobs that starves the
    # retrain being timed, so by default it runs at the web processes' priority.
    parser.add_argument("--worker-nice", type=int, default=0, help="worker's extra niceness")
    parser.add_argument("--skip-map", action="store_true", help="no projection (saves minutes)")
    parser.add_argument("--skip-retrain", action="store_true",
                        help="no timed retrain (a reused project has more than --labels labels)")
    args = parser.parse_args()

    pg_dir = None
    if not args.database_url:
        args.database_url, pg_dir = services("start_postgres").split("|")
    tmp = args.data_dir or tempfile.mkdtemp(prefix="labeler-scale-")
    os.makedirs(tmp, exist_ok=True)
    os.environ.update(LABELER_DATA_DIR=tmp, DATABASE_URL=args.database_url,
                      DJANGO_SETTINGS_MODULE="labeler.settings", CELERY_BROKER_URL="memory://")
    procs: list[subprocess.Popen] = []
    try:
        import django

        django.setup()
        ready = Path(tmp) / "filled.json"
        t = time.monotonic()
        if ready.exists():
            setup = json.loads(ready.read_text())
        else:
            setup = fill(args.items, args.annotators, args.labels, args.dim)
            ready.write_text(json.dumps(setup))
        fill_s = time.monotonic() - t
        from django.contrib.auth import get_user_model

        users = get_user_model().objects.in_bulk([setup["lead"], *setup["annotators"]])
        lead = login_session(users[setup["lead"]])
        sessions = [login_session(users[u]) for u in setup["annotators"][: args.annotators]]
        # Jobs queued by an earlier run died with that run's Redis: end them.
        from labeler.training.actions import do_fail_job
        from labeler.training.models import Job

        for job in Job.objects.filter(project_id=setup["project"], status__in=Job.ACTIVE):
            do_fail_job(job, "scale_1m: its broker is gone")
        redis, worker, server, port = start_servers(args, tmp)
        procs = [server, worker, redis]
        http_ = Http(port, lead)
        pid = setup["project"]
        result: dict = {"items": args.items, "labels": args.labels, "dim": args.dim,
                        "fill_s": round(fill_s, 1), "database": "postgresql",
                        "nice": os.nice(0)}
        loads: dict = {}
        latency = lambda: measure_latency(  # noqa: E731
            port, setup, sessions, args.seconds, args.think_ms / 1000)
        if args.skip_retrain:  # a reused project: the latency and pages alone
            result["retrain"] = {}
        else:
            log("retrain")
            result["retrain"] = loaded(loads, "retrain", lambda: measure_retrain(pid, http_))
            # From here the worker runs as `make run` starts it (+10), so that the retrains the
            # annotators trigger yield the cores to the web processes.
            renice_tree(worker.pid, max(args.worker_nice, 10))
            if result["retrain"]["pool_refresh"]:  # the worst case: next to a 1M-row rewrite
                log("next-item latency during the pool refresh")
                result["next_item_during_refresh"] = loaded(loads, "next_item_refresh", latency)
            wait_pool_refresh(pid, result["retrain"])
        if not args.skip_map:
            log("map")
            result["map"] = loaded(loads, "map", lambda: measure_map(pid, http_))
        renice_tree(worker.pid, max(args.worker_nice, 10))  # also with --skip-retrain
        result["settle_s"] = {"before_latency": settle(pid)}
        mark = last_retrain_job(pid)
        log("next-item latency")
        result["next_item"] = loaded(loads, "next_item", latency)
        result["next_item"]["retrains_meanwhile"] = retrains_since(pid, mark)
        result["settle_s"]["before_quiet"] = settle(pid)
        log("next-item latency with no retrain (as the 100k figure was measured)")
        result["next_item_no_retrain"] = loaded(loads, "next_item_no_retrain",
                                                lambda: without_retrains(pid, latency))
        result["settle_s"]["before_pages"] = settle(pid)
        log("pages")
        pages = {
            "dashboard": f"/projects/{pid}/dashboard/",
            "label_errors": f"/projects/{pid}/label-errors/",
            "item_table": f"/projects/{pid}/items/",
            "item_table_filtered": f"/projects/{pid}/items/?sort=confidence&label=none",
        }
        if not args.skip_map:  # without a map the request would queue the projection
            pages["map_data"] = f"/api/projects/{pid}/map/"
        result["pages"] = loaded(loads, "pages", lambda: timed_pages(http_, pages))
        log("exports")
        result["export_csv"] = loaded(loads, "export_csv", lambda: measure_export(
            http_, server.pid, pid, "csv"))
        result["export_coco_labelled"] = loaded(loads, "export_coco", lambda: measure_export(
            http_, server.pid, pid, "coco", "?unlabeled=0"))
        result["load_before_after"] = loads
        web, work = peak_rss_mb(server.pid), peak_rss_mb(worker.pid)
        result["peak_rss_mb"] = {"web_max": round(max(web.values()), 1),
                                 "worker_max": round(max(work.values()), 1)}
        print(json.dumps(result, indent=1))
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
        if pg_dir:
            services(f"stop_postgres {pg_dir}")


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the servers are stopped
    threading.excepthook = lambda a: log(f"thread failed: {a.exc_value!r}")
    main()
