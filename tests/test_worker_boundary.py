"""The GPU worker is stateless compute: nothing under worker/ imports Django or labeler, it
imports without a settings module, and a worker started with the broker URL alone (no
database, no Django) embeds and retrains for the web side's jobs."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO, embedding_done, last_job, wait_for

FORBIDDEN = ("django", "labeler")


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
    return found


def test_no_module_under_worker_imports_django_or_labeler():
    modules = sorted((REPO / "worker").rglob("*.py"))
    assert len(modules) > 10
    bad = {str(p.relative_to(REPO)): sorted(m for m in _imports(p)
                                            if m.split(".")[0] in FORBIDDEN)
           for p in modules}
    assert {k: v for k, v in bad.items() if v} == {}


def test_worker_tasks_import_without_django_settings():
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DJANGO", "DATABASE"))}
    code = ("import sys, worker.tasks, worker.celery_app\n"
            "names = sorted(t for t in worker.celery_app.app.tasks if t.startswith('worker.'))\n"
            "print(names)\n"
            # (Celery itself imports the django package's version helpers when it is installed:
            # what must not load is labeler, Django's settings, apps or database layer.)
            "bad = [m for m in sys.modules if m.split('.')[0] == 'labeler' or m.startswith(\n"
            "       ('django.conf', 'django.apps', 'django.db'))]\n"
            "assert not bad, bad\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "worker.tasks.embed_chunk" in out.stdout and "worker.tasks.retrain" in out.stdout


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_gpu_worker_needs_only_the_broker_and_storage(worker_factory, project_factory,
                                                        add_images):
    """As on a GPU machine (issue #16): `celery -A worker.celery_app worker -Q gpu -c 1` with
    no settings module and no database, beside a web worker for the `web` queue."""
    from labeler.items.models import UNRANKED, Item
    from labeler.training.models import Job
    from labeler.training.services import request_embedding

    _, gpu_log = worker_factory(app="worker.celery_app", queues="gpu", concurrency=1,
                                django=False)
    _, web_log = worker_factory(queues="web", concurrency=1)
    project = project_factory("Split")
    items = add_images(project, 6)
    assert request_embedding(project)
    wait_for(lambda: embedding_done(project.pk, 6), 180, 0.5, "the GPU worker to embed")
    # Embedding done chains the cold-start ranking: a retrain job on the GPU worker too.
    wait_for(lambda: (last_job(project.pk, Job.Kind.RETRAIN) or Job()).status == "done", 120,
             0.5, "the cold-start ranking")
    assert Item.objects.filter(project=project, query_rank__lt=UNRANKED).count() == len(items)
    gpu, web = gpu_log.read_text(), web_log.read_text()
    assert "worker.tasks.embed_chunk" in gpu and "worker.tasks.retrain" in gpu
    ran = web.split("ready.")[-1]  # what the web worker ran (its banner lists every task)
    assert "labeler.training.tasks.embed_chunk_done" in ran and "worker.tasks." not in ran
