"""python manage.py export_labels PROJECT --format FORMAT --out PATH [--model-version N]

FORMAT: csv | json | coco | folders | predictions | model (see labeler.insights.exports).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from labeler.insights import exports
from labeler.projects.access import find_project


class Command(BaseCommand):
    help = (
        "Export PROJECT's labels (csv, json, coco, folders = zip with a folder per class), "
        "the latest model's predictions (predictions) or its head with a README (model). "
        "Streams to PATH; '-' writes to standard output."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("project", help="project name or id")
        parser.add_argument("--format", required=True, choices=sorted(exports.FORMATS))
        parser.add_argument("--out", required=True, help="output file, or - for stdout")
        parser.add_argument(
            "--model-version", type=int, default=None,
            help="model version for predictions/model (default: the latest ready one)",
        )

    def handle(self, *args, **opts) -> None:
        key = opts["project"]
        project = find_project(key)
        if project is None:
            raise CommandError(f"No project named or numbered {key!r}.")
        fmt = opts["format"]
        try:
            stream = exports.export(project, fmt, version=opts["model_version"])
        except exports.ExportError as exc:
            raise CommandError(str(exc)) from exc
        out = opts["out"]
        written = 0
        if out == "-":
            target = sys.stdout.buffer
            for chunk in stream:
                target.write(chunk)
                written += len(chunk)
            target.flush()
            return
        path = Path(out)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
        try:
            with open(tmp, "wb") as f:
                for chunk in stream:
                    f.write(chunk)
                    written += len(chunk)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        self.stderr.write(f"{project.name}: wrote {fmt} export to {path} ({written:,} bytes)")
