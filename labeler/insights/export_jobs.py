"""Export jobs: any export format written to a file in the background (a Job of kind export,
run by a web task), then polled and downloaded. Large exports never run inside a request.

One export per project at a time (the Job model's one-active-job rule); the file of an export
is kept until a later export of the project replaces it (the last LABELER_EXPORTS_KEPT).
"""

from __future__ import annotations

import logging
import os
import secrets
import time
from pathlib import Path

from django.conf import settings
from django.db import transaction

from labeler.projects.models import Project
from labeler.training.actions import do_fail_job, do_finish_job, do_heartbeat, do_start_job
from labeler.training.models import Job
from labeler.training.services import launch

from . import exports

logger = logging.getLogger("labeler.insights")
HEARTBEAT_SECONDS = 5.0


def export_path(job: Job) -> Path:
    name = exports.filename_for(job.project, job.params["format"])
    return Path(settings.EXPORTS_ROOT) / str(job.project_id) / f"export-{job.pk}-{name}"


def start_export(project: Project, fmt: str, *, version: int | None = None,
                 unlabeled: bool = True) -> Job | None:
    """Queue an export; None while another export of the project is active. Raises
    ExportError (a ValueError) at once for an export that can't be made (no model yet...)."""
    if fmt not in exports.FORMATS:
        raise exports.ExportError(
            f"Unknown format {fmt!r}; choose one of {', '.join(exports.FORMATS)}.")
    exports.export(project, fmt, version=version, unlabeled=unlabeled)  # checks, writes nothing
    job = do_start_job(project, Job.Kind.EXPORT,
                       params={"format": fmt, "version": version, "unlabeled": unlabeled})
    if job is not None:
        transaction.on_commit(lambda: launch(job))
    return job


def write(job_id: int) -> str:
    """The web task's body: stream the export into a file, beating the job's heartbeat."""
    job = Job.objects.select_related("project").filter(
        pk=job_id, kind=Job.Kind.EXPORT, status__in=Job.ACTIVE).first()
    if job is None:
        return "gone"
    do_heartbeat(job.pk, job.token, message="writing")
    params, path = job.params, export_path(job)
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(f"{path.name}.{os.getpid()}.{secrets.token_hex(4)}.part")
    written, beat = 0, time.monotonic()
    try:
        stream = exports.export(job.project, params["format"], version=params.get("version"),
                                unlabeled=params.get("unlabeled", True))
        with open(part, "wb") as out:
            for chunk in stream:
                out.write(chunk)
                written += len(chunk)
                if time.monotonic() - beat > HEARTBEAT_SECONDS:
                    beat = time.monotonic()
                    if not do_heartbeat(job.pk, job.token, done=written // 1024):
                        raise RuntimeError("the job was given up while writing")
        os.replace(part, path)
    except Exception as exc:  # noqa: BLE001 - recorded on the job, for the lead to read
        part.unlink(missing_ok=True)
        logger.exception("export job %s failed", job.pk)
        do_fail_job(job, f"{type(exc).__name__}: {exc}", token=job.token)
        return "failed"
    if not do_finish_job(job.pk, job.token, result=str(path), message=f"{written} bytes"):
        path.unlink(missing_ok=True)
        return "gone"
    _prune(job.project_id)
    return "done"


def _prune(project_id: int) -> None:
    """Remove the files of older exports beyond the last LABELER_EXPORTS_KEPT."""
    old = (Job.objects.filter(project_id=project_id, kind=Job.Kind.EXPORT, status="done")
           .exclude(result="").order_by("-id")[settings.LABELER_EXPORTS_KEPT:])
    for job in old:
        Path(job.result).unlink(missing_ok=True)
        Job.objects.filter(pk=job.pk).update(result="")


def file_of(job: Job) -> Path | None:
    """The finished export's file, if it is still there."""
    if job.status != Job.State.DONE or not job.result:
        return None
    path = Path(job.result)
    root = Path(settings.EXPORTS_ROOT).resolve()
    return path if path.resolve().is_relative_to(root) and path.is_file() else None
