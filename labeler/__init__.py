"""labeler's Django project. The Celery app is loaded with Django so that tasks sent from web
requests and management commands go to the configured broker (Celery's Django pattern)."""

from labeler.celery import app as celery_app

__all__ = ("celery_app",)
