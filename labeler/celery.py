"""The Celery app of the web side: worker.celery_app's app (broker, queues, routes from the
environment) plus Django's ``CELERY_*`` settings and the web tasks of labeler's apps
(``labeler/<app>/tasks.py``: scheduling, ingesting results, the sweep)."""

from __future__ import annotations

import os

from worker.celery_app import app

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "labeler.settings")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

__all__ = ["app"]
