"""Redis (the broker) stopped mid-upload and mid-labeling, then started again: nothing is lost,
and the queued work catches up on its own (no new label, no `resume_work`) within a stated time.

The bound: the beat sweep runs every SWEEP_SECONDS (2 s here, 30 s by default), Celery's worker
and beat reconnect to the broker with their own back-off, then the work itself runs (embedding
two tiny images, one retrain). CATCH_UP_SECONDS is what we promise for that on a busy machine.
"""

from __future__ import annotations

import time

from labeler.annotations.models import Annotation
from labeler.items.models import UNRANKED, Item
from labeler.projects.models import Role
from labeler.projects.services import set_member
from labeler.training.actions import do_start_job
from labeler.training.models import Job, ModelVersion, Status
from labeler.training.services import request_embedding

from ..conftest import jpeg_bytes, wait_for
from .conftest import WebClient, all_embedded, elapsed_since, settled

CATCH_UP_SECONDS = 60


def test_outage_mid_upload_and_labeling_catches_up(
    stack_factory, private_redis, make_user, project_factory, add_images
):
    project = project_factory("Outage", classes=("a", "b"), retrain_every=2)
    lead = make_user("lead")
    set_member(project, lead, Role.LEAD)
    add_images(project, 4)
    stack = stack_factory()
    wait_for(lambda: settled(project), 120, 0.5, "the first images to be embedded and ranked")
    web = WebClient(stack.port, lead)
    label = project.classes.first().pk

    private_redis.stop()
    # Mid-upload: the import is answered and kept; its embedding waits, and the page says so.
    status, page = web.upload(project.pk, {"new1.jpg": jpeg_bytes((250, 10, 10)),
                                           "new2.jpg": jpeg_bytes((10, 250, 10))})
    assert status == 200 and "2 imported" in page
    assert Item.objects.filter(project=project).count() == 6
    notice = web.json(f"/api/projects/{project.pk}/status/")["delayed"]
    assert notice and "could not be queued" in notice
    # Mid-labeling: every label is saved; the retrain they call for waits.
    statuses = [web.label_next(project.pk, label) for _ in range(3)]
    assert statuses == [201, 201, 201] or all(s in (200, 201) for s in statuses), statuses
    assert delayed_kinds(project) == {"embed", "retrain"}
    assert "could not be queued" in web.request("GET", f"/projects/{project.pk}/")[1].decode()

    private_redis.start()
    back = time.monotonic()

    def caught_up() -> bool:
        model = ModelVersion.objects.filter(project=project, status=Status.READY).order_by(
            "-number").first()
        return all_embedded(project) and model is not None and model.labels_used == 3

    wait_for(caught_up, CATCH_UP_SECONDS + 30, 0.5, "the delayed work to catch up")
    took = elapsed_since(back)
    print(f"broker outage: caught up {took:.1f}s after Redis came back")
    assert took < CATCH_UP_SECONDS, f"caught up in {took:.0f}s, promised {CATCH_UP_SECONDS}s"
    assert Annotation.objects.filter(item__project=project).count() == 3  # nothing lost
    wait_for(lambda: web.json(f"/api/projects/{project.pk}/status/")["delayed"] is None, 20, 0.5,
             "the delay notice to clear")
    assert delayed_kinds(project) == set()


def delayed_kinds(project) -> set[str]:
    return set(Job.objects.filter(project=project, status=Job.State.DELAYED)
               .values_list("kind", flat=True))


def test_lost_messages_are_queued_again(stack_factory, project_factory, add_images):
    """Messages lost with a Redis restart (no snapshot) leave jobs that nobody works on: the
    sweep's orphan check (LABELER_ORPHAN_SECONDS=4 here) starts the work again."""
    project = project_factory("Lost", classes=("a", "b"))
    stack_factory(web=False)
    items = add_images(project, 3)
    request_embedding(project)  # (or an embedding job is active already)

    def recovered() -> bool:
        ranked = Item.objects.filter(project=project, query_rank__lt=UNRANKED).count()
        return settled(project) and ranked == len(items)

    # Ranked too: between the embedding's finish and the cold-start retrain it chains, no job
    # is active for a moment.
    wait_for(recovered, 120, 0.5, "the images to be embedded and ranked")
    Item.objects.filter(project=project).update(query_rank=UNRANKED)
    # As if an embedding and a retrain had been queued, then Redis restarted empty: jobs whose
    # first message was never delivered.
    assert do_start_job(project, Job.Kind.EMBED, params={"backbone": project.backbone})
    assert do_start_job(project, Job.Kind.RETRAIN)
    started = time.monotonic()
    wait_for(recovered, 90, 0.5, "the lost embedding and retrain to be queued again")
    print(f"lost messages: recovered in {elapsed_since(started):.1f}s")
