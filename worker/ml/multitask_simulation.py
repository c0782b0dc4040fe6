"""Active-learning simulation with several label sets: joint selection, and which heads to use.

``simulate --data DIR`` on a ``labels.csv`` with several label sets (or a multi-label one) and
no ``--label-set`` runs this (see :mod:`worker.ml.datasets` for the layout).  The loop is the
single-set one of :func:`worker.ml.simulation.run_curve` — ``query_pool`` items ranked per
retrain, a retrain every ``retrain_every`` labels, a share ``audit_share`` of uniformly random
audit items — except that one visit reveals the item's labels in *every* set, and the ranking
comes from a joint strategy (:mod:`worker.ml.joint_strategies`): ``auto`` (joint selection),
``random``, or ``set:NAME`` (the single-set ``auto`` for one set only).  The heads that rank are
:class:`~worker.ml.multitask.IndependentHeads` (only the sets a strategy looks at are refitted
between budgets); at each budget every set's head is refitted and scored on the held-out images
(accuracy; mean average precision for multi-label sets).  On the labels of ``auto`` and
``random`` the simulation also fits the :class:`~worker.ml.multitask.MultiTaskHead` and runs the
product's cross-validated choice (:func:`~worker.ml.head_selection.choose_head`), reporting the
held-out score of each and of the chosen one.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from worker.ml.datasets import Split, read_multitask
from worker.ml.head_selection import INDEPENDENT, MULTITASK, choose_head, score_model
from worker.ml.joint_strategies import JOINT_STRATEGIES, joint_select
from worker.ml.label_sets import LabelSet
from worker.ml.multitask import DEFAULT_C, IndependentHeads, MultiTaskHead
from worker.ml.simulation import cache_folder, embed_split

#: Strategies whose labels are also used for the heads comparison: the product's default.
HEADS_ON = ("auto",)


@dataclass
class MultiEmbedded:
    """Embeddings and labels of every set, ready for the multi-task simulation."""

    label_sets: list[LabelSet]
    X_pool: np.ndarray
    pool: dict[str, np.ndarray]
    X_test: np.ndarray
    test: dict[str, np.ndarray]


def load_multitask(data_dir: str | Path, backbone: str, cache_dir: str | Path,
                   progress: Any, multi_label: tuple[str, ...] = ()) -> MultiEmbedded:
    """Read the table and embed pool and held-out images through the single-set cache."""
    from worker.ml.backbones import get_spec

    sets, pool, held = read_multitask(data_dir, multi_label)
    folder = cache_folder(cache_dir, data_dir, get_spec(backbone).name)
    loaded: list[Any] = []

    def get_featurizer() -> Any:
        if not loaded:
            from worker.ml.featurizer import Featurizer

            loaded.append(Featurizer(backbone))
        return loaded[0]

    out = []
    for split, name in ((pool, "pool"), (held, "heldout")):
        X, ok = embed_split(Split(split.paths, np.zeros(len(split.paths))), name, folder,
                            get_featurizer, progress)
        out.append((X[ok], {k: v[ok] for k, v in split.labels.items()}))
    return MultiEmbedded(sets, out[0][0], out[0][1], out[1][0], out[1][1])


def _needs(strategy: str, sets: Sequence[LabelSet]) -> list[LabelSet]:
    """The sets whose heads a strategy's ranking looks at (refitted at every retrain)."""
    if strategy == "random":
        return []
    if strategy.startswith("set:"):
        return [s for s in sets if s.name == strategy[4:]]
    return list(sets)


