"""The ``simulate`` command line: one label set (:mod:`worker.ml.simulation`) or several
(:mod:`worker.ml.multitask_simulation`), chosen from ``--data`` and ``--label-set``.

A ``labels.csv`` with several label sets (or a multi-label one) and no ``--label-set`` runs the
multi-task simulation; anything else runs the single-set one, unchanged.  Used by
``manage.py simulate`` and ``python -m worker.ml.simulate_command``.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from worker.ml import simulation
from worker.ml.datasets import LABEL_TABLE, read_label_table
from worker.ml.multitask_report import format_multitask, plot_multitask
from worker.ml.multitask_simulation import simulate_multitask


def _single_set_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of one label set's simulation (:mod:`worker.ml.simulation`)."""
    parser.add_argument("--data", required=True, help="folder with train/<class>/* and test/ "
                        "and/or validation/<class>/*, or with labels.csv (file,split,<set>,...)")
    parser.add_argument("--label-set", default=None, metavar="NAME", help="the labels.csv "
                        "column to simulate (needed when it has several)")
    parser.add_argument("--strategy", action="append", dest="strategies", metavar="S",
                        help=f"repeatable; one of {', '.join(simulation.STRATEGIES)} (default: auto, random)")
    parser.add_argument("--budgets", default=",".join(map(str, simulation.DEFAULT_BUDGETS)),
                        help="comma-separated label counts at which to measure")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--backbone", default=None, help="featurizer backbone (default: the "
                        "product's default)")
    parser.add_argument("--retrain-every", type=int, default=simulation.RETRAIN_EVERY,
                        help="labels between two retrains (the project setting; default "
                        f"{simulation.RETRAIN_EVERY})")
    parser.add_argument("--query-pool", type=int, default=simulation.QUERY_POOL_SIZE,
                        help=f"items ranked per retrain (default {simulation.QUERY_POOL_SIZE})")
    parser.add_argument("--audit-share", type=float, default=simulation.AUDIT_SHARE,
                        help="share of labels drawn uniformly at random (default "
                        f"{simulation.AUDIT_SHARE})")
    parser.add_argument("--mirror", action="store_true", help="embed with the mirror test-time "
                        "augmentation (mean of the image's and its mirror's embedding; twice the "
                        "embedding time, a cache of its own)")
    parser.add_argument("--cache-dir", default=str(simulation.DEFAULT_CACHE_DIR))
    parser.add_argument("--json", dest="json_out", required=True, help="write results here")
    parser.add_argument("--plot", default=None, help="optional PNG of the learning curves")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The single-set options, plus those of the multi-task simulation."""
    _single_set_arguments(parser)
    parser.add_argument("--select-for", action="append", default=[], metavar="SET",
                        help="several label sets: also simulate selection for SET alone "
                        "(repeatable; compared with joint selection on the other sets)")
    parser.add_argument("--multi-label", action="append", default=[], metavar="SET",
                        help="read this labels.csv column as multi-label tags (automatic when "
                        "a cell joins tags with '|')")
    parser.add_argument("--jobs", type=int, default=1, help="several label sets: run the "
                        "(strategy, seed) curves in this many processes (same numbers)")


def is_multitask(data_dir: str | Path, label_set: str | None,
                 multi_label: Sequence[str] = ()) -> bool:
    """True for a labels.csv with several sets or a multi-label one, and no ``--label-set``."""
    if label_set is not None or not (Path(data_dir) / LABEL_TABLE).is_file():
        return False
    table = read_label_table(data_dir, tuple(multi_label))
    return len(table.label_sets) > 1 or "multi" in table.kinds.values()


def run_from_args(opts: dict[str, Any], progress: simulation.Progress = simulation._stderr
                  ) -> dict[str, Any]:
    """Run the simulation the options describe, write the JSON (and plots); return the result."""
    multi_label = tuple(opts.get("multi_label") or ())
    if not is_multitask(opts["data"], opts.get("label_set"), multi_label):
        if opts.get("select_for"):
            raise ValueError("--select-for needs a labels.csv with several label sets "
                             "(and no --label-set)")
        return _run_single(opts, progress)
    from worker.ml.backbones import DEFAULT_BACKBONE

    strategies = list(opts.get("strategies") or ["auto", "random"])
    strategies += [f"set:{s}" for s in opts.get("select_for") or ()
                   if f"set:{s}" not in strategies]
    result = simulate_multitask(
        opts["data"], strategies, [int(b) for b in str(opts["budgets"]).split(",") if b.strip()],
        seeds=int(opts["seeds"]), backbone=opts.get("backbone") or DEFAULT_BACKBONE,
        cache_dir=opts.get("cache_dir") or simulation.DEFAULT_CACHE_DIR,
        retrain_every=int(opts.get("retrain_every") or simulation.RETRAIN_EVERY),
        query_pool=int(opts.get("query_pool") or simulation.QUERY_POOL_SIZE),
        audit_share=(simulation.AUDIT_SHARE if opts.get("audit_share") is None
                     else float(opts["audit_share"])),
        progress=progress, multi_label=multi_label, jobs=int(opts.get("jobs") or 1),
        checkpoints=Path(str(opts["json_out"]) + ".curves"))
    return _write(result, opts, plot_multitask, format_multitask, progress)


def _run_single(opts: dict[str, Any], progress: simulation.Progress) -> dict[str, Any]:
    """One label set (:func:`worker.ml.simulation.simulate`)."""
    budgets = [int(b) for b in str(opts["budgets"]).split(",") if b.strip()]
    result = simulation.simulate(
        opts["data"], opts.get("strategies") or ["auto", "random"], budgets,
        seeds=int(opts["seeds"]), backbone=opts.get("backbone"),
        cache_dir=opts.get("cache_dir") or simulation.DEFAULT_CACHE_DIR,
        retrain_every=int(opts.get("retrain_every") or simulation.RETRAIN_EVERY),
        query_pool=int(opts.get("query_pool") or simulation.QUERY_POOL_SIZE),
        audit_share=(simulation.AUDIT_SHARE if opts.get("audit_share") is None
                     else float(opts["audit_share"])),
        progress=progress, label_set=opts.get("label_set"), mirror=bool(opts.get("mirror")))
    return _write(result, opts, simulation.plot, simulation.format_table, progress)


def _write(result: dict[str, Any], opts: dict[str, Any], plot: Callable[[dict, str], None],
           table: Callable[[dict], str], progress: simulation.Progress) -> dict[str, Any]:
    """Write the result's JSON (and plot), report its table; return the result."""
    out = Path(opts["json_out"])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    if opts.get("plot"):
        plot(result, opts["plot"])
    progress(table(result))
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m worker.ml.simulate_command ...`` (same options as ``manage.py simulate``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    run_from_args(vars(parser.parse_args(argv)))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
