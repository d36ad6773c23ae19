"""Metrics against hand-computed values and scikit-learn."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, brier_score_loss, f1_score, roc_auc_score

from pyro_hea.infer.metrics import classification_metrics, expected_calibration_error, reconstruction_metrics


def _binary(p1):
    p1 = np.asarray(p1, dtype=float)
    return np.column_stack([1 - p1, p1])


def test_binary_metrics_by_hand():
    y = np.array([1, 0, 1, 0])
    probs = _binary([0.9, 0.3, 0.4, 0.2])
    m = classification_metrics(y, probs)
    assert m["n"] == 4
    assert m["accuracy"] == pytest.approx(0.75)  # the third alloy is missed
    # AUC: positives score 0.9 and 0.4, negatives 0.3 and 0.2: all 4 pairs ordered right.
    assert m["auc"] == pytest.approx(1.0)
    # F1 of class 1: precision 1/1, recall 1/2.
    assert m["f1"] == pytest.approx(2 * 1 * 0.5 / 1.5)
    # Brier of the single-phase probability: mean of (p1 - y)^2.
    assert m["brier"] == pytest.approx((0.01 + 0.09 + 0.36 + 0.04) / 4)


def test_binary_metrics_match_sklearn():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    p1 = np.clip(0.6 * y + 0.4 * rng.random(200), 0, 1)
    m = classification_metrics(y, _binary(p1))
    assert m["accuracy"] == pytest.approx(accuracy_score(y, p1 > 0.5))
    assert m["auc"] == pytest.approx(roc_auc_score(y, p1))
    assert m["f1"] == pytest.approx(f1_score(y, (p1 > 0.5).astype(int)))
    assert m["brier"] == pytest.approx(brier_score_loss(y, p1))


def test_four_class_metrics_match_sklearn():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 4, 300)
    logits = rng.normal(size=(300, 4)) + 2.0 * np.eye(4)[y]
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    m = classification_metrics(y, probs)
    assert m["accuracy"] == pytest.approx(accuracy_score(y, probs.argmax(1)))
    assert m["auc"] == pytest.approx(roc_auc_score(y, probs, multi_class="ovr"))
    assert m["f1"] == pytest.approx(f1_score(y, probs.argmax(1), average="macro"))
    # Multi-class Brier: squared distance to the one-hot label, summed over classes.
    assert m["brier"] == pytest.approx(np.mean(np.sum((probs - np.eye(4)[y]) ** 2, axis=1)))
    assert 0.5 < m["auc"] < 1.0


def test_auc_is_nan_when_a_class_is_absent():
    assert math.isnan(classification_metrics(np.array([1, 1]), _binary([0.8, 0.6]))["auc"])
    probs = np.full((3, 4), 0.25)
    assert math.isnan(classification_metrics(np.array([0, 1, 2]), probs)["auc"])


def test_expected_calibration_error_by_hand():
    # Confidences 0.55, 0.65, 0.95, 0.95 fall in the bins (0.5, 0.6], (0.6, 0.7], (0.9, 1.0].
    y = np.array([1, 1, 1, 0])
    probs = _binary([0.55, 0.35, 0.95, 0.05])  # predicted 1, 0 (wrong), 1, 0
    expected = 0.25 * abs(1 - 0.55) + 0.25 * abs(0 - 0.65) + 0.5 * abs(1 - 0.95)
    assert expected_calibration_error(y, probs) == pytest.approx(expected)
    assert expected == pytest.approx(0.3)


def test_expected_calibration_error_bins_are_closed_on_the_right():
    # 0.6 belongs to (0.5, 0.6] together with 0.55; 0.61 does not.
    y = np.array([1, 0])
    assert expected_calibration_error(y, _binary([0.55, 0.4])) == pytest.approx(abs(1.0 - 0.575))
    assert expected_calibration_error(y, _binary([0.55, 0.39])) == pytest.approx(0.5 * 0.45 + 0.5 * 0.39)


def test_expected_calibration_error_matches_a_direct_loop():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 500)
    probs = _binary(rng.random(500))
    conf, correct = probs.max(1), (probs.argmax(1) == y)
    ece = 0.0
    for lo in np.arange(10) / 10:
        inside = (conf > lo) & (conf <= lo + 0.1) if lo > 0 else (conf <= 0.1)
        if inside.any():
            ece += inside.mean() * abs(correct[inside].mean() - conf[inside].mean())
    assert expected_calibration_error(y, probs) == pytest.approx(ece)
    perfect = np.eye(2)[y]
    assert expected_calibration_error(y, perfect) == 0.0


def test_reconstruction_metrics_by_hand():
    x = np.array([[50.0, 50.0, 0.0], [100.0, 0.0, 0.0], [30.0, 70.0, 0.0]])
    recon = np.array([[45.0, 54.0, 1.0], [90.0, 5.0, 5.0], [30.0, 69.5, 0.5]])
    m = reconstruction_metrics(x, recon)
    assert m["recon_mae"] == pytest.approx((5 + 4 + 1 + 10 + 5 + 5 + 0 + 0.5 + 0.5) / 9)
    assert m["recon_mae_present"] == pytest.approx(((5 + 4) / 2 + 10 / 1 + (0 + 0.5) / 2) / 3)
    # Element sets at >= 1 at.%: alloy 1 gains the third element (1.0), alloy 2 gains two,
    # alloy 3 keeps {0, 1} (0.5 is below the threshold).
    assert m["recon_set_match"] == pytest.approx(1 / 3)
    assert reconstruction_metrics(x, recon, threshold=1.5)["recon_set_match"] == pytest.approx(2 / 3)


def test_perfect_reconstruction():
    x = np.array([[20.0, 20.0, 20.0, 20.0, 20.0], [25.0, 25.0, 25.0, 25.0, 0.0]])
    m = reconstruction_metrics(x, x.copy())
    assert m == {"recon_mae": 0.0, "recon_mae_present": 0.0, "recon_set_match": 1.0}
