"""What a retrain's fit + ranking costs at a large pool: the part of a retrain a strategy adds.

Random float16 embeddings (``--items`` x ``--dim``, as the store holds them) with ``--labels``
labels over ``--classes`` classes; one BLAS thread, as in the worker.  For each strategy, times
the head's fit and ``select()`` ranking ``--rank`` items (the worker ranks 300 per retrain),
with as many labels as put ``auto`` in its cold-start phase and in its uncertainty phase.
Prints CPU seconds per step (the process's own time: on a shared machine the wall time depends
on the neighbours; with one BLAS thread the two agree on an idle one), the ratio to the first
strategy measured in the same run, and the wall time.

    python benchmarks/selection_cost.py [--items 100000] [--dim 1280] [--classes 10 100]
        [--strategies auto margin diversity coverage random] [--repeats 2]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from worker.ml.head import LogisticHead  # noqa: E402
from worker.ml.strategies import AUTO_LABELS_PER_CLASS, select  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=1280)
    parser.add_argument("--classes", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--strategies", nargs="+",
                        default=["auto", "diversity", "badge", "balanced", "coverage", "margin"])
    parser.add_argument("--rank", type=int, default=300, help="items ranked per retrain")
    parser.add_argument("--batch", type=int, default=10, help="retrain_every")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)

    from threadpoolctl import threadpool_limits

    # 2 labels per class of 100 classes: scikit-learn warns that y "could be a regression"
    warnings.filterwarnings("ignore", message="The number of unique classes", category=UserWarning)

    rng = np.random.default_rng(0)
    # Clustered data (so k-means and the head see structure, as with real embeddings).
    k = max(args.classes)
    centres = rng.normal(size=(k, args.dim)).astype(np.float32)
    owner = rng.integers(k, size=args.items)
    X = (centres[owner] + 2.0 * rng.normal(size=(args.items, args.dim)).astype(np.float32))
    X = X.astype(np.float16)
    print(f"pool {args.items} x {args.dim} float16, rank {args.rank}, batch {args.batch}")
    with threadpool_limits(limits=1, user_api="blas"):
        for n_classes in args.classes:
            # labels in the cold-start phase (2 per class) and in the uncertainty phase
            for per_class in (2, 2 * AUTO_LABELS_PER_CLASS):
                n_lab = per_class * n_classes
                lab = rng.choice(args.items, n_lab, replace=False)
                y = np.arange(n_lab) % n_classes
                X_unl, X_lab = X[np.setdiff1d(np.arange(args.items), lab)], X[lab]
                base = None
                for name in args.strategies:
                    fit_s, rank_s, wall_s = [], [], []
                    for r in range(args.repeats):
                        w0, t0 = time.perf_counter(), time.process_time()
                        head = LogisticHead(random_state=r).fit(X_lab, y)
                        t1 = time.process_time()
                        idx = select(name, head, X_unl, args.rank, X_labeled=X_lab,
                                     random_state=r, n_classes=n_classes, batch_size=args.batch)
                        t2 = time.process_time()
                        wall_s.append(time.perf_counter() - w0)
                        assert len(np.unique(idx)) == args.rank
                        fit_s.append(t1 - t0)
                        rank_s.append(t2 - t1)
                    total = min(fit_s) + min(rank_s)
                    base = base if base is not None else total
                    print(f"classes {n_classes:>3}  labels {n_lab:>4}  {name:<10} CPU: "
                          f"fit {min(fit_s):6.2f} s  rank {min(rank_s):6.2f} s  "
                          f"total {total:6.2f} s  x{total / base:5.2f} of {args.strategies[0]}"
                          f"  (wall {min(wall_s):6.2f} s)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
