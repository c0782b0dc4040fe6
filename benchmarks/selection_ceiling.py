"""How good can ANY choice of B labels be? A ceiling for active-learning targets at one budget.

An active-learning strategy only chooses which B pool items get labels; the head and the
features are fixed.  So its accuracy at B labels is bounded by the best B-subset there is.  This
script compares, per budget B, what realistic and oracle-informed choices of B items give with
the product's own head (:class:`~worker.ml.head.LogisticHead`, C by CV) on the cached
embeddings of ``simulate`` against uniform draws of B and of 2B items (the ``random`` baseline of
the "B labels give what random order gives with 2B" target):

- random_B / random_2B: uniform draws of B and 2B items (what ``simulate``'s random measures);
- stratified: B items in the pool's class proportions (an oracle that knows every class);
- balanced_mean / balanced_best: B/k items of each class (oracle), mean and luckiest of the
  draws — the best draw is picked on the held-out answers, so it is optimistic;
- central: the B/k items of each class nearest to the class mean (oracle prototypes);
- class_typiclust: per class, k-means into B/k clusters and the most typical item of each
  (oracle TypiClust: central *and* covering within each true class);
- test_tuned (``--swaps`` > 0): hill-climb from the best balanced draw, swapping items within a
  class whenever held-out accuracy does not drop, judged on the held-out answers themselves.

If random at 2B lies above every oracle-informed choice of B items, no query strategy can meet
the 2x target at B with these features and this head: it needs better features or a better
head, not a better choice of items.

    python benchmarks/selection_ceiling.py --data DIR [--label-set NAME] [--budgets 80,160,320]
        [--backbone NAME] [--draws 10] [--swaps 0] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from worker.ml.backbones import DEFAULT_BACKBONE  # noqa: E402
from worker.ml.head import LogisticHead  # noqa: E402
from worker.ml.ranking import kmeans, unit_rows  # noqa: E402
from worker.ml.simulation import DEFAULT_CACHE_DIR, load_embedded  # noqa: E402


def _split(budget: int, sizes: np.ndarray, proportional: bool) -> np.ndarray:
    """Items per class summing to ``budget`` (equal shares, or the pool's proportions)."""
    k = len(sizes)
    share = sizes / sizes.sum() * budget if proportional else np.full(k, budget / k)
    per = np.floor(share).astype(int)
    for c in np.argsort(-(share - per))[: budget - per.sum()]:
        per[c] += 1
    return np.minimum(per, sizes)


def ceiling(X: np.ndarray, y: np.ndarray, Xt: np.ndarray, yt: np.ndarray, budget: int,
            draws: int, swaps: int, seed: int) -> dict[str, float]:
    """Every estimate of the module docstring for one budget (accuracies in [0, 1])."""
    rng = np.random.default_rng(seed)
    k = int(y.max()) + 1
    by_class = [np.flatnonzero(y == c) for c in range(k)]
    sizes = np.array([len(m) for m in by_class])
    U = unit_rows(X)

    def accuracy(idx: np.ndarray, C: float | None = None) -> float:
        head = LogisticHead(C=C, random_state=seed).fit(X[idx], y[idx])
        return float((head.predict(Xt) == yt).mean())

    def per_class(per: np.ndarray) -> np.ndarray:
        return np.concatenate([rng.choice(m, p, replace=False)
                               for m, p in zip(by_class, per, strict=True)])

    equal, prop = _split(budget, sizes, False), _split(budget, sizes, True)
    out: dict[str, float] = {}
    out["random_B"] = float(np.mean([accuracy(rng.choice(len(y), budget, replace=False))
                                     for _ in range(draws)]))
    out["random_2B"] = float(np.mean([accuracy(rng.choice(len(y), 2 * budget, replace=False))
                                      for _ in range(draws)]))
    out["stratified"] = float(np.mean([accuracy(per_class(prop)) for _ in range(draws)]))
    sets = [per_class(equal) for _ in range(draws)]
    accs = [accuracy(s) for s in sets]
    out["balanced_mean"], out["balanced_best"] = float(np.mean(accs)), float(np.max(accs))
    central, typical = [], []
    for m, p in zip(by_class, equal, strict=True):
        mean = U[m].mean(axis=0)
        central.append(m[np.argsort(-(U[m] @ mean))[:p]])
        labels, centres = kmeans(U[m], int(p), rng)
        for c in range(len(centres)):
            mem = m[labels == c]
            if len(mem):
                typical.append(mem[np.argmin(((U[mem] - centres[c]) ** 2).sum(axis=1))])
    out["central"] = accuracy(np.concatenate(central))
    out["class_typiclust"] = accuracy(np.asarray(typical))
    if swaps:
        idx = sets[int(np.argmax(accs))].copy()
        best = accuracy(idx, 1.0)  # C fixed while climbing: CV's C on few labels is noisy
        chosen = set(idx.tolist())
        for _ in range(swaps):
            j = int(rng.integers(len(idx)))
            cand = int(rng.choice(by_class[y[idx[j]]]))
            if cand in chosen:
                continue
            trial = idx.copy()
            trial[j] = cand
            a = accuracy(trial, 1.0)
            if a >= best:
                chosen.discard(int(idx[j]))
                chosen.add(cand)
                idx, best = trial, a
        out["test_tuned"] = accuracy(idx)
    return {key: round(v, 4) for key, v in out.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="folder as for manage.py simulate")
    parser.add_argument("--label-set", default=None, help="labels.csv column, as for simulate")
    parser.add_argument("--budgets", default="80,160,320")
    parser.add_argument("--backbone", default=DEFAULT_BACKBONE)
    parser.add_argument("--cache-dir", default=str(DEFAULT_CACHE_DIR))
    parser.add_argument("--draws", type=int, default=10, help="draws per random/oracle kind")
    parser.add_argument("--swaps", type=int, default=0, help="swap attempts of test_tuned")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    t0 = time.time()
    data = load_embedded(args.data, args.backbone, args.cache_dir, label_set=args.label_set)
    X, y = np.asarray(data.X_pool, dtype=np.float32), data.y_pool
    Xt, yt = np.asarray(data.X_test, dtype=np.float32), data.y_test
    result: dict = {"data": str(Path(args.data).resolve()), "label_set": args.label_set,
                    "backbone": args.backbone, "pool": len(y), "heldout": len(yt),
                    "draws": args.draws, "swaps": args.swaps, "budgets": {}}
    with threadpool_limits(limits=1, user_api="blas"):  # small fits; as the worker runs them
        for b in (int(v) for v in args.budgets.split(",")):
            result["budgets"][b] = ceiling(X, y, Xt, yt, b, args.draws, args.swaps, args.seed)
            print(json.dumps({b: result["budgets"][b]}), file=sys.stderr, flush=True)
    result["seconds"] = round(time.time() - t0, 1)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