def run_joint_curve(data: MultiEmbedded, strategy: str, budgets: Sequence[int], seed: int, *,
                    retrain_every: int, query_pool: int, audit_share: float,
                    compare_heads: bool = False) -> dict[str, Any]:
    """Held-out score per set at each budget (and, with ``compare_heads``, per head type)."""
    sets = data.label_sets
    rng = np.random.default_rng(seed)
    N = len(data.X_pool)
    labeled = np.zeros(N, dtype=bool)
    order: list[int] = []
    model: IndependentHeads | None = None
    needed = _needs(strategy, sets)
    scores: dict[str, list[float | None]] = {s.name: [] for s in sets}
    heads: dict[str, dict[str, list[float | None]]] = {
        k: {s.name: [] for s in sets} for k in (INDEPENDENT, MULTITASK, "chosen")}
    choices: list[str] = []
    for budget in budgets:
        budget = min(budget, N)
        while len(order) < budget:
            size = min(retrain_every, budget - len(order))
            unl = np.flatnonzero(~labeled)
            lab = np.asarray(order, dtype=np.int64)
            ranked = iter(unl[joint_select(strategy, model, data.X_pool[unl],
                                           min(query_pool, len(unl)), label_sets=sets,
                                           X_labeled=data.X_pool[lab], random_state=rng,
                                           batch_size=retrain_every)])
            for _ in range(size):
                item = None
                if rng.random() >= audit_share:
                    item = next((i for i in ranked if not labeled[i]), None)
                if item is None:
                    item = int(rng.choice(np.flatnonzero(~labeled)))
                labeled[item] = True
                order.append(int(item))
            lab = np.asarray(order, dtype=np.int64)
            fit_sets = sets if len(order) == budget else needed
            if fit_sets:
                model = IndependentHeads(fit_sets, random_state=seed).fit(
                    data.X_pool[lab], {s.name: data.pool[s.name][lab] for s in fit_sets})
        assert model is not None
        lab = np.asarray(order, dtype=np.int64)
        got = score_model(model, sets, data.X_test, data.test)
        for name, v in got.items():
            scores[name].append(v)
        if compare_heads:
            y = {s.name: data.pool[s.name][lab] for s in sets}
            mt = MultiTaskHead(sets, C=model.median_C() or DEFAULT_C, random_state=seed)
            mt_got = score_model(mt.fit(data.X_pool[lab], y), sets, data.X_test, data.test)
            choice = choose_head(sets, data.X_pool[lab], y, random_state=seed).kind
            choices.append(choice)
            for name in scores:
                heads[INDEPENDENT][name].append(got[name])
                heads[MULTITASK][name].append(mt_got[name])
                heads["chosen"][name].append(mt_got[name] if choice == MULTITASK else got[name])
    out: dict[str, Any] = {"scores": scores}
    if compare_heads:
        out["heads"] = heads
        out["choices"] = choices
    return out


def _one_curve(data: MultiEmbedded, st: str, seed: int, budgets: Sequence[int],
               kwargs: dict[str, Any]) -> dict[str, Any]:
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        t0 = time.time()
        out = run_joint_curve(data, st, budgets, seed, compare_heads=st in HEADS_ON, **kwargs)
    out["seconds"] = round(time.time() - t0, 1)
    return out


def _run_all(data: MultiEmbedded, tasks: list[tuple[str, int]], budgets: Sequence[int],
             jobs: int, progress: Any, checkpoints: Path | None = None,
             **kwargs: Any) -> list[dict[str, Any]]:
    """Every (strategy, seed) curve, in ``jobs`` processes; progress as each one ends.

    With ``checkpoints`` (a folder), each finished curve is saved there and a rerun with the
    same settings reuses it: an interrupted long simulation loses at most the running curves.
    """
    def saved(task: tuple[str, int]) -> Path | None:
        if checkpoints is None:
            return None
        key = json.dumps([list(budgets), sorted(kwargs.items()), len(data.X_pool),
                          [(s.name, s.kind, s.classes) for s in data.label_sets]])
        tag = hashlib.sha1(key.encode()).hexdigest()[:8]
        return checkpoints / f"{task[0].replace(':', '_')}-seed{task[1]}-{tag}.json"

    def done(task: tuple[str, int], r: dict[str, Any]) -> dict[str, Any]:
        shown = " ".join(f"{n}:{v[-1]:.3f}" for n, v in r["scores"].items() if v[-1] is not None)
        progress(f"{task[0]} seed {task[1]} ({r['seconds']:.0f}s), at {budgets[-1]}: {shown}")
        path = saved(task)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(r))
        return r

    results: dict[tuple[str, int], dict[str, Any]] = {}
    for task in tasks:
        path = saved(task)
        if path is not None and path.is_file():
            results[task] = json.loads(path.read_text())
            progress(f"{task[0]} seed {task[1]}: reused {path}")
    todo = [t for t in tasks if t not in results]
    if jobs <= 1 or len(todo) <= 1:
        for task in todo:
            results[task] = done(task, _one_curve(data, *task, budgets, kwargs))
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        # spawn, not fork: torch's thread pools do not survive a fork reliably
        with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = {pool.submit(_one_curve, data, *t, budgets, kwargs): t for t in todo}
            for f in as_completed(futures):
                results[futures[f]] = done(futures[f], f.result())
    return [results[t] for t in tasks]


