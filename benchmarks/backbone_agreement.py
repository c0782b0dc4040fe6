"""Does the backbone check, run on 100 labels, pick the backbone that is best on the full pool?

For each dataset and installed EfficientNet-Lite backbone, the "truth" is what
``simulate --backbone NAME`` reports as full-pool accuracy: the product's head trained on every
pool label, scored on the held-out images. The check's advice is simulated as a project on the
default backbone (lite0) would get it: 100 pool items drawn uniformly at random (one draw per
seed) are "labeled", and :func:`~worker.ml.transferability.assess_backbones` says which
backbone to use (its recommendation, or staying on lite0 when it recommends nothing).

Agreement, per draw (also: not significantly worse than the best on the held-out items, paired):
- strict: the backbone the check leaves you on is the full-pool best;
- within 1 point: its full-pool accuracy is within MIN_GAIN (the smallest gain the check acts
  on) of the best, i.e. the advice costs the user less than a point.
Also reported: how often the check's top CV backbone and the top LogME backbone are the full-pool
best (rankings, not advice), and how often it (wrongly) warned that transfer does not fit.

    python benchmarks/backbone_agreement.py [--seeds 10] [--labels 100] [--cache /work/bbcache]
        [--datasets clothing-small,fashion-type,fashion-colour,flowers] [--json out.json]
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
sys.path.insert(0, str(REPO / "benchmarks"))

from agreement_data import DATASETS, LITE, load  # noqa: E402

from worker.ml.head import LogisticHead  # noqa: E402
from worker.ml.transferability import (  # noqa: E402
    MIN_GAIN,
    Z_ONE_SIDED_95,
    assess_backbones,
    paired_gain,
)


def held_out_correct(Xp, yp, Xt, yt) -> np.ndarray:
    """Per held-out item: does the head trained on every pool label get it right?"""
    return LogisticHead(random_state=0).fit(Xp, yp).predict(Xt) == yt


def run_dataset(name: str, args) -> dict:
    data = {b: load(name, b, Path(args.cache), args.max_pool, args.max_heldout) for b in LITE}
    y_pool, y_test = data[LITE[0]][2], data[LITE[0]][4]
    for b in LITE:  # a file that failed for one backbone would misalign the rows
        assert np.array_equal(data[b][2], y_pool) and np.array_equal(data[b][4], y_test), b
    correct = {b: held_out_correct(*data[b][1:]) for b in LITE}
    full = {b: float(c.mean()) for b, c in correct.items()}
    best = max(full, key=full.get)
    # Held-out sets are finite too: a backbone whose per-item difference from the best is not
    # significantly negative (one-sided 95 %, paired) is "as good as the best" on this data.
    tied = set()
    for b in LITE:
        gain, se = paired_gain(correct[b].astype(float), correct[best].astype(float))
        if b == best or gain > -Z_ONE_SIDED_95 * se:
            tied.add(b)
    draws = []
    for seed in range(args.seeds):
        rows = np.random.default_rng(1000 + seed).choice(len(y_pool), args.labels, replace=False)
        feats = {b: data[b][1][rows] for b in LITE}
        res = assess_backbones(feats, y_pool[rows], current=LITE[0], seed=seed)
        chosen = res["recommended"] or LITE[0]
        by = {r["backbone"]: r for r in res["rows"]}
        draws.append({
            "seed": seed, "chosen": chosen, "recommended": res["recommended"],
            "top_cv": res["best"], "top_logme": max(by, key=lambda b: by[b]["logme"]),
            "transfer_fits": res["transfer_fits"],
            "cv_accuracy": {b: by[b]["cv_accuracy"] for b in LITE},
            "strict": chosen == best, "tied_with_best": chosen in tied, "within_1pt": full[best] - full[chosen] <= MIN_GAIN + 1e-9,
            "regret_points": round(100 * (full[best] - full[chosen]), 2),
        })
        print(f"  {name} seed {seed}: chosen {chosen} (recommended {res['recommended']}), "
              f"top CV {res['best']}, regret {draws[-1]['regret_points']:.1f} pts", flush=True)
    n = len(draws)
    return {
        "dataset": name, "classes": len(data[LITE[0]][0]), "pool": int(len(y_pool)),
        "heldout": int(len(y_test)), "full_pool_accuracy": {b: round(v, 4) for b, v in full.items()},
        "full_pool_best": best, "as_good_as_best": sorted(tied),
        "agree_tied": sum(d["tied_with_best"] for d in draws) / n,
        "agree_strict": sum(d["strict"] for d in draws) / n,
        "agree_within_1pt": sum(d["within_1pt"] for d in draws) / n,
        "top_cv_is_best": sum(d["top_cv"] == best for d in draws) / n,
        "top_logme_is_best": sum(d["top_logme"] == best for d in draws) / n,
        "switch_advised": sum(d["recommended"] is not None for d in draws) / n,
        "warned_no_fit": sum(not d["transfer_fits"] for d in draws) / n,
        "mean_regret_points": round(float(np.mean([d["regret_points"] for d in draws])), 2),
        "draws": draws,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", default="/work/bbcache")
    parser.add_argument("--datasets", default="clothing-small,fashion-type,fashion-colour,flowers")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--labels", type=int, default=100)
    parser.add_argument("--max-pool", default="*=1500",
                        help="pool subsample per dataset (name=N, * for the rest)")
    parser.add_argument("--max-heldout", default="*=800")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)

    def per(spec: str, name: str) -> int:
        table = dict(part.split("=") for part in spec.split(","))
        return int(table.get(name, table["*"]))

    t0 = time.time()
    results = []
    with threadpool_limits(limits=1, user_api="blas"):
        for name in args.datasets.split(","):
            ns = argparse.Namespace(**vars(args))
            folder = DATASETS[name][0]  # label sets of one folder share its subsample
            ns.max_pool = per(args.max_pool, folder)
            ns.max_heldout = per(args.max_heldout, folder)
            results.append(run_dataset(name, ns))
    head = (f"| dataset | pool / held-out | full-pool accuracy {' / '.join(LITE)} | best | "
            f"check chose (of {args.seeds} draws of {args.labels} labels) | agree (strict) | "
            "agree (within 1 pt) | agree (not significantly worse) | top CV = best | "
            "top LogME = best | mean regret |")
    print(head)
    print("|" + "---|" * 11)
    for r in results:
        acc = " / ".join(f"{100 * r['full_pool_accuracy'][b]:.1f}" for b in LITE)
        chosen = {}
        for d in r["draws"]:
            chosen[d["chosen"]] = chosen.get(d["chosen"], 0) + 1
        chose = ", ".join(f"{b.replace('efficientnet-', '')} x{k}" for b, k in sorted(chosen.items()))
        print(f"| {r['dataset']} | {r['pool']} / {r['heldout']} | {acc} | "
              f"{r['full_pool_best'].replace('efficientnet-', '')} | {chose} | "
              f"{100 * r['agree_strict']:.0f} % | {100 * r['agree_within_1pt']:.0f} % | "
              f"{100 * r['agree_tied']:.0f} % | "
              f"{100 * r['top_cv_is_best']:.0f} % | {100 * r['top_logme_is_best']:.0f} % | "
              f"{r['mean_regret_points']:.1f} pts |")
    total = sum(len(r["draws"]) for r in results)
    strict = sum(r["agree_strict"] * len(r["draws"]) for r in results) / total
    within = sum(r["agree_within_1pt"] * len(r["draws"]) for r in results) / total
    tied = sum(r["agree_tied"] * len(r["draws"]) for r in results) / total
    print(f"\noverall: strict agreement {100 * strict:.0f} %, within 1 point {100 * within:.0f} %, "
          f"not significantly worse than the best {100 * tied:.0f} % "
          f"of {total} draws ({time.time() - t0:.0f} s)")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
