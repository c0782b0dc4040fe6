"""``manage.py simulate``: active-learning simulation on a labeled folder (thin wrapper).

All logic lives in :mod:`worker.ml.simulation` (no Django there), which also runs as
``python -m worker.ml.simulation`` with the same options.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from worker.ml import simulation


class Command(BaseCommand):
    help = ("Simulate active learning on DIR (train/<class>/* pool, test/ and/or validation/ "
            "held out; or a labels.csv, one label set chosen with --label-set): held-out "
            "accuracy per strategy and budget, as JSON (and a plot).")

    def add_arguments(self, parser: CommandParser) -> None:
        simulation.add_arguments(parser)

    def handle(self, *args: Any, **opts: Any) -> None:
        try:
            result = simulation.run_from_args(opts, progress=lambda m: self.stderr.write(m))
        except (ValueError, FileNotFoundError) as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"wrote {opts['json_out']}"
                          + (f" and {opts['plot']}" if opts.get("plot") else "")
                          + f" ({result['seconds']:.0f}s)")
