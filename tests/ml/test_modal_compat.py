"""modAL works with current scikit-learn and NumPy through worker.ml.modal_compat."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import warnings

import numpy as np
from sklearn.linear_model import LogisticRegression

from worker.ml import modal_compat as mc


def _data(n: int = 40) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, 4))
    y = (X[:, 0] > 0).astype(int)
    return X, y


def test_active_learner_teach_and_query() -> None:
    X, y = _data()
    learner = mc.ActiveLearner(estimator=LogisticRegression(), X_training=X[:6], y_training=y[:6])
    learner.teach(X[6:10], y[6:10])  # raised TypeError (force_all_finite) before the shim
    learner.teach(X[10:12], y[10:12], only_new=True)
    idx, _ = learner.query(X[12:])
    assert learner.X_training.shape == (10, 4)
    assert 0 <= int(idx[0]) < len(X) - 12


def test_check_x_y_shim_renames_keyword_without_future_warning() -> None:
    X, y = _data(5)
    X[0, 0] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the old name would warn (1.6-1.7) or fail (>= 1.8)
        mc._check_x_y_compat(X, y, force_all_finite=False)


def test_uncertainty_functions_and_ranked_batch() -> None:
    X, y = _data()
    clf = LogisticRegression().fit(X[:20], y[:20])
    assert mc.classifier_margin(clf, X).shape == (len(X),)
    learner = mc.ActiveLearner(estimator=LogisticRegression(), X_training=X[:20], y_training=y[:20])
    idx, _ = mc.uncertainty_batch_sampling(learner, X[20:], n_instances=5)
    assert len(set(idx.tolist())) == 5


def test_expected_error_imports_and_numpy_is_left_clean() -> None:
    assert hasattr(mc.expected_error, "expected_error_reduction")
    assert "float" not in vars(np)
    # A fresh interpreter proves the import path itself (not a cached module) and the cleanup.
    code = textwrap.dedent(
        """
        import numpy as np
        assert not hasattr(np, "float")
        import worker.ml.modal_compat
        import modAL.expected_error
        assert not hasattr(np, "float"), "np.float leaked"
        print("ok")
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_temporary_numpy_float_restores_on_error() -> None:
    try:
        with mc._temporary_numpy_float():
            assert np.float is float  # type: ignore[attr-defined]
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert "float" not in vars(np)
