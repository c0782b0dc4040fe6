"""A project with several label sets, on the worker: which head the product uses, and the joint
``auto`` ranking. Plain data in, plain data out; no Django, like the rest of worker/.

**The head.** :func:`worker.ml.head_selection.choose_head` cross-validates independent heads (a
softmax head per single-choice set, a binary head per tag) against a multi-task head (one small
shared layer on the embeddings, an output layer per set; Caruana 1997) on the project's own
labels, and the retrain keeps the winner: its predictions become every set's suggestions, it
ranks the pool, and it goes into the model download beside the independent heads. Whether
sharing helps depends on the sets and on the number of labels, so nothing here is a constant:
with too few labels for a cross-validation (fewer than two folds of
``head_selection.MIN_FOLD_SIZE``), the independent heads are used and the choice says why. The
choice and its figures are stored on the model version (``metrics["head_choice"]``); the next
retrains keep it until the labels have grown by half (REDECIDE_GROWTH), then decide again.

**The ranking.** With ``auto``, the pool is ranked by
:func:`worker.ml.joint_strategies.joint_auto`: the mean over sets of each set's rank-normalised
uncertainty (tags scored per tag), with the single-set ``auto``'s cold start (coverage of the
shared embedding space) and batch diversity. Other strategies rank on the primary set's head as
before, and a project with one set never comes here (it ranks exactly as it always did).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from worker.ml.head_selection import MULTITASK, HeadChoice, fit_heads
from worker.ml.joint_strategies import joint_select
from worker.ml.label_sets import MULTI, SINGLE, LabelSet, unlabeled
from worker.set_learning import prediction_rows, rows_to_arrays

#: A choice stands until the labelled items grow by this factor: the cross-validation costs
#: about as much as a few dozen retrains (two head types, K folds, every set), and a geometric
#: schedule bounds its total cost by a constant times the last one, whatever the label count.
REDECIDE_GROWTH = 1.5


@dataclass
class Plan:
    """Every set's labels aligned with the labelled embedded items (the ML core's encoding)."""

    label_sets: list[LabelSet]
    set_ids: list[int]  # the labeler set id of each entry of label_sets; the primary first
    names: list[str]  # the sets' names, for people
    class_ids: list[list[int]]  # each set's class ids, in its LabelSet.classes order
    item_ids: np.ndarray  # labelled (in any set) and embedded, sorted
    rows: np.ndarray  # their rows in the embedding store
    labels: dict[str, np.ndarray]


def plan_labels(job: dict[str, Any], ids: np.ndarray) -> Plan:
    """The primary set (``job["primary"]``: id and class ids; ``items``/``labels``) and every
    planned other set (``job["sets"]``), as :mod:`worker.ml.label_sets` arrays."""
    primary = job["primary"]
    entries = [(int(primary["id"]), SINGLE, list(primary["classes"]), list(job["items"]),
                list(job["labels"]), primary.get("name", ""))]
    entries += [(int(s["id"]), s["kind"], list(s["classes"]), list(s["items"]),
                 list(s["targets"]), s.get("name", "")) for s in job.get("sets", [])]
    every = np.unique(np.concatenate([np.asarray(e[3], dtype=np.int64) for e in entries]))
    item_ids = every[np.isin(every, ids)]
    label_sets, labels = [], {}
    for set_id, kind, classes, items, targets, _ in entries:
        s = LabelSet(str(set_id), kind, tuple(str(c) for c in classes))
        y = unlabeled(s, len(item_ids))
        col = {c: j for j, c in enumerate(classes)}
        at = np.searchsorted(item_ids, np.asarray(items, dtype=np.int64))
        for pos, item, target in zip(at.tolist(), items, targets, strict=True):
            if pos >= len(item_ids) or item_ids[pos] != item:
                continue  # not embedded yet
            if kind == MULTI:
                y[pos] = 0
                y[pos, [col[t] for t in target if t in col]] = 1
            elif target in col:
                y[pos] = col[target]
        label_sets.append(s)
        labels[s.name] = y
    return Plan(label_sets, [e[0] for e in entries], [e[5] or str(e[0]) for e in entries],
                [e[2] for e in entries], item_ids, np.searchsorted(ids, item_ids), labels)


def _standing(previous: dict[str, Any] | None, plan: Plan) -> HeadChoice | None:
    """The last version's cross-validated choice, while it still stands: same sets, and the
    labels have not grown by REDECIDE_GROWTH since it was made."""
    if not previous or not previous.get("n_folds") or previous.get("error"):
        return None
    if set(previous.get("per_set") or {}) != {s.name for s in plan.label_sets}:
        return None
    if len(plan.item_ids) >= REDECIDE_GROWTH * previous["n_labeled"]:
        return None
    return HeadChoice(previous["kind"], previous["scores"], previous["per_set"],
                      previous["n_folds"], previous["n_labeled"], previous.get("reason", ""))


def choose_and_fit(plan: Plan, matrix, previous: dict[str, Any] | None = None
                   ) -> tuple[Any, HeadChoice, bool]:
    """The head, fitted on every label (head_selection.fit_heads): the last version's choice
    while it stands (``previous``, see :func:`_standing`), else a new cross-validated one.
    Returns (model, choice, whether the choice was made now)."""
    X = np.asarray(matrix[plan.rows], dtype=np.float32)
    standing = _standing(previous, plan)
    model, choice = fit_heads(plan.label_sets, X, plan.labels, choice=standing)
    return model, choice, standing is None


def joint_rank(model: Any, plan: Plan, ids: np.ndarray, matrix, *, query_pool: int,
               retrain_every: int) -> np.ndarray:
    """The next ``query_pool`` items unlabelled in every set, by joint ``auto``, best first."""
    rows = np.flatnonzero(~np.isin(ids, plan.item_ids))
    if not len(rows):
        return np.zeros(0, dtype=np.int64)
    X_pool = np.asarray(matrix[rows], dtype=np.float32)
    X_lab = np.asarray(matrix[plan.rows], dtype=np.float32)
    order = joint_select("auto", model, X_pool, min(len(rows), query_pool),
                         label_sets=plan.label_sets, X_labeled=X_lab, batch_size=retrain_every,
                         random_state=0)
    return ids[rows[order]].astype(np.int64)


def predictions(model: Any, plan: Plan, ids: np.ndarray, matrix, chunk: int = 20000
                ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]] | None:
    """The chosen model's predictions of every embedded item: the primary set's (class id,
    confidence) and the other sets' result arrays (worker.set_learning.rows_to_arrays).
    None when the primary set has no head in ``model``."""
    names = [s.name for s in plan.label_sets]
    parts: dict[str, list[np.ndarray]] = {n: [] for n in names}
    for start in range(0, len(matrix), chunk):
        P = model.predict_proba(np.asarray(matrix[start : start + chunk], dtype=np.float32))
        for n in names:
            if n in P:
                parts[n].append(P[n])
    primary = plan.label_sets[0].name
    if not parts[primary]:
        return None
    arrays: dict[str, np.ndarray] = {}
    predicted = confidence = None
    for s, set_id, classes in zip(plan.label_sets, plan.set_ids, plan.class_ids, strict=True):
        if not parts[s.name]:
            continue
        proba = np.concatenate(parts[s.name])
        columns = ([int(c) for c in classes] if s.is_multi else
                   [int(classes[j]) for j in model.set_model(s.name).classes_])
        if s.name == primary:
            best = proba.argmax(axis=1)
            predicted = np.asarray(columns, dtype=np.int64)[best]
            confidence = proba[np.arange(len(best)), best].astype(np.float64)
        else:
            arrays.update(rows_to_arrays(set_id, prediction_rows(s.kind, columns, proba, ids)))
    return predicted, confidence, arrays


def choice_record(choice: HeadChoice, plan: Plan) -> dict[str, Any]:
    """The choice as stored on the version, with the sets' names beside their ids."""
    record = choice.as_dict()
    record["set_names"] = {str(i): n for i, n in zip(plan.set_ids, plan.names, strict=True)}
    return record


