"""Celery task of the training app: the periodic sweep (registered from TrainingConfig.ready,
scheduled by `celery beat`, see CELERY_BEAT_SCHEDULE)."""

from __future__ import annotations

import logging

from celery import shared_task

logger = logging.getLogger("labeler.training")


@shared_task(name="labeler.training.tasks.sweep", ignore_result=True)
def sweep() -> dict[str, int]:
    """Queue background work that a broker outage or a dead worker left unqueued."""
    from .sweep import sweep as run_sweep

    queued = run_sweep()
    if any(queued.values()):
        logger.info("sweep queued %s", queued)
    return queued
