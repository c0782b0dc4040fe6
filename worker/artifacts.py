"""Files a retrain leaves beside a version's head (``<models>/<project>/v<N>.joblib``).

* ``v<N>.eval.joblib`` — the *evaluation head*: the product's head fitted on the version's
  labels except the audit ones, with the ids it was trained on. It is what the version is
  scored with on audit items, now and at every later retrain (labeler.training.comparison),
  so that no version is ever scored on an item it was trained on. Kept apart from the head a
  lead downloads, whose documented bundle stays as it is.
* ``v<N>.oof.npz`` — the version's out-of-fold predictions for its labelled items (item id,
  label given then, predicted class id, its probability, label-error candidate flag): the one
  cross-validation behind its CV accuracy, confusion matrix, label-error list and the map's
  "disagrees" filter.

The GPU worker writes them (worker.tasks), the web side reads them; both through
worker.storage, so a head location may be a local path or a storage URL.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from worker import storage

OOF_KEYS = ("item", "given", "predicted", "confidence", "candidate")
logger = logging.getLogger("worker.artifacts")


def _sibling(head_file: str | os.PathLike[str], suffix: str) -> Path:
    path = Path(head_file)
    return path.with_name(path.name.removesuffix(".joblib") + suffix)


def eval_head_path(head_file: str | os.PathLike[str]) -> Path:
    return _sibling(head_file, ".eval.joblib")


def oof_path(head_file: str | os.PathLike[str]) -> Path:
    return _sibling(head_file, ".oof.npz")


def save_eval_head(head_file, head, backbone: str, train_ids: np.ndarray) -> None:
    bundle = {
        "head": head, "backbone": backbone, "classes": head.classes_.tolist(),
        "train_ids": np.asarray(train_ids, dtype=np.int64),
    }
    storage.dump_object(eval_head_path(head_file), bundle)


def load_eval_head(head_file: str) -> dict | None:
    """The evaluation bundle of a version, or None (older versions stored none)."""
    if not head_file:
        return None
    path = eval_head_path(head_file)
    try:
        return storage.load_object(path)
    except FileNotFoundError:
        return None
    except (OSError, EOFError, ValueError) as exc:  # a damaged file: not comparable, not a 500
        logger.warning("unreadable %s: %s", path, exc)
        return None


def save_oof(head_file, oof: dict) -> None:
    storage.save_arrays(oof_path(head_file), **{k: np.asarray(oof[k]) for k in OOF_KEYS})


def load_oof(head_file: str) -> dict | None:
    """The :data:`OOF_KEYS` arrays, aligned, or None when not stored."""
    if not head_file:
        return None
    try:
        arrays = storage.load_arrays(oof_path(head_file))
        return {k: arrays[k] for k in OOF_KEYS}
    except (FileNotFoundError, KeyError, ValueError, OSError):
        return None
