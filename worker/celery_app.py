"""The Celery application. Start a worker with: celery -A worker.celery_app worker -l info"""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "labeler.settings")

# worker.tasks is found by autodiscovery; the backbone check lives in a module of its own.
app = Celery("labeler", include=["worker.backbone_check"])
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["worker"], related_name="tasks", force=True)
