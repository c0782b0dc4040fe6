"""The light head trained on frozen embeddings: multinomial logistic regression.

Why logistic regression: on frozen pretrained features a linear probe is the standard, strong
transfer-learning baseline (Kornblith et al. 2019, "Do Better ImageNet Models Transfer Better?"),
it trains in well under a second on thousands of labels, and its probabilities are reasonably
calibrated (Niculescu-Mizil & Caruana 2005), which uncertainty sampling relies on.

Choices that make it robust from the first label on:

* rows are L2-normalised, centred on the labeled mean and divided by one global scale (the RMS
  norm of the centred rows) — the "CL2N" normalisation of SimpleShot (Wang et al. 2019), so a
  backbone's feature scale never matters.  Deliberately *not* per-feature standardisation: with
  a handful of labels, per-feature standard deviations are estimated from a few rows and blow up
  near-constant, noisy features; on real photos (clothing, EfficientNet-Lite0 features) that
  cost 15-25 accuracy points at 10-40 labels and gained nothing at 3000;
* ``C`` is chosen by a quick stratified cross-validation on *log loss* — a proper scoring rule,
  so the chosen regularisation is the one whose probabilities are best calibrated, not merely
  the one with the luckiest accuracy on a handful of labels;
* ``class_weight="balanced"`` by default, as active learning produces skewed label sets;
* one labeled class gives a constant model (probability 1.0), two labels work, classes with a
  single example work (then ``C`` falls back to a default).
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.optimize import minimize_scalar
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.utils.validation import check_is_fitted

#: Candidate inverse regularisation strengths (features scaled to unit RMS norm), strongest first;
#: from heavy shrinkage (best with ~1 label per class) to nearly none (thousands of labels).
#: CV picks one; ties go to the stronger regularisation.
C_GRID: tuple[float, ...] = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0)
#: Used when the labels do not allow cross-validation (a class with a single example), which
#: means few labels: the strong end of the grid.
DEFAULT_C = 0.3
#: Cross-validation above this many labels uses 3 folds: the choice of C is stable by then and
#: a retrain on thousands of labels must stay quick.
MANY_LABELS = 1_000
#: Rows per block when predicting, so a 1M x 1280 float16 pool is never copied to float32 whole.
PREDICT_BLOCK = 65_536


def _l2_normalise(X: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length, as float32 (float16 storage is upcast here)."""
    X = np.asarray(X, dtype=np.float32)
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    return X / np.maximum(norms, 1e-12)


class _Scaler:
    """Centre on the mean row and divide by one global scale (RMS norm of the centred rows)."""

    def __init__(self, X: np.ndarray) -> None:
        self.mean = X.mean(axis=0)
        rms = float(np.sqrt(((X - self.mean) ** 2).sum(axis=1).mean()))
        self.scale = np.float32(rms if rms > 1e-12 else 1.0)

    def __call__(self, X: np.ndarray) -> np.ndarray:
        return (X - self.mean) / self.scale


def scale_temperature(P: np.ndarray, T: float) -> np.ndarray:
    """softmax(log P / T): the probabilities a temperature ``T`` gives (argmax unchanged)."""
    logits = np.log(np.clip(P, 1e-12, None)) / T
    logits -= logits.max(axis=1, keepdims=True)
    E = np.exp(logits)
    return E / E.sum(axis=1, keepdims=True)


def fit_temperature(P: np.ndarray, y_idx: np.ndarray) -> float:
    """Temperature minimising the log loss of out-of-fold probabilities ``P`` (Guo et al. 2017).

    One scalar, so it cannot overfit a handful of labels the way per-class calibration would;
    searched on log T in [-3, 3] (T from 0.05 to 20).
    """
    rows = np.arange(len(y_idx))

    def loss(log_t: float) -> float:
        return float(-np.log(np.clip(scale_temperature(P, np.exp(log_t))[rows, y_idx], 1e-12,
                                     None)).mean())

    return float(np.exp(minimize_scalar(loss, bounds=(-3.0, 3.0), method="bounded").x))


