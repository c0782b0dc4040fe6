"""python manage.py import_images PROJECT FOLDER [--labels-from-folders]"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from labeler.items.importing import import_folder
from labeler.projects.access import find_project


class Command(BaseCommand):
    help = "Import every image under FOLDER into PROJECT (name or id). Duplicates are skipped."

    def add_arguments(self, parser) -> None:
        parser.add_argument("project", help="project name or id")
        parser.add_argument("folder")
        parser.add_argument(
            "--labels-from-folders", action="store_true",
            help="FOLDER/<class>/* become labels of that class (missing classes are created)",
        )
        parser.add_argument("--limit", type=int, default=None, help="import at most N files")

    def handle(self, *args, **opts) -> None:
        key = opts["project"]
        project = find_project(key)
        if project is None:
            raise CommandError(f"No project named or numbered {key!r}.")

        def progress(done: int, total: int) -> None:
            self.stderr.write(f"\r{done}/{total} files", ending="")

        try:
            report = import_folder(
                project, opts["folder"], labels_from_folders=opts["labels_from_folders"],
                limit=opts["limit"], progress=progress,
            )
        except FileNotFoundError as exc:
            raise CommandError(str(exc)) from exc
        self.stderr.write("")
        for name, error in sorted(report.errors.items()):
            self.stderr.write(self.style.WARNING(f"  error  {name}: {error}"))
        for name in report.duplicates[:20]:
            self.stderr.write(f"  duplicate  {name}")
        if len(report.duplicates) > 20:
            self.stderr.write(f"  … and {len(report.duplicates) - 20} more duplicates")
        self.stdout.write(self.style.SUCCESS(f"{project}: {report.summary()}"))
