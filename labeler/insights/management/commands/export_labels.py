"""python manage.py export_labels PROJECT --format FORMAT --out PATH [--model-version N]

FORMAT: csv | json | coco | coco-predictions | folders | predictions | model
(see labeler.insights.exports). ``--labeled-only`` leaves unlabelled images out of the COCO files.
A closed output pipe (``... --out - | head``) ends the export quietly.
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
        parser.add_argument(
            "--labeled-only", action="store_true",
            help="coco, coco-predictions: only the labelled images (default: every image)",
        )

    def handle(self, *args, **opts) -> None:
        key = opts["project"]
        project = find_project(key)
        if project is None:
            raise CommandError(f"No project named or numbered {key!r}.")
        fmt = opts["format"]
        try:
            stream = exports.export(project, fmt, version=opts["model_version"],
                                    unlabeled=not opts["labeled_only"])
        except exports.ExportError as exc:
            raise CommandError(str(exc)) from exc
        out = opts["out"]
        written = 0
        if out == "-":
            _to_stdout(stream)
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


def _to_stdout(stream) -> None:
    """Write to standard output; a reader that stops early (``| head``) ends the export quietly,
    as Unix tools do, instead of a BrokenPipeError traceback."""
    target = sys.stdout.buffer
    try:
        for chunk in stream:
            target.write(chunk)
        target.flush()
    except BrokenPipeError:
        # Python flushes stdout again at exit and would print a second error: point it at
        # /dev/null first (https://docs.python.org/3/library/signal.html#note-on-sigpipe).
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        raise SystemExit(141) from None  # 128 + SIGPIPE, what a shell reports for such a tool
