"""Files a retrain leaves beside a version's head (``MODELS_ROOT/<project>/v<N>.joblib``).

* ``v<N>.eval.joblib`` — the *evaluation head*: the product's head fitted on the version's
  labels except the audit ones, with the ids it was trained on. It is what the version is
  scored with on audit items, now and at every later retrain (labeler.training.comparison),
  so that no version is ever scored on an item it was trained on. Kept apart from the head a
  lead downloads, whose documented bundle stays as it is.
* ``v<N>.oof.npz`` — the version's out-of-fold predictions for its labelled items (item id,
  label given then, predicted class id, its probability, label-error candidate flag): the one
  cross-validation behind its CV accuracy, confusion matrix, label-error list and the map's
  "disagrees" filter.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import joblib
import numpy as np

OOF_KEYS = ("item", "given", "predicted", "confidence", "candidate")


def _sibling(head_file: str | os.PathLike[str], suffix: str) -> Path:
    path = Path(head_file)
    return path.with_name(path.name.removesuffix(".joblib") + suffix)


def eval_head_path(head_file: str | os.PathLike[str]) -> Path:
    return _sibling(head_file, ".eval.joblib")


def oof_path(head_file: str | os.PathLike[str]) -> Path:
    return _sibling(head_file, ".oof.npz")


def _replace(path: Path, write) -> None:
    """Write to a temporary name, then rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    with open(tmp, "wb") as f:
        write(f)
    os.replace(tmp, path)


def save_eval_head(head_file, head, backbone: str, train_ids: np.ndarray) -> None:
    bundle = {
        "head": head, "backbone": backbone, "classes": head.classes_.tolist(),
        "train_ids": np.asarray(train_ids, dtype=np.int64),
    }
    _replace(eval_head_path(head_file), lambda f: joblib.dump(bundle, f))


def load_eval_head(head_file: str) -> dict | None:
    """The evaluation bundle of a version, or None (older versions stored none)."""
    if not head_file:
        return None
    path = eval_head_path(head_file)
    if not path.is_file():
        return None
    try:
        return joblib.load(path)
    except (OSError, EOFError, ValueError) as exc:  # a damaged file: not comparable, not a 500
        import logging

        logging.getLogger("labeler.training").warning("unreadable %s: %s", path, exc)
        return None


def save_oof(head_file, oof: dict) -> None:
    arrays = {k: np.asarray(oof[k]) for k in OOF_KEYS}
    _replace(oof_path(head_file), lambda f: np.savez(f, **arrays))


def load_oof(head_file: str) -> dict | None:
    """The :data:`OOF_KEYS` arrays, aligned, or None when not stored."""
    if not head_file:
        return None
    try:
        with np.load(oof_path(head_file)) as z:
            return {k: z[k] for k in OOF_KEYS}
    except (FileNotFoundError, KeyError, ValueError, OSError):
        return None
