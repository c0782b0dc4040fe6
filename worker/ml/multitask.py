"""Heads for several label sets on one shared featurizer: independent heads or one multi-task net.

Both classes share one interface, so the retrain, the strategies and ``simulate`` use either:

* ``Model(label_sets, ...).fit(X, labels)`` — ``labels`` as in :mod:`worker.ml.label_sets`
  (``-1`` = not labeled in that set; an item may be labeled in some sets only);
* ``predict_proba(X) -> {set name: probabilities}`` (single-choice: (n, len(classes_)) columns
  in the set model's ``classes_`` order, the labeled class indices; multi-label: (n, k) per tag);
* ``predict(X) -> {set name: class index (n,) or 0/1 (n, k)}``;
* ``set_model(name)`` — a per-set estimator with ``classes_``, ``class_counts_`` and
  ``predict_proba``, which the single-set query strategies accept; ``None`` if the set has no
  labels yet.  ``fitted_sets_`` lists the sets that have one.

:class:`IndependentHeads` fits one head per set (softmax :class:`~worker.ml.head.LogisticHead`;
:class:`~worker.ml.multilabel.MultiLabelHead` for tags).  :class:`MultiTaskHead` is hard
parameter sharing (Caruana 1997, "Multitask Learning"): one small shared hidden layer on the
embeddings, one output layer per set, trained jointly with each set's loss over the rows it
labels — every set shapes the shared layer, which can help the sets with few or hard labels
and can also hurt the easy ones; :mod:`worker.ml.head_selection` decides per project, by
cross-validation, which of the two to use.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from worker.ml.head import C_GRID, LogisticHead, _l2_normalise, _Scaler
from worker.ml.label_sets import LabelSet, check_labels, labeled_mask
from worker.ml.multilabel import MultiLabelHead

#: Width of the shared layer.  Small on purpose: a few hundred labels per set cannot fit more.
HIDDEN = 128
#: Full-batch Adam steps; the loss has flattened by then on pools from 20 to thousands of labels.
STEPS = 300
LEARNING_RATE = 0.01
#: The multi-task head's inverse regularisation strength when none is given: the middle of the
#: softmax head's CV grid.  :func:`worker.ml.head_selection.fit_heads` passes instead the median
#: ``C`` the independent heads chose by cross-validation on the same labels.
DEFAULT_C = float(np.median(C_GRID))


class IndependentHeads:
    """One head per label set, each fitted on the rows labeled in its set."""

    def __init__(self, label_sets: Sequence[LabelSet], random_state: int | None = 0,
                 cv: int = 5) -> None:
        self.label_sets = list(label_sets)
        self.random_state = random_state
        self.cv = cv

    def fit(self, X: np.ndarray, labels: Mapping[str, np.ndarray]) -> IndependentHeads:
        X = np.asarray(X)
        check_labels(self.label_sets, labels, len(X))
        self.heads_: dict[str, Any] = {}
        for s in self.label_sets:
            y = np.asarray(labels[s.name])
            rows = labeled_mask(s, y)
            if not rows.any():
                continue
            head = (MultiLabelHead(cv=self.cv, random_state=self.random_state) if s.is_multi
                    else LogisticHead(cv=self.cv, random_state=self.random_state))
            self.heads_[s.name] = head.fit(X[rows], y[rows])
        self.fitted_sets_ = list(self.heads_)
        return self

    def set_model(self, name: str) -> Any:
        return self.heads_.get(name)

    def predict_proba(self, X: np.ndarray) -> dict[str, np.ndarray]:
        return {n: h.predict_proba(X) for n, h in self.heads_.items()}

    def predict(self, X: np.ndarray) -> dict[str, np.ndarray]:
        return {n: h.predict(X) for n, h in self.heads_.items()}

    def median_C(self) -> float | None:
        """Median ``C`` the single-choice heads chose by CV (``None`` without one)."""
        cs = [h.C_ for h in self.heads_.values() if isinstance(h, LogisticHead) and h.lr_]
        return float(np.median(cs)) if cs else None


class _SetView:
    """One set of a :class:`MultiTaskHead`, shaped like a single-set head for the strategies."""

    def __init__(self, parent: MultiTaskHead, name: str) -> None:
        self._parent, self._name = parent, name
        self.classes_ = parent.classes_[name]
        self.class_counts_ = parent.class_counts_[name]
        self.is_multi = parent.kinds_[name] == "multi"

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return self._parent.predict_proba(X, only=(self._name,))[self._name]

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self._parent.predict(X, only=(self._name,))[self._name]


class MultiTaskHead:
    """Shared hidden layer + one output layer per set, trained jointly (see the module doc).

    Inputs get the softmax head's normalisation (L2 rows, centred, unit RMS norm).  Training is
    full-batch Adam for ``steps`` steps with an L2 penalty ``1 / (2 C n)`` per weight (the
    logistic head's ``C`` on the mean loss), the sum over sets of each set's mean loss over its
    labeled rows (masks: an unlabeled cell adds nothing): class-balanced cross-entropy for
    single-choice sets (as the softmax head's ``class_weight="balanced"``), binary
    cross-entropy per tag for multi-label sets, whose thresholds are 0.5.
    """

    def __init__(self, label_sets: Sequence[LabelSet], hidden: int = HIDDEN,
                 C: float = DEFAULT_C, steps: int = STEPS, lr: float = LEARNING_RATE,
                 random_state: int | None = 0) -> None:
        self.label_sets = list(label_sets)
        self.hidden = hidden
        self.C = C
        self.steps = steps
        self.lr = lr
        self.random_state = random_state

    def fit(self, X: np.ndarray, labels: Mapping[str, np.ndarray]) -> MultiTaskHead:
        X = np.asarray(X)
        check_labels(self.label_sets, labels, len(X))
        # Rows labeled in no set carry nothing: drop them (also from the input scaling).
        keep = np.zeros(len(X), dtype=bool)
        for s in self.label_sets:
            keep |= labeled_mask(s, np.asarray(labels[s.name]))
        if not keep.any():
            raise ValueError("no labeled items to fit a multi-task head on")
        X = X[keep]
        labels = {s.name: np.asarray(labels[s.name])[keep] for s in self.label_sets}
        self.classes_: dict[str, np.ndarray] = {}
        self.class_counts_: dict[str, np.ndarray] = {}
        self.kinds_ = {s.name: s.kind for s in self.label_sets}
        self.thresholds_: dict[str, np.ndarray] = {}
        targets: list[tuple[str, torch.Tensor, torch.Tensor, torch.Tensor | None]] = []
        for s in self.label_sets:
            y = np.asarray(labels[s.name])
            rows = labeled_mask(s, y)
            if not rows.any():
                continue
            if s.is_multi:
                self.classes_[s.name] = np.arange(len(s.classes))
                self.class_counts_[s.name] = y[rows].sum(axis=0)
                self.thresholds_[s.name] = np.full(len(s.classes), 0.5)
                t = torch.as_tensor(y[rows], dtype=torch.float32)
                targets.append((s.name, torch.as_tensor(np.flatnonzero(rows)), t, None))
            else:
                classes, idx, counts = np.unique(y[rows], return_inverse=True, return_counts=True)
                self.classes_[s.name], self.class_counts_[s.name] = classes, counts
                weight = torch.as_tensor(rows.sum() / (len(classes) * counts), dtype=torch.float32)
                targets.append((s.name, torch.as_tensor(np.flatnonzero(rows)),
                                torch.as_tensor(idx), weight))
        self.fitted_sets_ = [t[0] for t in targets]
        self.n_features_in_ = X.shape[1]
        Xp = _l2_normalise(X)
        self.scaler_ = _Scaler(Xp)
        with _one_thread(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(0 if self.random_state is None else self.random_state)
            self.net_ = self._build()
            self._train(torch.as_tensor(self.scaler_(Xp)), targets)
        self.net_.eval()
        return self

    def _build(self) -> nn.ModuleDict:
        layers: dict[str, nn.Module] = {
            "shared": nn.Sequential(nn.Linear(self.n_features_in_, self.hidden), nn.ReLU())}
        for name in self.fitted_sets_:
            layers["out_" + name] = nn.Linear(self.hidden, len(self.classes_[name]))
        return nn.ModuleDict(layers)

    def _train(self, X: torch.Tensor,
               targets: list[tuple[str, torch.Tensor, torch.Tensor, torch.Tensor | None]]) -> None:
        penalty = 1.0 / (2.0 * self.C * max(len(X), 1))
        params = list(self.net_.parameters())
        weights = [p for p in params if p.ndim == 2]
        opt = torch.optim.Adam(params, lr=self.lr)
        for _ in range(self.steps):
            opt.zero_grad()
            h = self.net_["shared"](X)
            loss = penalty * sum((w * w).sum() for w in weights)
            for name, rows, y, weight in targets:
                logits = self.net_["out_" + name](h[rows])
                if weight is None:
                    loss = loss + nn.functional.binary_cross_entropy_with_logits(logits, y)
                else:
                    loss = loss + nn.functional.cross_entropy(logits, y, weight=weight)
            loss.backward()
            opt.step()

    def set_model(self, name: str) -> _SetView | None:
        return _SetView(self, name) if name in self.fitted_sets_ else None

    def predict_proba(self, X: np.ndarray, only: Sequence[str] | None = None
                      ) -> dict[str, np.ndarray]:
        names = [n for n in self.fitted_sets_ if only is None or n in only]
        out: dict[str, list[np.ndarray]] = {n: [] for n in names}
        with _one_thread(), torch.no_grad():
            for start in range(0, len(X), 65_536):
                Xb = torch.as_tensor(self.scaler_(_l2_normalise(X[start : start + 65_536])))
                h = self.net_["shared"](Xb)
                for name in names:
                    logits = self.net_["out_" + name](h)
                    p = (torch.sigmoid(logits) if self.kinds_[name] == "multi"
                         else torch.softmax(logits, dim=1))
                    out[name].append(p.double().numpy())
        return {n: np.concatenate(v) if v else np.zeros((0, len(self.classes_[n])))
                for n, v in out.items()}

    def predict(self, X: np.ndarray, only: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        out = {}
        for name, P in self.predict_proba(X, only).items():
            out[name] = ((P >= self.thresholds_[name]).astype(np.int8) if name in self.thresholds_
                         else self.classes_[name][P.argmax(axis=1)])
        return out


class _one_thread:
    """Torch on one thread while fitting: small full-batch fits, shared 2-core machines (the
    same reason the retrain limits BLAS to one thread)."""

    def __enter__(self) -> None:
        self._threads = torch.get_num_threads()
        torch.set_num_threads(1)

    def __exit__(self, *exc: object) -> None:
        torch.set_num_threads(self._threads)
