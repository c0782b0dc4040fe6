"""Active-learning simulation on a labeled folder: does a strategy beat random, on *your* data?

A folder ``DIR`` holds ``train/<class>/*`` (the pool) and ``test/<class>/*`` and/or
``validation/<class>/*`` (held out; both are used when both exist), or a ``labels.csv`` with one
column per label set, one of which is simulated (``--label-set``; see
:mod:`worker.ml.datasets`).  The simulation runs the
product's own pieces — :class:`~worker.ml.featurizer.Featurizer`,
:class:`~worker.ml.embedding_store.EmbeddingStore`, :class:`~worker.ml.head.LogisticHead` and
:func:`~worker.ml.strategies.select` — not copies: it reveals labels from the folder names as an
oracle would, in the order the product serves items (its ranking of ``query_pool`` items, with
a share of uniformly random audit items), retrains the head every ``retrain_every`` labels as a
project on default settings does, and measures held-out accuracy at each budget.

Embeddings are cached (``<cache>/<data-name>-<hash>/<backbone>/<split>``, ids = position in the
sorted file list) so a second run does not re-embed; a changed file list invalidates the cache.
No Django here: the command line (``python manage.py simulate``, ``python -m
worker.ml.simulate_command``) is :mod:`worker.ml.simulate_command`.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from worker.ml.datasets import Split, scan_dataset
from worker.ml.head import LogisticHead
from worker.ml.strategies import STRATEGIES, select

DEFAULT_BUDGETS = (10, 20, 40, 80, 160, 320, 640)
#: The product's defaults (Project.retrain_every, Project.audit_share, LABELER_QUERY_POOL_SIZE),
#: so that a simulation measures what a project on default settings would get.
RETRAIN_EVERY = 10
AUDIT_SHARE = 0.10
QUERY_POOL_SIZE = 300
#: A strategy "reaches" the full-pool accuracy at the first budget whose mean is >= this share.
REACH_SHARE = 0.95
REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CACHE_DIR = REPO_ROOT / "var" / "cache" / "simulate"

Progress = Callable[[str], None]


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# -- data ------------------------------------------------------------------------------------
@dataclass
class Embedded:
    """Embeddings ready for simulation (failed and unlabeled images dropped)."""

    classes: list[str]
    X_pool: np.ndarray
    y_pool: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray


def cache_folder(cache_dir: str | Path, data_dir: str | Path, backbone: str,
                 mirror: bool = False) -> Path:
    """Cache location for one (data folder, backbone[, mirror test-time augmentation])."""
    root = Path(data_dir).resolve()
    key = hashlib.sha1(str(root).encode()).hexdigest()[:10]
    return Path(cache_dir) / f"{root.name}-{key}" / (backbone + ("+mirror" if mirror else ""))


def _file_signature(paths: Sequence[Path]) -> str:
    """Hash of the split's files as ``<class>/<file>`` + size + mtime.

    Names are taken relative to the split folder, so ``--data ../x`` and ``--data /abs/x`` (the
    same folder, the same cache) do not invalidate each other's embeddings.
    """
    h = hashlib.sha1()
    for p in paths:
        st = p.stat()
        h.update(f"{p.parent.name}/{p.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def embed_split(split: Split, name: str, folder: Path, get_featurizer: Callable[[], Any],
                progress: Progress = _stderr) -> tuple[np.ndarray, np.ndarray]:
    """(float16 embeddings, mask of images that embedded) for a split, through the cache."""
    from worker.ml.embedding_store import EmbeddingStore  # torch-free module, but lazy anyway

    store_dir = folder / name
    store_dir.mkdir(parents=True, exist_ok=True)
    sig_file = store_dir / "files.sha1"
    errors_file = store_dir / "errors.json"
    signature = _file_signature(split.paths)
    store = EmbeddingStore(store_dir)
    if not sig_file.exists() or sig_file.read_text().strip() != signature:
        store.clear()
        errors_file.unlink(missing_ok=True)
        sig_file.write_text(signature)
    errors: dict[str, str] = json.loads(errors_file.read_text()) if errors_file.exists() else {}
    ids = np.arange(len(split.paths), dtype=np.int64)
    todo = [int(i) for i in store.missing(ids) if str(int(i)) not in errors]
    if todo:
        featurizer = get_featurizer()
        progress(f"embedding {len(todo)} {name} images with {featurizer.backbone} "
                 f"(cached in {store_dir})")
        t0 = time.time()
        done = 0
        for batch in featurizer.iter_batches([split.paths[i] for i in todo]):
            if len(batch.indices):
                store.append(np.asarray(todo)[batch.indices], batch.embeddings)
            for pos, msg in batch.errors.items():
                errors[str(todo[pos])] = msg
                progress(f"  skipped {split.paths[todo[pos]]}: {msg}")
            done += len(batch)
            if done % 256 < len(batch) or done == len(todo):
                rate = done / max(time.time() - t0, 1e-9)
                progress(f"  {name}: {done}/{len(todo)} ({rate:.0f} images/s)")
        errors_file.write_text(json.dumps(errors))
        store.compact()
    have, X = store.load(mmap=False)
    ok = np.isin(ids, have)
    return np.asarray(X), ok


def load_embedded(data_dir: str | Path, backbone: str, cache_dir: str | Path = DEFAULT_CACHE_DIR,
                  progress: Progress = _stderr, label_set: str | None = None,
                  mirror: bool = False) -> Embedded:
    """Scan ``data_dir``, embed (or read from cache) pool and held-out images.

    Every listed image is embedded, also those without a label in ``label_set``, so that all
    label sets of a ``labels.csv`` share one cache; unlabeled ones are dropped afterwards.
    ``mirror``: the featurizer's mirror test-time augmentation (a cache of its own).
    """
    from worker.ml.backbones import get_spec

    classes, pool, test = scan_dataset(data_dir, label_set)
    folder = cache_folder(cache_dir, data_dir, get_spec(backbone).name, mirror)
    loaded: list[Any] = []

    def get_featurizer() -> Any:  # loaded once, and only when something needs embedding
        if not loaded:
            from worker.ml.featurizer import Featurizer

            loaded.append(Featurizer(backbone, mirror=mirror))
        return loaded[0]

    out = []
    for split, name in ((pool, "pool"), (test, "heldout")):
        X, ok = embed_split(split, name, folder, get_featurizer, progress)
        y = split.y[ok]
        out.append((X[y >= 0], y[y >= 0]))
    return Embedded(classes, out[0][0], out[0][1], out[1][0], out[1][1])


# -- the simulation --------------------------------------------------------------------------
def run_curve(X_pool: np.ndarray, y_pool: np.ndarray, X_test: np.ndarray, y_test: np.ndarray,
              strategy: str, budgets: Sequence[int], seed: int, *, n_classes: int,
              retrain_every: int = RETRAIN_EVERY, query_pool: int = QUERY_POOL_SIZE,
              audit_share: float = AUDIT_SHARE) -> list[float]:
    """Held-out accuracy at each budget for one strategy and seed, as the product runs it.

    As in the product: the strategy ranks ``query_pool`` unlabeled items (``select`` with the
    current head, or ``None`` before the first retrain); annotators label them in rank order,
    except that a share ``audit_share`` of the items served are drawn uniformly at random
    (audit items, also used for training); after ``retrain_every`` new labels the head is
    retrained and the pool re-ranked.  Accuracy is measured at each budget.  ``random`` never
    reads the head, so for it only the heads measured at a budget are fitted (same result).
    """
    rng = np.random.default_rng(seed)
    N = len(X_pool)
    labeled = np.zeros(N, dtype=bool)
    order: list[int] = []
    model: LogisticHead | None = None
    accs: list[float] = []
    for budget in budgets:
        budget = min(budget, N)
        while len(order) < budget:
            size = min(retrain_every, budget - len(order))
            unl = np.flatnonzero(~labeled)
            lab = np.asarray(order, dtype=np.int64)
            ranked = iter(unl[select(strategy, model, X_pool[unl], min(query_pool, len(unl)),
                                     X_labeled=X_pool[lab], random_state=rng,
                                     n_classes=n_classes, batch_size=retrain_every)])
            for _ in range(size):
                item = None
                if rng.random() >= audit_share:
                    item = next((i for i in ranked if not labeled[i]), None)
                if item is None:  # an audit item (or the ranking ran out): uniform random
                    item = int(rng.choice(np.flatnonzero(~labeled)))
                labeled[item] = True
                order.append(int(item))
            if strategy != "random" or len(order) == budget:
                lab = np.asarray(order, dtype=np.int64)
                model = LogisticHead(random_state=seed).fit(X_pool[lab], y_pool[lab])
        assert model is not None
        accs.append(float((model.predict(X_test) == y_test).mean()))
    return accs


def labels_to_reach(means: Sequence[float], budgets: Sequence[int], target: float) -> int | None:
    """First budget whose mean accuracy is >= ``target``; ``None`` if none is."""
    for b, m in zip(budgets, means, strict=True):
        if m >= target:
            return int(b)
    return None


def simulate(data_dir: str | Path, strategies: Sequence[str], budgets: Sequence[int] = DEFAULT_BUDGETS,
             seeds: int = 3, backbone: str | None = None,
             cache_dir: str | Path = DEFAULT_CACHE_DIR, retrain_every: int = RETRAIN_EVERY,
             query_pool: int = QUERY_POOL_SIZE, audit_share: float = AUDIT_SHARE,
             progress: Progress = _stderr, embedded: Embedded | None = None,
             label_set: str | None = None, mirror: bool = False) -> dict[str, Any]:
    """Run every strategy for ``seeds`` seeds; returns the JSON-ready result (README layout).

    BLAS runs on one thread, as in the worker's retrain: the fits are small, and multithreaded
    BLAS spins and stalls when the cores are busy (a 300-label fit: 13 s instead of 0.9 s on a
    loaded 2-core machine).
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        return _simulate(data_dir, strategies, budgets, seeds, backbone, cache_dir, retrain_every,
                         query_pool, audit_share, progress, embedded, label_set, mirror)


