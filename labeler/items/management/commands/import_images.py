"""python manage.py import_images PROJECT SOURCE [--labels-from-folders] [--no-copy]

SOURCE is a folder, an ``s3://bucket/prefix/`` (labeler.items.remote_import) or a CSV of image
URLs (``*.csv`` or ``--urls``).
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from labeler.items.importing import ImportReport, import_folder
from labeler.items.remote_import import SourceError, import_bucket, import_url_csv
from labeler.projects.access import find_project


class Command(BaseCommand):
    help = ("Import every image under SOURCE into PROJECT (name or id): a folder, "
            "s3://bucket/prefix/, or a CSV of image URLs. Duplicates are skipped.")

    def add_arguments(self, parser) -> None:
        parser.add_argument("project", help="project name or id")
        parser.add_argument("source", help="a folder, s3://bucket/prefix/, or urls.csv")
        parser.add_argument(
            "--labels-from-folders", action="store_true",
            help="SOURCE/<class>/* become labels of that class (missing classes are created)",
        )
        parser.add_argument(
            "--urls", action="store_true",
            help="SOURCE is a CSV of image URLs (column 'url', optional 'label'); implied by .csv",
        )
        parser.add_argument(
            "--no-copy", action="store_true",
            help="bucket or URL imports: items reference the source objects instead of copies "
                 "(they must stay there; deleting an item never deletes them)",
        )
        parser.add_argument("--limit", type=int, default=None, help="import at most N files")

    def handle(self, *args, **opts) -> None:
        key, source = opts["project"], opts["source"]
        project = find_project(key)
        if project is None:
            raise CommandError(f"No project named or numbered {key!r}.")

        def progress(done: int, total: int | None) -> None:
            of = f"/{total}" if total is not None else ""
            self.stderr.write(f"\r{done}{of} files", ending="")

        is_csv = opts["urls"] or source.lower().endswith(".csv")
        if opts["no_copy"] and not (is_csv or source.startswith("s3://")):
            raise CommandError("--no-copy works with s3:// and URL imports; a folder is copied.")
        if opts["labels_from_folders"] and is_csv:
            raise CommandError("--labels-from-folders is for folders and buckets; a CSV of URLs "
                               "takes its labels from a 'label' column.")
        try:
            if source.startswith("s3://"):
                report = import_bucket(
                    project, source, labels_from_folders=opts["labels_from_folders"],
                    no_copy=opts["no_copy"], limit=opts["limit"], progress=progress)
            elif is_csv:
                report = import_url_csv(project, source, no_copy=opts["no_copy"],
                                        limit=opts["limit"], progress=progress)
            else:
                report = import_folder(
                    project, source, labels_from_folders=opts["labels_from_folders"],
                    limit=opts["limit"], progress=progress)
        except (FileNotFoundError, SourceError) as exc:
            raise CommandError(str(exc)) from exc
        self.stderr.write("")
        self._report(project, report)

    def _report(self, project, report: ImportReport) -> None:
        for name, error in sorted(report.errors.items()):
            self.stderr.write(self.style.WARNING(f"  error  {name}: {error}"))
        if report.more_errors:
            self.stderr.write(f"  … and {report.more_errors} more errors")
        for name in report.duplicates[:20]:
            self.stderr.write(f"  duplicate  {name}")
        if report.n_duplicates > 20:
            self.stderr.write(f"  … and {report.n_duplicates - 20} more duplicates")
        for name in report.not_image_names[:20]:
            self.stderr.write(f"  not an image  {name}")
        if report.not_images > 20:
            self.stderr.write(f"  … and {report.not_images - 20} more non-images")
        self.stdout.write(self.style.SUCCESS(f"{project}: {report.summary()}"))
