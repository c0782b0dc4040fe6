"""``manage.py simulate``: active-learning simulation on a labeled folder (thin wrapper).

All logic lives in :mod:`worker.ml.simulate_command` (no Django there: one label set in
:mod:`worker.ml.simulation`, several in :mod:`worker.ml.multitask_simulation`), which also runs
as ``python -m worker.ml.simulate_command`` with the same options.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from worker.ml import simulate_command


class Command(BaseCommand):
    help = ("Simulate active learning on DIR (train/<class>/* pool, test/ and/or validation/ "
            "held out; or a labels.csv: one label set chosen with --label-set, or all of them, "
            "selected jointly): held-out accuracy per strategy, set and budget, as JSON (and "
            "plots).")

    def add_arguments(self, parser: CommandParser) -> None:
        simulate_command.add_arguments(parser)

    def handle(self, *args: Any, **opts: Any) -> None:
        try:
            result = simulate_command.run_from_args(opts, progress=lambda m: self.stderr.write(m))
        except (ValueError, FileNotFoundError) as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"wrote {opts['json_out']}"
                          + (f" and {opts['plot']}" if opts.get("plot") else "")
                          + f" ({result['seconds']:.0f}s)")
