"""The Celery application, configured from the environment only.

A GPU machine runs ``celery -A worker.celery_app worker -Q gpu -c 1`` with ``CELERY_BROKER_URL``
(or ``REDIS_URL``) and access to the storage: no Django, no database. The web side's processes
load the same app through labeler/celery.py, which adds Django's settings and the web tasks;
``make run`` starts one worker that consumes both queues (``celery -A labeler worker -Q web,gpu``).

Routes: ``worker.tasks.*`` (embedding, retraining, maps, backbone checks: GPU compute) go to the
``gpu`` queue; everything else (``labeler.*``: scheduling, ingesting results) to ``web``.
"""

from __future__ import annotations

import os

from celery import Celery

GPU_QUEUE = "gpu"
WEB_QUEUE = "web"
_redis = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")

app = Celery("labeler", include=["worker.tasks"])
app.conf.update(
    broker_url=os.environ.get("CELERY_BROKER_URL", _redis),
    result_backend=os.environ.get("CELERY_RESULT_BACKEND", _redis),
    task_acks_late=True,  # a worker killed mid-task leaves the task queued, not lost
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    broker_connection_retry_on_startup=True,
    task_default_queue=WEB_QUEUE,
    task_routes={"worker.tasks.*": {"queue": GPU_QUEUE}},
    result_expires=3600,
    # Jobs report progress as messages to web tasks, not through results. Ignoring results also
    # keeps sending a task (after a label is saved) from waiting on the result store: with Redis
    # down, Celery would otherwise retry it for ~20 s inside the annotator's request.
    task_ignore_result=True,
    broker_connection_timeout=2,
    # A task unacknowledged this long (its worker died) is handed to another worker. Each task
    # run is bounded (one chunk of embeddings, one retrain), so this is far above a normal run.
    broker_transport_options={
        "visibility_timeout": int(os.environ.get("LABELER_BROKER_VISIBILITY_TIMEOUT") or 1800)
    },
)
