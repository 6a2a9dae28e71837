"""The baseline every reviewer asks for: a logistic regression on patients' pooled DEN features.

For the base weights (never trained on these labels) and the trained weights, each patient's pooled vector (mean
then max over tumour slices, as extraction computes it) feeds a standardised, class-balanced logistic regression,
(a) fitted on the training patients and scored on the validation patients, the same split as the network, and
(b) cross-validated over all patients (stratified folds). For the trained weights (b) is optimistic: the weights
have seen the training patients' labels.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..errors import DENError
from ..result import pooled_vector
from .cache import CachedCase
from .evaluation import classification_metrics

MAX_FOLDS = 5


def require_scikit_learn() -> None:
    """Raise a one-line :class:`DENError` if scikit-learn (the ``train`` extra) is missing."""
    try:
        import sklearn  # noqa: F401
    except ImportError:
        raise DENError("scikit-learn", "not installed; the logistic-regression baseline needs it: "
                                       "pip install -e '.[train]' from a DENExtractor checkout") from None


def pooled_features(cases: list[CachedCase], features_of: Callable[[CachedCase], np.ndarray]) -> np.ndarray:
    """(patients, 8192): every patient's pooled vector from ``features_of(case)``, its (slices, 4096) features."""
    return np.stack([pooled_vector(features, np.arange(len(features))) for features in map(features_of, cases)])


def linear_probe(features: np.ndarray, labels: np.ndarray, is_train: np.ndarray, class_count: int, seed: int) -> dict:
    """Validation metrics of a probe fitted on the training patients, and cross-validated metrics over all."""
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    probe = _probe(seed)
    probe.fit(features[is_train], labels[is_train])
    split = classification_metrics(_full_probabilities(probe, features[~is_train], class_count), labels[~is_train],
                                   class_count)
    folds = int(min(MAX_FOLDS, np.bincount(labels).min()))
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    out_of_fold = cross_val_predict(_probe(seed), features, labels, cv=splitter, method="predict_proba")
    cross_validated = classification_metrics(out_of_fold, labels, class_count)
    return {"validation_split": split, "cross_validation": dict(cross_validated, folds=folds)}


def _probe(seed: int):
    """Standardise, then a class-balanced L2 logistic regression (lbfgs, deterministic)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(class_weight="balanced", max_iter=5000, random_state=seed))


def _full_probabilities(probe, features: np.ndarray, class_count: int) -> np.ndarray:
    """Probabilities for every class index (a class absent from the fit gets 0)."""
    probabilities = np.zeros((len(features), class_count))
    probabilities[:, probe.classes_] = probe.predict_proba(features)
    return probabilities
