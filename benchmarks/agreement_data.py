"""Datasets of the backbone-agreement experiment, embedded with each backbone through a disk cache.

Folder datasets (``train/<class>/*`` + ``test/``/``validation/``) are read by ``simulate``'s own
scanner; ``fashion-multitask`` is read from its ``labels.csv`` (one label set at a time, the
embeddings shared between sets). Pools and held-out sets larger than ``--max-pool`` /
``--max-heldout`` are subsampled uniformly (fixed seed) to keep CPU embedding affordable; the
subsample is part of the cache signature, so a changed size re-embeds.

    python benchmarks/agreement_data.py --cache /work/bbcache   # embed everything (resumable)
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from worker.ml.simulation import Split, embed_split, scan_dataset  # noqa: E402

SHARED = REPO.parent / "shared" / "datasets"
LITE = ("efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2")
#: name -> (folder, label set or None for a class-folder dataset)
DATASETS = {
    "clothing-small": ("clothing-small", None),
    "flowers": ("flowers", None),
    "fashion-type": ("fashion-multitask", "type"),
    "fashion-colour": ("fashion-multitask", "colour"),
}


def _subsample(split: Split, limit: int, seed: int) -> Split:
    if len(split.paths) <= limit:
        return split
    keep = np.sort(np.random.default_rng(seed).choice(len(split.paths), limit, replace=False))
    return Split([split.paths[i] for i in keep], split.y[keep])


def _csv_splits(folder: Path, label_set: str) -> tuple[list[str], Split, Split]:
    with open(folder / "labels.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    classes = sorted({r[label_set] for r in rows})
    index = {c: i for i, c in enumerate(classes)}

    def split(names: tuple[str, ...]) -> Split:
        chosen = [r for r in rows if r["split"] in names]
        return Split([folder / "images" / r["file"] for r in chosen],
                     np.asarray([index[r[label_set]] for r in chosen], dtype=np.int64))

    return classes, split(("train",)), split(("test", "validation"))


def load(name: str, backbone: str, cache: Path, max_pool: int, max_heldout: int,
         seed: int = 0) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(classes, X_pool, y_pool, X_test, y_test) as float32, embedding what the cache lacks."""
    folder_name, label_set = DATASETS[name]
    folder = SHARED / folder_name
    if label_set is None:
        classes, pool, test = scan_dataset(folder)
    else:
        classes, pool, test = _csv_splits(folder, label_set)
    pool = _subsample(pool, max_pool, seed)
    test = _subsample(test, max_heldout, seed + 1)
    loaded: list = []

    def featurizer():
        if not loaded:
            from worker.ml.featurizer import Featurizer

            loaded.append(Featurizer(backbone))
        return loaded[0]

    # Label sets of one image folder share the embeddings: the cache key is the folder.
    where = cache / f"{folder_name}-{max_pool}-{max_heldout}-{seed}" / backbone
    out = []
    for split, part in ((pool, "pool"), (test, "heldout")):
        X, ok = embed_split(split, part, where, featurizer)
        out += [np.asarray(X, dtype=np.float32), split.y[ok]]
    return classes, *out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", default="/work/bbcache")
    parser.add_argument("--max-pool", type=int, default=1500)
    parser.add_argument("--max-heldout", type=int, default=800)
    parser.add_argument("--datasets", default="clothing-small,fashion-type,flowers")
    args = parser.parse_args(argv)
    for name in args.datasets.split(","):
        for backbone in LITE:
            classes, Xp, yp, Xt, yt = load(name, backbone, Path(args.cache), args.max_pool,
                                           args.max_heldout)
            print(f"{name} {backbone}: pool {Xp.shape}, held-out {Xt.shape}, "
                  f"{len(classes)} classes", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
