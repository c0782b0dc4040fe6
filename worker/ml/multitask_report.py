"""Tables and plots of a multi-task simulation (:mod:`worker.ml.multitask_simulation`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def _cells(means: list[float], stds: list[float] | None = None) -> str:
    if stds is None:
        return "".join(f"{100 * m:>8.1f}" for m in means)
    return "".join(f"{100 * m:>7.1f}±{100 * s:<4.1f}" for m, s in zip(means, stds, strict=True))


def comparisons(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Joint selection (``auto``) against each other strategy, per set and budget.

    ``set:S`` is compared on the sets other than ``S`` only (the issue's criterion: joint
    selection must beat single-set selection on the sets it was not chosen for).  Each row:
    ``against``, ``set``, ``diffs`` (auto minus other, per budget), ``wins`` (diff >= 0).
    """
    rows = []
    strategies = result["strategies"]
    if "auto" not in strategies:
        return rows
    for other, per_set in strategies.items():
        if other == "auto":
            continue
        for name, r in per_set.items():
            if other == f"set:{name}":
                continue
            diffs = np.asarray(strategies["auto"][name]["mean"]) - np.asarray(r["mean"])
            rows.append({"against": other, "set": name, "diffs": [round(float(d), 4) for d in diffs],
                         "wins": int((diffs >= 0).sum())})
    return rows


def format_multitask(result: dict[str, Any]) -> str:
    """Plain-text tables: per set and strategy (mean ± std), comparisons, heads."""
    budgets = result["budgets"]
    head = f"{'set':<10}{'strategy':<14}" + "".join(f"{b:>12}" for b in budgets)
    lines = ["held-out score per set (%), mean ± std over seeds", head]
    names = [s["name"] for s in result["label_sets"]]
    for name in names:
        for st, per_set in result["strategies"].items():
            r = per_set[name]
            lines.append(f"{name:<10}{st:<14}{_cells(r['mean'], r['std'])}")
        lines.append(f"{name:<10}{'full pool':<14}{100 * (result['full_pool'][name] or 0):>8.1f}")
    comp = comparisons(result)
    if comp:
        lines += ["", "auto minus other (points), per budget",
                  f"{'against':<14}{'set':<10}" + "".join(f"{b:>8}" for b in budgets) + "   wins"]
        for c in comp:
            lines.append(f"{c['against']:<14}{c['set']:<10}{_cells(c['diffs'])}"
                         f"   {c['wins']}/{len(budgets)}")
    for st, h in result.get("heads", {}).items():
        lines += ["", f"heads on the labels chosen by {st} (held-out %)",
                  f"{'set':<10}{'head':<14}" + "".join(f"{b:>8}" for b in budgets)]
        for name in names:
            for kind in ("independent", "multitask", "chosen"):
                lines.append(f"{name:<10}{kind:<14}{_cells(h[kind][name]['mean'])}")
        share = "".join(f"{100 * v:>8.0f}" for v in h["multitask_chosen_share"])
        lines.append(f"{'':<10}{'% multitask':<14}{share}")
    return "\n".join(lines)


def plot_multitask(result: dict[str, Any], path: str | Path) -> None:
    """One panel per set: mean ± std per strategy, full-pool line; a second file
    ``<path stem>-heads.png`` with independent vs multi-task heads on ``auto``'s labels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    budgets = result["budgets"]
    names = [s["name"] for s in result["label_sets"]]
    path = Path(path)

    def panels(series: dict[str, dict[str, Any]], out: Path, title: str) -> None:
        cols = min(3, len(names))
        rows = (len(names) + cols - 1) // cols
        fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False)
        for ax, name in zip(axes.flat, names, strict=False):
            for label, per_set in series.items():
                m, s = np.asarray(per_set[name]["mean"]), np.asarray(per_set[name]["std"])
                ax.plot(budgets, m, marker="o", ms=3, label=label)
                ax.fill_between(budgets, m - s, m + s, alpha=0.12)
            if result["full_pool"].get(name) is not None:
                ax.axhline(result["full_pool"][name], color="k", ls="--", lw=1)
            ax.set_xscale("log", base=2)
            ax.set_xticks(budgets, [str(b) for b in budgets], fontsize=7)
            ax.set_title(name)
            ax.grid(alpha=0.3)
        for ax in list(axes.flat)[len(names):]:
            ax.axis("off")
        axes.flat[0].legend(fontsize=7)
        fig.suptitle(title, fontsize=10)
        fig.supxlabel("labels (one visit labels every set)", fontsize=9)
        fig.tight_layout()
        fig.savefig(out, dpi=110)
        plt.close(fig)

    what = f"{Path(result['data'] or '').name} · {result['backbone']} · {result['seeds']} seeds"
    panels(result["strategies"], path, f"{what} · held-out score per set (dashed: full pool)")
    if "auto" in result.get("heads", {}):
        h = result["heads"]["auto"]
        panels({k: h[k] for k in ("independent", "multitask", "chosen")},
               path.with_name(path.stem + "-heads" + path.suffix),
               f"{what} · heads on auto's labels")