class LogisticHead(ClassifierMixin, BaseEstimator):
    """Logistic-regression head with CV-chosen ``C``; see the module docstring for why.

    Parameters
    ----------
    C: fixed inverse regularisation strength; ``None`` chooses it by cross-validation.
    class_weight: passed to :class:`~sklearn.linear_model.LogisticRegression`.
    cv: maximum number of stratified folds (fewer when the rarest class has fewer examples).
    random_state: seeds the fold split.
    normalize: L2-normalise rows before standardising (recommended for CNN embeddings).
    calibrate: temperature scaling of the probabilities (Guo et al. 2017), the temperature
        fitted on the out-of-fold probabilities of the CV (1.0 when CV is impossible).
    """

    def __init__(
        self,
        C: float | None = None,
        class_weight: str | dict | None = "balanced",
        cv: int = 5,
        random_state: int | None = 0,
        normalize: bool = True,
        calibrate: bool = False,
    ) -> None:
        self.C = C
        self.class_weight = class_weight
        self.cv = cv
        self.random_state = random_state
        self.normalize = normalize
        self.calibrate = calibrate

    # -- fitting ----------------------------------------------------------------------------
    def _prepare(self, X: np.ndarray) -> np.ndarray:
        return _l2_normalise(X) if self.normalize else np.asarray(X, dtype=np.float32)

    def _new_lr(self, C: float) -> LogisticRegression:
        return LogisticRegression(C=C, class_weight=self.class_weight, max_iter=500, tol=1e-3)

    def fit(self, X: np.ndarray, y: np.ndarray) -> LogisticHead:
        """Fit on embeddings ``X`` (n, d) and integer class ids ``y`` (any ints)."""
        X = np.asarray(X)
        y = np.asarray(y)
        if X.ndim != 2 or len(X) != len(y) or len(y) == 0:
            raise ValueError(f"need X (n, d) and y (n,) with n >= 1; got {X.shape} and {y.shape}")
        self.classes_, y_idx, counts = np.unique(y, return_inverse=True, return_counts=True)
        self.n_features_in_ = X.shape[1]
        self.class_counts_ = counts
        self.cv_accuracy_: float | None = None
        self.cv_log_loss_: float | None = None
        self.cv_proba_: np.ndarray | None = None
        self.temperature_ = 1.0
        Xp = self._prepare(X)
        if len(self.classes_) == 1:
            self.C_ = float(self.C) if self.C is not None else DEFAULT_C
            self.scaler_ = None
            self.lr_ = None
            return self
        # Folds by the *typical* class size, not the smallest: active learning leaves some
        # classes with a single label, and skipping CV then forced the strong default C on the
        # whole head (fashion colours, 80 actively chosen labels, one of them Navy Blue:
        # C 0.3, 21 % held-out accuracy; with CV C 3-10).  A class with fewer examples than
        # folds sits in fewer test folds; a held-out example whose class is missing from its
        # fold's training adds the same loss to every C, so it does not sway the choice.
        n_splits = min(self.cv, int(np.median(counts)), 3 if len(y) > MANY_LABELS else self.cv)
        if n_splits >= 2:
            with warnings.catch_warnings():  # small classes sit in fewer folds: see above
                warnings.filterwarnings("ignore", message="The least populated class",
                                        category=UserWarning)
                self.C_ = self._cross_validate(Xp, y_idx, n_splits)
        else:
            self.C_ = float(self.C) if self.C is not None else DEFAULT_C
        self.scaler_ = _Scaler(Xp)
        self.lr_ = self._new_lr(self.C_).fit(self.scaler_(Xp), y_idx)
        if self.calibrate and self.cv_proba_ is not None:
            self.temperature_ = fit_temperature(self.cv_proba_, y_idx)
        return self

    def _cross_validate(self, X: np.ndarray, y_idx: np.ndarray, n_splits: int) -> float:
        """Pick ``C`` by CV log loss (or score the fixed ``C``).

        Records, at the chosen ``C``, the out-of-fold probabilities ``cv_proba_`` (n, k; columns
        in ``classes_`` order) and their accuracy ``cv_accuracy_``: the one cross-validation a
        retrain runs, from which the confusion matrix and label errors are derived as well
        (worker.ml.evaluation), so that every page shows the same number.
        """
        grid = (float(self.C),) if self.C is not None else C_GRID
        n_classes = int(y_idx.max()) + 1
        folds = StratifiedKFold(n_splits, shuffle=True, random_state=self.random_state)
        loss = np.zeros(len(grid))
        oof = np.zeros((len(grid), len(y_idx), n_classes), dtype=np.float32)
        for train, test in folds.split(X, y_idx):
            present = np.unique(y_idx[train])
            if len(present) < 2:  # two classes, one with a single label: a constant model,
                oof[:, test, present[0]] = 1.0  # the same loss at every C
                loss += -np.log(np.clip((y_idx[test] == present[0]).astype(float), 1e-12,
                                        None)).sum()
                continue
            scaler = _Scaler(X[train])
            Xtr, Xte = scaler(X[train]), scaler(X[test])
            lr = self._new_lr(grid[0])
            lr.set_params(warm_start=True)  # walk the C path from strong to weak regularisation
            for j, C in enumerate(grid):
                lr.set_params(C=C).fit(Xtr, y_idx[train])
                proba = np.zeros((len(test), n_classes))
                proba[:, lr.classes_] = lr.predict_proba(Xte)
                p_true = proba[np.arange(len(test)), y_idx[test]]
                loss[j] += -np.log(np.clip(p_true, 1e-12, None)).sum()
                oof[j, test] = proba
        best = int(np.argmin(loss + 1e-9 * np.arange(len(grid))))  # ties -> smaller C
        self.cv_proba_ = oof[best]
        self.cv_accuracy_ = float((self.cv_proba_.argmax(axis=1) == y_idx).mean())
        self.cv_log_loss_ = float(loss[best] / len(y_idx))
        return grid[best]

    # -- prediction -------------------------------------------------------------------------
    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities (n, len(classes_)); rows sum to 1.  Works block-wise on big X."""
        check_is_fitted(self, "classes_")
        X = np.asarray(X)
        if self.lr_ is None:
            return np.ones((len(X), 1), dtype=np.float64)
        out = np.empty((len(X), len(self.classes_)), dtype=np.float64)
        for start in range(0, len(X), PREDICT_BLOCK):
            block = self._prepare(X[start : start + PREDICT_BLOCK])
            out[start : start + len(block)] = self.lr_.predict_proba(self.scaler_(block))
        return out if self.temperature_ == 1.0 else scale_temperature(out, self.temperature_)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Most probable class id for each row."""
        return self.classes_[self.predict_proba(X).argmax(axis=1)]