def _simulate(data_dir: str | Path, strategies: Sequence[str], budgets: Sequence[int],
              seeds: int, backbone: str | None, cache_dir: str | Path, retrain_every: int,
              query_pool: int, audit_share: float, progress: Progress,
              embedded: Embedded | None, label_set: str | None,
              mirror: bool) -> dict[str, Any]:
    from worker.ml.backbones import DEFAULT_BACKBONE

    backbone = backbone or DEFAULT_BACKBONE
    for s in strategies:
        if s not in STRATEGIES:
            raise ValueError(f"unknown strategy {s!r}; choose from {', '.join(sorted(STRATEGIES))}")
    t_start = time.time()
    data = embedded or load_embedded(data_dir, backbone, cache_dir, progress, label_set, mirror)
    N = len(data.y_pool)
    budgets = sorted({int(b) for b in budgets if int(b) > 0})
    if not budgets:
        raise ValueError("no positive budget given")
    if retrain_every < 1 or query_pool < 1 or not 0.0 <= audit_share < 1.0:
        raise ValueError("need retrain_every >= 1, query_pool >= 1 and 0 <= audit_share < 1")
    if budgets[-1] > N:
        progress(f"pool has {N} images: budgets above it are clipped")
        budgets = sorted({min(b, N) for b in budgets})
    n_classes = len(data.classes)

    progress(f"full-pool head on {N} labels ...")
    full = LogisticHead(random_state=0).fit(data.X_pool, data.y_pool)
    full_acc = float((full.predict(data.X_test) == data.y_test).mean())
    target = REACH_SHARE * full_acc
    progress(f"full-pool accuracy {full_acc:.4f}; 95% of it = {target:.4f}")

    results: dict[str, Any] = {}
    for strategy in strategies:
        curves = []
        for seed in range(seeds):
            t0 = time.time()
            accs = run_curve(data.X_pool, data.y_pool, data.X_test, data.y_test, strategy, budgets,
                             seed, n_classes=n_classes, retrain_every=retrain_every,
                             query_pool=query_pool, audit_share=audit_share)
            curves.append(accs)
            shown = " ".join(f"{b}:{a:.3f}" for b, a in zip(budgets, accs, strict=True))
            progress(f"{strategy} seed {seed} ({time.time() - t0:.0f}s): {shown}")
        arr = np.asarray(curves)
        mean = arr.mean(axis=0)
        results[strategy] = {
            "mean": [round(float(v), 4) for v in mean],
            "std": [round(float(v), 4) for v in arr.std(axis=0)],
            "per_seed": [[round(float(v), 4) for v in c] for c in curves],
            "labels_to_95pct_full": labels_to_reach(mean, budgets, target),
        }
    return {
        "data": str(Path(data_dir).resolve()) if data_dir else None,
        "label_set": label_set,
        "backbone": backbone,
        "mirror": mirror,
        "classes": data.classes,
        "pool_size": N,
        "heldout_size": len(data.y_test),
        "budgets": budgets,
        "seeds": seeds,
        "retrain_every": retrain_every,
        "query_pool": query_pool,
        "audit_share": audit_share,
        "metric": "accuracy on the held-out images (test/ + validation/)",
        "full_pool_accuracy": round(full_acc, 4),
        "reach_share": REACH_SHARE,
        "strategies": results,
        "seconds": round(time.time() - t_start, 1),
    }


