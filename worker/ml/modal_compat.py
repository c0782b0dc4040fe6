"""The one place where modAL is imported and made to work with current scikit-learn and NumPy.

modAL-python 0.4.2.1 (the latest release) predates two upstream renames:

* scikit-learn 1.6 renamed ``check_X_y(force_all_finite=...)`` to ``ensure_all_finite`` and 1.8
  removed the old name, so ``ActiveLearner.teach()`` raises ``TypeError``.  We replace the
  ``check_X_y`` that ``modAL.models.learners`` imported by a wrapper that renames the keyword —
  only when the installed scikit-learn knows the new name, so older releases are untouched.
* NumPy 2 removed ``np.float``, which ``modAL.expected_error`` uses in a default-argument
  annotation, so importing it raises ``AttributeError``.  We provide ``np.float`` only while that
  one module is imported and remove it right after: no global NumPy patch is left behind.

No warnings are silenced.  Everything in labeler imports modAL through this module.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import sys
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import numpy as np
import sklearn.utils
from modAL.models import learners as _learners

_SKLEARN_CHECK_X_Y: Callable[..., Any] = sklearn.utils.check_X_y


def _check_x_y_compat(*args: Any, **kwargs: Any) -> Any:
    """``sklearn.utils.check_X_y`` accepting modAL's old ``force_all_finite`` keyword."""
    if "force_all_finite" in kwargs:
        value = kwargs.pop("force_all_finite")
        kwargs.setdefault("ensure_all_finite", value)
    return _SKLEARN_CHECK_X_Y(*args, **kwargs)


def _needs_check_x_y_shim() -> bool:
    """True when scikit-learn uses ``ensure_all_finite`` (>= 1.6) instead of the old name."""
    return "ensure_all_finite" in inspect.signature(_SKLEARN_CHECK_X_Y).parameters


if _needs_check_x_y_shim():
    _learners.check_X_y = _check_x_y_compat


@contextlib.contextmanager
def _temporary_numpy_float() -> Iterator[None]:
    """Make ``np.float`` resolve (to ``float``) inside the block only, as NumPy < 1.24 did."""
    if "float" in vars(np):  # old NumPy: nothing to do, and nothing to remove afterwards
        yield
        return
    np.float = float  # type: ignore[attr-defined]
    try:
        yield
    finally:
        del np.float  # type: ignore[attr-defined]


def import_expected_error() -> ModuleType:
    """Import ``modAL.expected_error`` (needs ``np.float`` at import time on NumPy 2)."""
    name = "modAL.expected_error"
    if name in sys.modules:
        return sys.modules[name]
    with _temporary_numpy_float():
        return importlib.import_module(name)


expected_error = import_expected_error()

# Re-exports: import these from here, never from modAL directly.
from modAL.batch import uncertainty_batch_sampling  # noqa: E402
from modAL.models import ActiveLearner  # noqa: E402
from modAL.uncertainty import (  # noqa: E402
    classifier_entropy,
    classifier_margin,
    classifier_uncertainty,
    entropy_sampling,
    margin_sampling,
    uncertainty_sampling,
)

__all__ = [
    "ActiveLearner",
    "classifier_entropy",
    "classifier_margin",
    "classifier_uncertainty",
    "entropy_sampling",
    "expected_error",
    "import_expected_error",
    "margin_sampling",
    "uncertainty_batch_sampling",
    "uncertainty_sampling",
]