@dataclass
class Joint:
    """What the retrain takes from the several sets: the choice (JSON-ready), the joint ranking
    (None: the strategy is not ``auto``), and, when the multi-task head won, its model and its
    predictions (primary class and confidence per embedded item; the other sets' arrays)."""

    choice: dict[str, Any]
    ranked: np.ndarray | None
    model: Any = None
    predicted: np.ndarray | None = None
    confidence: np.ndarray | None = None
    arrays: dict[str, np.ndarray] | None = None


def learn_jointly(job: dict[str, Any], ids: np.ndarray, matrix, *, query_pool: int,
                  retrain_every: int) -> Joint:
    """Choose the head by cross-validation, rank with joint ``auto``, predict with the winner."""
    plan = plan_labels(job, ids)
    previous = job.get("previous_choice")
    model, choice, new = choose_and_fit(plan, matrix, previous)
    ranked = (joint_rank(model, plan, ids, matrix, query_pool=query_pool,
                         retrain_every=retrain_every) if job["strategy"] == "auto" else None)
    record = choice_record(choice, plan)
    record["decided_at"] = job.get("number") if new else previous.get("decided_at")
    record["labels_now"] = int(len(plan.item_ids))
    joint = Joint(record, ranked)
    if choice.kind == MULTITASK:
        got = predictions(model, plan, ids, matrix)
        if got is not None:
            joint.model = model
            joint.predicted, joint.confidence, joint.arrays = got
    return joint
