"""Celery task of the insights app: the embedding map (registered from InsightsConfig.ready)."""

from __future__ import annotations

import logging

from celery import shared_task

logger = logging.getLogger("labeler.insights")


@shared_task(acks_late=True, name="labeler.insights.tasks.compute_projection")
def compute_projection(project_id: int) -> dict | None:
    """Lay out the project's pool in 2-D: a quick linear map first if there is none, then t-SNE."""
    from labeler.projects.models import Project

    from . import maps

    project = Project.objects.filter(pk=project_id).first()
    if project is None:
        return None
    try:
        if maps.read_map(project) is None:
            maps.compute_map(project, method="pca")
        data = maps.compute_map(project, method="tsne")
    finally:
        maps.release_pending(project)
    if data is None:
        return None
    return {"items": int(len(data["ids"])), "method": data["method"], "seconds": data["seconds"]}
