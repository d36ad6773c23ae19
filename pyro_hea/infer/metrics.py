"""Classification, calibration and reconstruction metrics."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, f1_score, log_loss, roc_auc_score

__all__ = ["calibration_bins", "expected_calibration_error", "mean_log_loss", "classification_metrics",
           "reconstruction_metrics"]


def calibration_bins(y_true: np.ndarray, probs: np.ndarray, n_bins: int = 10) -> list[dict]:
    """The non-empty equal-width confidence bins of the predicted class's probability.

    One row per bin with ``lower``, ``upper``, ``n``, ``confidence`` (mean
    probability of the predicted class) and ``accuracy``; the ECE and the
    reliability diagram are both read from these rows.

    Examples
    --------
    >>> calibration_bins(np.array([1, 0]), np.array([[0.2, 0.8], [0.9, 0.1]]), n_bins=5)[0]["upper"]
    0.8
    """
    probs = np.asarray(probs, dtype=float).reshape(len(np.asarray(y_true)), -1)
    confidence = probs.max(axis=1) if probs.size else np.empty(0)
    correct = (probs.argmax(axis=1) == np.asarray(y_true)).astype(float) if probs.size else np.empty(0)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, n_bins - 1)
    rows = []
    for b in range(n_bins):
        in_bin = which == b
        if in_bin.any():
            rows.append({"lower": float(edges[b]), "upper": float(edges[b + 1]), "n": float(in_bin.sum()),
                         "confidence": float(confidence[in_bin].mean()), "accuracy": float(correct[in_bin].mean())})
    return rows


def expected_calibration_error(y_true: np.ndarray, probs: np.ndarray, n_bins: int = 10) -> float:
    """ECE of the predicted class's probability, over the bins of :func:`calibration_bins`.

    Examples
    --------
    >>> expected_calibration_error(np.array([1, 0]), np.array([[0.0, 1.0], [1.0, 0.0]]))
    0.0
    """
    rows = calibration_bins(y_true, probs, n_bins)
    total = sum(r["n"] for r in rows)
    if not total:
        return float("nan")
    return float(sum(r["n"] / total * abs(r["accuracy"] - r["confidence"]) for r in rows))


def mean_log_loss(y_true: np.ndarray, probs: np.ndarray, floor: float = 1e-7) -> float:
    """Mean negative log-probability of the true class, probabilities floored at ``floor`` and renormalized.

    Examples
    --------
    >>> round(mean_log_loss(np.array([1, 0]), np.array([[0.5, 0.5], [1.0, 0.0]])), 4)
    0.3466
    """
    p = np.clip(np.asarray(probs, dtype=float), floor, 1.0)
    return float(log_loss(np.asarray(y_true, dtype=int), p / p.sum(1, keepdims=True), labels=list(range(p.shape[1]))))


def classification_metrics(y_true: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    """Accuracy, ROC AUC (one-vs-rest for K > 2), F1, Brier score and ECE.

    Parameters
    ----------
    y_true : array of int, shape (n,)
        Class indices.
    probs : array, shape (n, K)
        Predicted class probabilities.

    Examples
    --------
    >>> m = classification_metrics(np.array([0, 1, 1]), np.array([[.9, .1], [.2, .8], [.4, .6]]))
    >>> m["accuracy"], m["auc"]
    (1.0, 1.0)
    """
    y_true = np.asarray(y_true, dtype=int)
    probs = np.asarray(probs, dtype=float)
    k = probs.shape[1]
    pred = probs.argmax(axis=1)
    onehot = np.eye(k)[y_true]
    present = np.unique(y_true)
    if k == 2:
        auc = roc_auc_score(y_true, probs[:, 1]) if len(present) == 2 else float("nan")
        f1 = f1_score(y_true, pred, zero_division=0)
    else:
        auc = (roc_auc_score(y_true, probs, multi_class="ovr", labels=list(range(k)))
               if len(present) == k else float("nan"))
        f1 = f1_score(y_true, pred, average="macro", zero_division=0)
    return {
        "n": int(len(y_true)),
        "accuracy": float(accuracy_score(y_true, pred)),
        "auc": float(auc),
        "f1": float(f1),
        "brier": float(np.mean(np.sum((probs - onehot) ** 2, axis=1)) / (2 if k == 2 else 1)),
        "ece": expected_calibration_error(y_true, probs),
    }


def reconstruction_metrics(x_true: np.ndarray, x_recon: np.ndarray, threshold: float = 1.0) -> dict[str, float]:
    """How well compositions (at.%) are reconstructed.

    Returns ``recon_mae`` (mean absolute error in at.% over all element
    slots), ``recon_mae_present`` (over the elements present in the true
    alloy, averaged per alloy) and ``recon_set_match`` (fraction of alloys
    whose set of elements at or above ``threshold`` at.% is exactly right).

    Examples
    --------
    >>> x = np.array([[50.0, 50.0, 0.0]])
    >>> reconstruction_metrics(x, np.array([[45.0, 55.0, 0.0]]))["recon_mae_present"]
    5.0
    """
    x_true = np.asarray(x_true, dtype=float)
    x_recon = np.asarray(x_recon, dtype=float)
    err = np.abs(x_true - x_recon)
    present = x_true > 0
    per_alloy = (err * present).sum(axis=1) / present.sum(axis=1)
    return {
        "recon_mae": float(err.mean()),
        "recon_mae_present": float(per_alloy.mean()),
        "recon_set_match": float(np.mean(np.all((x_true >= threshold) == (x_recon >= threshold), axis=1))),
    }
