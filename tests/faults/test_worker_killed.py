"""The Celery worker SIGKILLed under `make run`'s supervisor, mid-embedding and mid-retrain: the
web server keeps answering, the supervisor restarts the worker, and the work resumes and
completes (every item embedded, once; a model on every label)."""

from __future__ import annotations

import threading
import time

from labeler.items.models import Item
from labeler.projects.models import Role
from labeler.projects.services import set_member
from labeler.training.models import ModelVersion, Status
from labeler.training.services import retraining

from ..conftest import wait_for
from .conftest import WebClient, embedded_ids, settled


class Watcher(threading.Thread):
    """Polls a page and the status API while the worker is down; counts what was not a 200."""

    def __init__(self, web: WebClient, project_id: int) -> None:
        super().__init__(daemon=True)
        self.web, self.project_id = web, project_id
        self.answers: list[int] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.2):
            for path in (f"/projects/{self.project_id}/", f"/api/projects/{self.project_id}/status/"):
                try:
                    self.answers.append(self.web.request("GET", path)[0])
                except OSError:
                    self.answers.append(0)


def test_worker_killed_mid_embedding_and_mid_retrain(
    stack_factory, make_user, project_factory, add_images
):
    project = project_factory("Killed", classes=("a", "b"), retrain_every=2)
    lead = make_user("lead")
    set_member(project, lead, Role.LEAD)
    items = add_images(project, 8)
    # Small chunks and batches: the embedding is still running when the kill comes.
    stack = stack_factory(LABELER_EMBED_CHUNK="3", LABELER_EMBED_BATCH_SIZE="1")
    web = WebClient(stack.port, lead)
    watcher = Watcher(web, project.pk)
    watcher.start()

    def embedding_started() -> bool:
        return 0 < len(embedded_ids(project)) < len(items)

    wait_for(embedding_started, 120, 0.1, "the embedding to start")
    killed = stack.kill("worker")
    wait_for(lambda: "restarted worker" in stack.output(), 30, 0.2, "the worker's restart")
    assert stack.pid("worker") != killed
    wait_for(lambda: settled(project), 120, 0.5, "the embedding to resume and complete")
    assert embedded_ids(project) == {i.pk for i in items}  # each once: the store keys by id
    assert Item.objects.filter(project=project).exclude(embed_error="").count() == 0

    label = project.classes.first().pk
    assert [web.label_next(project.pk, label) for _ in range(2)] == [201, 201]
    # Mid-retrain: the labels called for one; it is queued or running when the worker dies.
    wait_for(lambda: retraining(project), 10, 0.05, "the retrain to be requested")
    stack.kill("worker")
    restarts = stack.output().count("restarted worker")
    wait_for(lambda: stack.output().count("restarted worker") > restarts or
             stack.output().count("restarted worker") >= 2, 30, 0.2, "the second restart")

    def retrained() -> bool:
        model = ModelVersion.objects.filter(project=project, status=Status.READY).order_by(
            "-number").first()
        return model is not None and model.labels_used == 2 and settled(project)

    wait_for(retrained, 120, 0.5, "the retrain to resume and complete")
    # Nothing twice: one version for the one retrain the labels called for (a report of the
    # killed run, had it come, names a job that resume_work failed: it would change nothing).
    assert ModelVersion.objects.filter(project=project).count() == 1
    watcher.stop.set()
    watcher.join()
    assert watcher.answers and set(watcher.answers) == {200}, watcher.answers
    assert "killed by SIGKILL" in stack.output()
    # Leftover pool processes of the killed worker were killed with it: one worker runs.
    time.sleep(0.5)
    assert stack.output().count("restarted worker") == 2
