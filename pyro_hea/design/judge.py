"""An independent judge of designed alloys: gradient-boosted trees on the descriptors.

The judge is a scikit-learn :class:`~sklearn.ensemble.HistGradientBoostingClassifier`
trained on the 8 raw physics descriptors of **every labelled alloy** of a
dataset (training, validation and test rows alike). It never generates and
never selects a model, so using all labels does not leak into any reported
model metric; it only gives a second opinion on designed alloys, from a model
family (trees) that shares neither weights nor inductive bias with the VAE.
It does share the data's label noise: where the labels are wrong, both
models learn the same mistake.

The trees run on one thread: on a small, shared CPU, OpenMP threads that
wait on each other cost far more than they bring.

Examples
--------
>>> from pyro_hea.data.datasets import load_dataset
>>> df = load_dataset("pei2020")
>>> judge = Judge.fit(df)
>>> judge.predict_proba(df[list(DESCRIPTOR_NAMES)].to_numpy()[:2]).shape
(2, 2)
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from threadpoolctl import threadpool_limits

from pyro_hea.data.descriptors import DESCRIPTOR_NAMES
from pyro_hea.errors import PyroHeaError
from pyro_hea.model.tensors import labels_from_frame

__all__ = ["Judge"]


class Judge:
    """Gradient-boosted trees on the 8 descriptors, fit on all labelled alloys.

    Use :meth:`fit`. ``predict_proba`` columns follow the model's class
    indices (column 1 = single-phase for K = 2).
    """

    #: Settings of the trees: modest, since the data has about a thousand alloys.
    PARAMS: ClassVar[dict] = {"max_iter": 200, "learning_rate": 0.05, "max_leaf_nodes": 15, "min_samples_leaf": 10,
              "l2_regularization": 1.0}

    def __init__(self, classifier: HistGradientBoostingClassifier, n_classes: int, n_train: int,
                 descriptors: np.ndarray, labels: np.ndarray):
        self.classifier = classifier
        self.n_classes = n_classes
        self.n_train = n_train
        self._descriptors, self._labels = descriptors, labels

    @classmethod
    def fit(cls, df: pd.DataFrame, n_classes: int = 2, seed: int = 0) -> Judge:
        """Fit on every labelled row of a dataset table.

        Parameters
        ----------
        df : DataFrame
            From :func:`~pyro_hea.data.datasets.load_dataset` (descriptor columns and labels).
        n_classes : int
            2 (single- vs multi-phase) or 4 (BCC / FCC / HCP / multi), as the model.
        seed : int
            Seed of the trees.
        """
        missing = [c for c in DESCRIPTOR_NAMES if c not in df.columns]
        if missing:
            raise PyroHeaError(f"the judge needs descriptor column(s) {missing} in the table")
        y = labels_from_frame(df, n_classes)
        rows = y >= 0
        if len(np.unique(y[rows])) < 2:
            raise PyroHeaError("the judge needs labelled alloys of at least two classes")
        x = df.loc[rows, list(DESCRIPTOR_NAMES)].to_numpy(dtype=float)
        clf = HistGradientBoostingClassifier(random_state=seed, **cls.PARAMS)
        with threadpool_limits(1, user_api="openmp"):
            clf.fit(x, y[rows])
        return cls(clf, n_classes, int(rows.sum()), x, y[rows])

    def predict_proba(self, descriptors: np.ndarray) -> np.ndarray:
        """Class probabilities, shape (n, K), from raw descriptors (n, 8).

        Examples
        --------
        >>> judge.predict_proba(np.zeros((0, 8))).shape  # needs a fitted Judge  # doctest: +SKIP
        (0, 2)
        """
        d = np.asarray(descriptors, dtype=float)
        if d.ndim != 2 or d.shape[1] != len(DESCRIPTOR_NAMES):
            raise PyroHeaError(f"the judge takes (alloys, {len(DESCRIPTOR_NAMES)}) descriptors, got shape {d.shape}")
        out = np.zeros((len(d), self.n_classes))
        if len(d):
            with threadpool_limits(1, user_api="openmp"):
                out[:, self.classifier.classes_] = self.classifier.predict_proba(d)
        return out

    def cross_validated_accuracy(self, folds: int = 5, seed: int = 0) -> float:
        """Accuracy of the judge's settings under stratified k-fold cross-validation.

        How much to trust the judge: this is its accuracy on alloys it did not see.

        Examples
        --------
        >>> 0.5 < judge.cross_validated_accuracy() <= 1.0  # needs a fitted Judge  # doctest: +SKIP
        True
        """
        clf = HistGradientBoostingClassifier(random_state=seed, **self.PARAMS)
        cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
        with threadpool_limits(1, user_api="openmp"):
            pred = cross_val_predict(clf, self._descriptors, self._labels, cv=cv)
        return float(np.mean(pred == self._labels))