def plot(result: dict[str, Any], path: str | Path) -> None:
    """Learning curves (mean +- std per strategy) with the full-pool line, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    budgets = result["budgets"]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, r in result["strategies"].items():
        m, s = np.asarray(r["mean"]), np.asarray(r["std"])
        ax.plot(budgets, m, marker="o", label=name)
        ax.fill_between(budgets, m - s, m + s, alpha=0.15)
    full = result["full_pool_accuracy"]
    ax.axhline(full, color="k", ls="--", lw=1, label=f"full pool ({result['pool_size']} labels)")
    ax.axhline(result["reach_share"] * full, color="grey", ls=":", lw=1, label="95% of full pool")
    ax.set_xscale("log", base=2)
    shown: list[int] = []
    for b in budgets:  # skip labels that would overlap on the log axis (e.g. 306 next to 320)
        if not shown or b >= 1.25 * shown[-1]:
            shown.append(b)
    ax.set_xticks(shown, [str(b) for b in shown])
    ax.set_xlabel("labels")
    ax.set_ylabel("held-out accuracy")
    name = Path(result["data"] or "").name
    if result.get("label_set"):
        name += f" ({result['label_set']})"
    ax.set_title(f"{name} · {result['backbone']} · "
                 f"{result['seeds']} seeds")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def format_table(result: dict[str, Any]) -> str:
    """Plain-text table: mean ± std per budget for each strategy."""
    budgets = result["budgets"]
    head = f"{'strategy':<16}" + "".join(f"{b:>13}" for b in budgets) + "   95%-of-full"
    lines = [head]
    for name, r in result["strategies"].items():
        cells = "".join(f"{100 * m:>7.1f}±{100 * s:<4.1f} " for m, s in zip(r["mean"], r["std"],
                                                                           strict=True))
        lines.append(f"{name:<16}{cells}  {r['labels_to_95pct_full']}")
    lines.append(f"full pool: {100 * result['full_pool_accuracy']:.1f}% on "
                 f"{result['pool_size']} labels")
    return "\n".join(lines)
