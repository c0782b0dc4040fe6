#!/usr/bin/env python
"""First load of the settings page on a fresh web process (gunicorn + Django, as `make run`).

Starts gunicorn with one worker on a throw-away SQLite database holding one project, and times,
as the project's lead: the settings page asked the moment the port opens (``cold_s``: includes
the worker's own start, Django set-up and app imports), and, on another fresh server whose worker
has answered one trivial request (/favicon.ico), the settings page's first load in that process
(``first_load_s``: every import and template the page needs) and its second. For comparison, in the same run, the time a fresh
Python process takes to import the ML code the page used to import (the backbone registry with
torch, and the query strategies with modAL, which imports torch). Prints one JSON object.

    python benchmarks/settings_first_load.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from next_item_latency import free_port, wait_for_port  # noqa: E402

SETUP = """
import json, django
django.setup()
from django.contrib.auth import get_user_model
from django.contrib.sessions.backends.db import SessionStore
from django.core.management import call_command
from labeler.projects.services import create_project
call_command("migrate", verbosity=0)
lead = get_user_model().objects.create_user("lead", password="unused-pw-1")
project = create_project("Bench", ["dress", "hat", "shoe"], lead=lead)
s = SessionStore()
s["_auth_user_id"] = str(lead.pk)
s["_auth_user_backend"] = "django.contrib.auth.backends.ModelBackend"
s["_auth_user_hash"] = lead.get_session_auth_hash()
s.create()
print(json.dumps({"project": project.pk, "session": s.session_key}))
"""
OLD_IMPORTS = "import worker.ml.backbones, worker.ml.strategies"


def get(port: int, path: str, session: str) -> tuple[int, float]:
    started = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    conn.request("GET", path, headers={"Cookie": f"sessionid={session}", "Host": "127.0.0.1"})
    response = conn.getresponse()
    response.read()
    conn.close()
    return response.status, time.perf_counter() - started


def one_run(env: dict, setup: dict, warm: bool) -> dict:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "labeler.wsgi", "-b", f"127.0.0.1:{port}",
         "--workers", "1", "--threads", "1", "--log-level", "warning"],
        cwd=REPO, env=env,
    )
    try:
        wait_for_port(port)
        path = f"/projects/{setup['project']}/settings/"
        if warm:
            get(port, "/favicon.ico", setup["session"])  # the worker is up; nothing else loaded
        status, first = get(port, path, setup["session"])
        status2, second = get(port, path, setup["session"])
        if status != 200 or status2 != 200:
            raise SystemExit(f"settings page answered {status}/{status2}")
        return {"first_s": first, "second_s": second}
    finally:
        server.terminate()
        server.wait(20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="fresh server processes to time")
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="labeler-settings-")
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="labeler.settings", LABELER_DATA_DIR=tmp,
               DATABASE_URL=f"sqlite:///{tmp}/db.sqlite3", DJANGO_ALLOWED_HOSTS="127.0.0.1")
    out = subprocess.run([sys.executable, "-c", SETUP], cwd=REPO, env=env, check=True,
                         capture_output=True, text=True)
    setup = json.loads(out.stdout.strip().splitlines()[-1])
    cold = [one_run(env, setup, warm=False)["first_s"] for _ in range(args.repeats)]
    runs = [one_run(env, setup, warm=True) for _ in range(args.repeats)]
    imports = []
    for _ in range(args.repeats):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", OLD_IMPORTS], cwd=REPO, env=env, check=True)
        imports.append(time.perf_counter() - started)
    first = statistics.median(r["first_s"] for r in runs)
    print(json.dumps({
        "first_load_s": round(first, 3),
        "first_load_all_s": [round(r["first_s"], 3) for r in runs],
        "second_load_s": round(statistics.median(r["second_s"] for r in runs), 3),
        "cold_s": round(statistics.median(cold), 3),
        "old_ml_imports_s": round(statistics.median(imports), 3),
        "repeats": args.repeats,
    }, indent=2))


if __name__ == "__main__":
    main()
