"""Cold start vs random on skewed label sets, and whether a class-prior correction rescues it.

Issue #14 asks joint selection to beat random on every set at every budget, with the single-set
cold start (TypiClust coverage). At 10-20 labels coverage shows rare classes as often as common
ones; this script measures, per set and seed, the head trained on the first B coverage picks vs
the first B uniform picks, raw and after adjusting its posteriors to the pool's class prior
estimated by EM (Saerens, Latinne & Decaestecker 2002, "Adjusting the outputs of a classifier to
new a priori probabilities"). Prints mean ± std of held-out accuracy (%).

    python benchmarks/cold_start_prior.py --data ../shared/datasets/fashion-multitask --seeds 10
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from worker.ml.backbones import DEFAULT_BACKBONE  # noqa: E402
from worker.ml.coverage import coverage  # noqa: E402
from worker.ml.head import LogisticHead  # noqa: E402
from worker.ml.multitask_simulation import load_multitask  # noqa: E402


def em_prior(P: np.ndarray, train_prior: np.ndarray, iters: int = 100) -> np.ndarray:
    """The pool's class prior by EM on the head's posteriors (Saerens et al. 2002)."""
    pi = train_prior.copy()
    for _ in range(iters):
        A = P * (pi / train_prior)
        A /= A.sum(1, keepdims=True)
        new = A.mean(0)
        if np.abs(new - pi).max() < 1e-6:
            return new
        pi = new
    return pi


def scores(data, s: str, idx: np.ndarray) -> tuple[float, float]:
    """Held-out accuracy of a head on the items ``idx``: raw and prior-adjusted."""
    y = data.pool[s][idx]
    ok = y >= 0
    t = data.test[s] >= 0
    if len(np.unique(y[ok])) < 2:  # one class seen: the head can only predict it
        acc = float(np.mean(data.test[s][t] == (y[ok][0] if ok.any() else 0)))
        return acc, acc
    head = LogisticHead().fit(data.X_pool[idx][ok], y[ok])
    classes = np.asarray(head.classes_)
    P = head.predict_proba(data.X_test[t])
    raw = float(np.mean(classes[P.argmax(1)] == data.test[s][t]))
    uniform = np.full(len(classes), 1.0 / len(classes))  # class_weight="balanced" trains so
    pi = em_prior(head.predict_proba(data.X_pool), uniform)
    adjusted = float(np.mean(classes[(P * (pi / uniform)).argmax(1)] == data.test[s][t]))
    return raw, adjusted


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="a folder with labels.csv and several sets")
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--budgets", default="10,20")
    ap.add_argument("--cache-dir", default=str(REPO / "var" / "cache" / "simulate"))
    args = ap.parse_args()
    budgets = [int(b) for b in args.budgets.split(",")]
    data = load_multitask(args.data, DEFAULT_BACKBONE, args.cache_dir, print)
    names = [s.name for s in data.label_sets]
    res: dict[tuple, list[float]] = {}
    for seed in range(args.seeds):
        picks = {"coverage": coverage(None, data.X_pool, max(budgets), random_state=seed),
                 "random": np.random.default_rng(seed).permutation(len(data.X_pool))}
        for how, order in picks.items():
            for b in budgets:
                for s in names:
                    raw, adj = scores(data, s, order[:b])
                    res.setdefault((how, b, s, "raw"), []).append(raw)
                    res.setdefault((how, b, s, "em"), []).append(adj)
    print(f"held-out accuracy (%), mean ± std over {args.seeds} seeds")
    print(f"{'labels':>6} {'set':10} {'coverage':>11} {'cov+EM':>11} {'random':>11} {'rnd+EM':>11}")
    for b in budgets:
        for s in names:
            cells = [res[(how, b, s, v)] for how in ("coverage", "random") for v in ("raw", "em")]
            text = " ".join(f"{np.mean(c) * 100:5.1f}±{np.std(c) * 100:4.1f}" for c in cells)
            print(f"{b:>6} {s:10} {text}")


if __name__ == "__main__":
    main()
