"""python manage.py sweep_media [--min-age SECONDS] [--dry-run]"""

from __future__ import annotations

from django.core.management.base import BaseCommand

from labeler.items.sweep import DEFAULT_MIN_AGE_SECONDS, sweep_media


class Command(BaseCommand):
    help = (
        "Delete media files no item references (left by imports killed mid-way, deleted items "
        "and projects). Files younger than --min-age are kept: an import may still be running."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--min-age", type=float, default=DEFAULT_MIN_AGE_SECONDS,
                            help=f"seconds (default {DEFAULT_MIN_AGE_SECONDS})")
        parser.add_argument("--dry-run", action="store_true", help="list, do not delete")

    def handle(self, *args, **opts) -> None:
        orphans = sweep_media(opts["min_age"], dry_run=opts["dry_run"])
        verb = "would remove" if opts["dry_run"] else "removed"
        for path in orphans:
            self.stdout.write(str(path))
        self.stdout.write(f"{verb} {len(orphans)} orphan file(s)")
