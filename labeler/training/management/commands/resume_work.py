"""Run on start: fail the jobs a stopped worker left active and queue any unfinished work."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from labeler.projects.models import Project
from labeler.training.actions import Kind, do_fail_job
from labeler.training.models import Job
from labeler.training.services import (
    request_embedding,
    request_retrain,
    request_retrain_if_due,
    request_switch,
)


class Command(BaseCommand):
    help = ("Re-queue unfinished background work (embeddings, backbone switches, retrains) after "
            "a restart. Run it only while no worker of this deployment runs (make run does, "
            "before each worker start); with workers running, the periodic sweep does this "
            "safely.")

    def handle(self, *args, **opts) -> None:
        # Run at start, before any worker of this deployment works: no active job can be running.
        # A retrain that was queued, running or delayed is wanted still, due or not (a cold-start
        # ranking, a retrain after a backbone switch); so is a backbone switch.
        active = list(Job.objects.filter(status__in=Job.ACTIVE))
        retrain = {j.project_id for j in active if j.kind == Kind.RETRAIN}
        switches = {j.project_id: j.params for j in active if j.kind == Kind.SWITCH_BACKBONE}
        for job in active:
            do_fail_job(job, "interrupted: the workers were restarted")
        for project in Project.objects.all():
            embedding = request_embedding(project)
            if project.pk in switches:
                params = switches[project.pk]
                request_switch(project, params["backbone"], params.get("weights", ""))
            queued = (request_retrain if project.pk in retrain else request_retrain_if_due)(project)
            self.stdout.write(
                f"{project.name}: embedding {'queued' if embedding else 'not queued'}, "
                f"retrain {'queued' if queued else 'not due'}"
            )
