"""Run on start: clear guards left by a stopped worker and queue any unfinished work."""

from __future__ import annotations

from django.core.management.base import BaseCommand
from django.db.models import Q

from labeler.projects.models import Project
from labeler.training.services import request_embedding, request_retrain, request_retrain_if_due


class Command(BaseCommand):
    help = ("Re-queue unfinished background work (embeddings, retrains) after a restart. Run it "
            "only while no worker of this deployment runs (make run does, before each worker "
            "start); with workers running, the periodic sweep does this safely.")

    def handle(self, *args, **opts) -> None:
        # Run at start, before any worker of this deployment works: nothing can be running.
        # A retrain that was queued, running or delayed is wanted still, due or not (a cold-start
        # ranking, a retrain after a backbone switch).
        wanted = set(
            Project.objects.filter(
                Q(retrain_requested_at__isnull=False) | Q(retrain_delayed=True)
            ).values_list("pk", flat=True)
        )
        Project.objects.update(retrain_requested_at=None, embed_requested_at=None, embed_token="")
        for project in Project.objects.all():
            embedding = request_embedding(project)
            retrain = (request_retrain if project.pk in wanted else request_retrain_if_due)(project)
            self.stdout.write(
                f"{project.name}: embedding {'queued' if embedding else 'not queued'}, "
                f"retrain {'queued' if retrain else 'not due'}"
            )
