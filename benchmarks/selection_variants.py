"""Selection methods tried for issue #13, each through ``simulate``'s faithful loop.

Variants (the product's pieces otherwise unchanged):

- ``base``: the product as it is;
- ``mirror``: embeddings with the featurizer's mirror test-time augmentation;
- ``temp``: the head's probabilities temperature-scaled (Guo et al. 2017) before the strategies
  read them (``LogisticHead(calibrate=True)``);
- ``dcom``: ``auto`` with DCoM's measured switch (:mod:`worker.ml.competence`) instead of 5
  labels per class.

    python benchmarks/selection_variants.py --data DIR [--label-set NAME] --variant V
        [--strategy auto --strategy random] [--budgets ...] [--seeds 3] --json OUT
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from worker.ml import simulation  # noqa: E402
from worker.ml.backbones import DEFAULT_BACKBONE  # noqa: E402
from worker.ml.competence import dcom_auto  # noqa: E402
from worker.ml.head import LogisticHead  # noqa: E402
from worker.ml.strategies import STRATEGIES  # noqa: E402

VARIANTS = ("base", "mirror", "temp", "dcom")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--label-set", default=None)
    parser.add_argument("--variant", choices=VARIANTS, required=True)
    parser.add_argument("--strategy", action="append", dest="strategies")
    parser.add_argument("--budgets", default="10,20,40,80,160,320,640")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--cache-dir", default=str(simulation.DEFAULT_CACHE_DIR))
    parser.add_argument("--json", dest="json_out", required=True)
    args = parser.parse_args(argv)
    strategies = args.strategies or ["auto", "random"]
    if args.variant == "temp":  # the loop builds its heads through this name
        simulation.LogisticHead = functools.partial(LogisticHead, calibrate=True)  # type: ignore[misc]
    if args.variant == "dcom":
        STRATEGIES["dcom"] = dcom_auto
        strategies = ["dcom" if s == "auto" else s for s in strategies]
    data = simulation.load_embedded(args.data, DEFAULT_BACKBONE, args.cache_dir,
                                    label_set=args.label_set, mirror=args.variant == "mirror")
    result = simulation.simulate(args.data, strategies,
                                 [int(b) for b in args.budgets.split(",")], seeds=args.seeds,
                                 embedded=data, label_set=args.label_set)
    result["variant"] = args.variant
    Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json_out).write_text(json.dumps(result, indent=2) + "\n")
    print(simulation.format_table(result), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