def _summary(curves: list[list[float | None]]) -> dict[str, Any]:
    arr = np.asarray([[np.nan if v is None else v for v in c] for c in curves], dtype=float)
    return {"mean": [round(float(v), 4) for v in np.nanmean(arr, axis=0)],
            "std": [round(float(v), 4) for v in np.nanstd(arr, axis=0)],
            "per_seed": [[round(float(v), 4) for v in c] for c in arr]}


def simulate_multitask(data_dir: str | Path | None, strategies: Sequence[str],
                       budgets: Sequence[int], seeds: int, backbone: str, cache_dir: str | Path,
                       retrain_every: int, query_pool: int, audit_share: float, progress: Any,
                       multi_label: tuple[str, ...] = (),
                       embedded: MultiEmbedded | None = None, jobs: int = 1,
                       checkpoints: str | Path | None = None) -> dict[str, Any]:
    """Run every strategy for ``seeds`` seeds; the JSON-ready result (see the module doc).

    ``jobs`` > 1 runs (strategy, seed) curves in that many processes; each curve has its own
    seeded generator, so the numbers are those of a sequential run.  ``checkpoints``: a folder
    where finished curves are kept, so that a rerun resumes (see :func:`_run_all`).
    """
    from threadpoolctl import threadpool_limits

    t_start = time.time()
    data = embedded or load_multitask(data_dir or "", backbone, cache_dir, progress, multi_label)
    names = [s.name for s in data.label_sets]
    for st in strategies:
        if st not in JOINT_STRATEGIES and not (st.startswith("set:") and st[4:] in names):
            raise ValueError(f"unknown strategy {st!r} for several label sets; choose from "
                             f"{', '.join(JOINT_STRATEGIES)} or set:NAME with NAME one of "
                             f"{', '.join(names)}")
    N = len(data.X_pool)
    budgets = sorted({min(int(b), N) for b in budgets if int(b) > 0})
    if not budgets:
        raise ValueError("no positive budget given")
    if retrain_every < 1 or query_pool < 1 or not 0.0 <= audit_share < 1.0:
        raise ValueError("need retrain_every >= 1, query_pool >= 1 and 0 <= audit_share < 1")
    with threadpool_limits(limits=1, user_api="blas"):
        progress(f"full-pool heads on {N} items ...")
        full = IndependentHeads(data.label_sets).fit(data.X_pool, data.pool)
        full_scores = score_model(full, data.label_sets, data.X_test, data.test)
        progress("full pool: " + ", ".join(f"{k} {v:.3f}" for k, v in full_scores.items()
                                           if v is not None))
        # seed by seed: the first seeds of every strategy finish first
        tasks = [(st, seed) for seed in range(seeds) for st in strategies]
        runs = dict(zip(tasks, _run_all(
            data, tasks, budgets, jobs, progress,
            checkpoints=None if checkpoints is None else Path(checkpoints),
            retrain_every=retrain_every, query_pool=query_pool, audit_share=audit_share),
            strict=True))
    results: dict[str, Any] = {}
    heads: dict[str, Any] = {}
    for st in strategies:
        got = [runs[st, seed] for seed in range(seeds)]
        results[st] = {n: _summary([r["scores"][n] for r in got]) for n in names}
        if st in HEADS_ON:
            heads[st] = {k: {n: _summary([r["heads"][k][n] for r in got]) for n in names}
                         for k in (INDEPENDENT, MULTITASK, "chosen")}
            heads[st]["multitask_chosen_share"] = [
                round(float(np.mean([r["choices"][b] == MULTITASK for r in got])), 4)
                for b in range(len(budgets))]
    return {
        "mode": "multitask",
        "data": str(Path(data_dir).resolve()) if data_dir else None,
        "backbone": backbone,
        "label_sets": [{"name": s.name, "kind": s.kind, "classes": list(s.classes)}
                       for s in data.label_sets],
        "pool_size": N,
        "heldout_size": len(data.X_test),
        "budgets": budgets,
        "seeds": seeds,
        "retrain_every": retrain_every,
        "query_pool": query_pool,
        "audit_share": audit_share,
        "metric": "per set, on the held-out images: accuracy (single-choice), mAP (multi-label)",
        "full_pool": {k: None if v is None else round(v, 4) for k, v in full_scores.items()},
        "strategies": results,
        "heads": heads,
        "seconds": round(time.time() - t_start, 1),
    }
