"""Run on start: clear guards left by a stopped worker and queue any unfinished embedding."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from labeler.projects.models import Project
from labeler.training.services import request_embedding, request_retrain_if_due


class Command(BaseCommand):
    help = "Re-queue unfinished background work (embeddings, due retrains) after a restart."

    def handle(self, *args, **opts) -> None:
        # Run at start, before any worker of this deployment works: nothing can be running.
        Project.objects.update(retrain_requested_at=None, embed_requested_at=None, embed_token="")
        for project in Project.objects.all():
            embedding = request_embedding(project)
            retrain = request_retrain_if_due(project)
            self.stdout.write(
                f"{project.name}: embedding {'queued' if embedding else 'not queued'}, "
                f"retrain {'queued' if retrain else 'not due'}"
            )
