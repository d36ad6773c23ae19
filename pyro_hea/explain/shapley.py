"""SHAP values of the classifier head q(y | x) over the 8 physics descriptors.

:func:`shap_values` explains the classifier with SHAP (an optional dependency:
``pip install -e ".[shap]"``). The value function is the interventional one: a
coalition S of descriptors keeps the alloy's own values, the others are drawn
from a background sample of training alloys. With 8 features the explanation
is exact (2^8 coalitions), and :func:`exact_shapley_values` computes the same
numbers by brute force, without shap, as a check.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import torch

from pyro_hea.data.descriptors import DESCRIPTOR_LABELS, DESCRIPTOR_NAMES
from pyro_hea.diagnostics.plots import save_figure
from pyro_hea.explain.common import SHAP_EXTRA_HINT, ExplainError, ShapMissingError, _positive_class

__all__ = ["alloy_explanations", "background_sample", "classifier_function", "exact_shapley_values",
           "global_importance", "plot_alloy_explanation", "plot_shap_bar", "plot_shap_beeswarm", "shap_values"]


def _require_shap():
    try:
        import shap
    except ImportError:
        raise ShapMissingError(
            "SHAP explanations need the optional package 'shap', which is not installed; "
            f"install the extra with: {SHAP_EXTRA_HINT}"
        ) from None
    return shap



# ---------------------------------------------------------------------------- SHAP
def classifier_function(model, positive: int | None = None, output: str = "probability") -> Callable:
    """The classifier head as a function of the 8 raw descriptors.

    Parameters
    ----------
    model : PhaseModel
        A trained model whose classifier reads only the descriptors.
    positive : int, optional
        Class whose output is explained; 1 (single-phase) by default.
    output : {"probability", "logit"}
        Explain q(y = positive | x), or its log-odds log q / (1 - q).

    Returns
    -------
    callable
        ``f(descriptors) -> array (n,)`` for raw descriptors of shape (n, 8)
        in their physical units; they are standardized with the model's
        scaler before the classifier sees them. Standardizing is affine per
        feature, so Shapley values on raw and standardized inputs agree.

    Examples
    --------
    >>> f = classifier_function(model)                          # needs a trained model and shap  # doctest: +SKIP
    >>> f(df[list(DESCRIPTOR_NAMES)].to_numpy()[:3]).shape      # doctest: +SKIP
    (3,)
    """
    if output not in ("probability", "logit"):
        raise ExplainError(f"output must be 'probability' or 'logit', got {output!r}")
    if model.vae.config.classifier_uses_composition:
        raise ExplainError(
            "this model's classifier also reads the composition (classifier_uses_composition=True); "
            "SHAP over the 8 descriptors alone is defined only for a descriptor-only classifier"
        )
    positive = _positive_class(model, positive)
    classifier, scaler = model.vae.classifier, model.scaler

    def f(descriptors: np.ndarray) -> np.ndarray:
        raw = np.asarray(descriptors, dtype=float)
        if raw.ndim != 2 or raw.shape[1] != len(DESCRIPTOR_NAMES):
            raise ExplainError(f"expected descriptors of shape (n, {len(DESCRIPTOR_NAMES)}), got {raw.shape}")
        features = torch.tensor(scaler.transform(raw), dtype=torch.float32)
        with torch.no_grad():
            logits = classifier(features.new_zeros(len(raw), len(model.vocabulary)), features)
            logp = torch.log_softmax(logits, dim=-1)
        p = logp[:, positive]
        if output == "probability":
            return p.exp().double().numpy()
        # log q - log(1 - q), stable for q near 0 or 1
        rest = torch.logsumexp(torch.cat([logp[:, :positive], logp[:, positive + 1:]], dim=1), dim=1)
        return (p - rest).double().numpy()

    return f


def background_sample(model, df: pd.DataFrame, split: pd.Series | None = None, n: int = 100,
                      seed: int = 0) -> np.ndarray:
    """Raw descriptors of up to ``n`` training alloys, the SHAP background.

    Training alloys are the ``labelled`` and ``unlabelled`` rows of
    ``split`` (all rows when ``split`` is None).

    Examples
    --------
    >>> background_sample(model, df, split, n=50).shape   # needs a trained model and shap  # doctest: +SKIP
    (50, 8)
    """
    if split is not None:
        df = df[pd.Series(split, index=df.index).isin(["labelled", "unlabelled"]).to_numpy()]
    if len(df) == 0:
        raise ExplainError("no training alloy to draw the SHAP background from")
    if n < 1:
        raise ExplainError(f"the background needs at least 1 alloy, got n={n}")
    rows = np.random.default_rng(seed).permutation(len(df))[: min(n, len(df))]
    return df[list(DESCRIPTOR_NAMES)].to_numpy(dtype=float)[np.sort(rows)]


def exact_shapley_values(f: Callable, X: np.ndarray, background: np.ndarray) -> tuple[np.ndarray, float]:
    """Exact interventional Shapley values by enumerating every coalition.

    The value of coalition S for alloy x is the mean of ``f`` over the
    background rows with the features in S replaced by x's. Costs
    2^d evaluations of ``f`` on the background per alloy; d must be at most 12.

    Parameters
    ----------
    f : callable
        Maps an array (m, d) to outputs (m,).
    X : array (n, d)
        Alloys to explain.
    background : array (b, d)
        Reference rows.

    Returns
    -------
    values : array (n, d)
        Shapley values; each row sums to f(x) minus the base value.
    base_value : float
        Mean of ``f`` over the background.

    Examples
    --------
    >>> f = lambda a: a[:, 0] + 2 * a[:, 1]
    >>> phi, base = exact_shapley_values(f, np.array([[1.0, 1.0]]), np.zeros((1, 2)))
    >>> phi.tolist(), base
    ([[1.0, 2.0]], 0.0)
    """
    X = np.atleast_2d(np.asarray(X, dtype=float))
    background = np.atleast_2d(np.asarray(background, dtype=float))
    d = X.shape[1]
    if background.shape[1] != d:
        raise ExplainError(f"X has {d} features but the background has {background.shape[1]}")
    if d > 12:
        raise ExplainError(f"exact Shapley values enumerate 2^d coalitions; d={d} is too many (at most 12)")
    masks = np.array(list(itertools.product([0, 1], repeat=d)), dtype=bool)  # (2^d, d)
    index = {tuple(m): i for i, m in enumerate(masks)}
    sizes = masks.sum(axis=1)
    weight = np.array([math.factorial(s) * math.factorial(d - s - 1) / math.factorial(d) for s in range(d)])
    b = len(background)
    values = np.zeros_like(X)
    base_value = float(np.mean(f(background)))
    for n, x in enumerate(X):
        # every coalition's hybrid rows at once: (2^d * b, d)
        hybrid = np.where(masks[:, None, :], x[None, None, :], background[None, :, :]).reshape(-1, d)
        v = np.asarray(f(hybrid), dtype=float).reshape(len(masks), b).mean(axis=1)
        for j in range(d):
            without = np.flatnonzero(~masks[:, j])
            with_j = [index[tuple(np.where(np.arange(d) == j, True, masks[i]))] for i in without]
            values[n, j] = np.sum(weight[sizes[without]] * (v[with_j] - v[without]))
    return values, base_value


def shap_values(model, alloys, background: np.ndarray, positive: int | None = None,
                output: str = "probability"):
    """SHAP values of the classifier head over the 8 descriptors.

    Uses shap's exact explainer with an independent (interventional)
    masker over ``background``: for 8 descriptors every coalition is
    evaluated, so the result equals :func:`exact_shapley_values`.

    Parameters
    ----------
    model : PhaseModel
    alloys : DataFrame, list of formulas, AlloyTensors or array (n, 8)
        Alloys to explain (an array is taken as raw descriptors).
    background : array (b, 8)
        Raw descriptors of reference alloys (:func:`background_sample`).
    positive : int, optional
        Class to explain, 1 (single-phase) by default.
    output : {"probability", "logit"}
        Explain the probability or the log-odds.

    Returns
    -------
    shap.Explanation
        ``values`` (n, 8), ``base_values`` (n,), ``data`` the raw descriptors,
        ``feature_names`` the descriptor names.

    Raises
    ------
    ShapMissingError
        If shap is not installed (``pip install -e ".[shap]"``).

    Examples
    --------
    >>> bg = background_sample(model, df, split, n=50)           # needs a trained model and shap  # doctest: +SKIP
    >>> ex = shap_values(model, df[split == "test"], bg)         # doctest: +SKIP
    >>> ex.values.shape                                          # doctest: +SKIP
    (106, 8)
    """
    shap = _require_shap()
    f = classifier_function(model, positive, output)
    X = _descriptor_array(model, alloys)
    background = np.atleast_2d(np.asarray(background, dtype=float))
    if background.shape[1] != len(DESCRIPTOR_NAMES):
        raise ExplainError(f"the background must have {len(DESCRIPTOR_NAMES)} descriptor columns, got {background.shape}")
    masker = shap.maskers.Independent(background, max_samples=len(background))
    explainer = shap.explainers.Exact(f, masker, feature_names=list(DESCRIPTOR_NAMES))
    explanation = explainer(X, silent=True)
    explanation.feature_names = list(DESCRIPTOR_NAMES)
    return explanation


def _descriptor_array(model, alloys) -> np.ndarray:
    if isinstance(alloys, np.ndarray):
        X = np.atleast_2d(alloys.astype(float))
        if X.shape[1] != len(DESCRIPTOR_NAMES):
            raise ExplainError(f"an array of alloys must hold the {len(DESCRIPTOR_NAMES)} raw descriptors, got {X.shape}")
        return X
    if isinstance(alloys, pd.DataFrame) and all(c in alloys.columns for c in DESCRIPTOR_NAMES):
        return alloys[list(DESCRIPTOR_NAMES)].to_numpy(dtype=float)
    return model.tensors(alloys).descriptors.double().numpy()


def global_importance(explanation) -> pd.Series:
    """Mean absolute SHAP value per descriptor, largest first.

    Examples
    --------
    >>> global_importance(ex).index[0]   # needs a trained model and shap  # doctest: +SKIP
    'delta'
    """
    values = np.abs(np.asarray(explanation.values)).mean(axis=0)
    return pd.Series(values, index=list(explanation.feature_names), name="mean_abs_shap").sort_values(ascending=False)


def alloy_explanations(explanation, names: Sequence[str] | None = None) -> pd.DataFrame:
    """Per-alloy explanations as a table: base value, one SHAP column per descriptor, output.

    The output column (``f(x)``) equals the base value plus the row's SHAP
    values: the prediction the classifier head makes for that alloy.

    Examples
    --------
    >>> alloy_explanations(ex, names=test_df["formula"]).loc["CoCrFeMnNi"]   # needs a trained model and shap  # doctest: +SKIP
    """
    values = np.asarray(explanation.values)
    base = np.broadcast_to(np.asarray(explanation.base_values, dtype=float), (len(values),))
    table = pd.DataFrame(values, columns=list(explanation.feature_names))
    table.insert(0, "base_value", base)
    table["output"] = base + values.sum(axis=1)
    if names is not None:
        names = list(names)
        if len(names) != len(table):
            raise ExplainError(f"got {len(names)} names for {len(table)} explained alloys")
        table.index = pd.Index(names, name="alloy")
    return table


def _pretty(explanation):
    ex = explanation
    ex.feature_names = [DESCRIPTOR_LABELS.get(n, n) for n in explanation.feature_names]
    return ex


def plot_shap_bar(explanation, path: str | os.PathLike, title: str | None = None) -> None:
    """Bar chart of the global importance (mean |SHAP|) per descriptor, saved as PNG.

    Examples
    --------
    >>> plot_shap_bar(ex, "shap_bar.png")   # needs a trained model and shap  # doctest: +SKIP
    """
    import matplotlib.pyplot as plt
    import seaborn as sns

    importance = global_importance(explanation)
    fig, ax = plt.subplots(figsize=(6.5, 4))
    labels = [DESCRIPTOR_LABELS.get(n, n) for n in importance.index]
    sns.barplot(x=importance.to_numpy(), y=labels, color="C0", ax=ax)
    ax.set_xlabel(f"mean |SHAP value| ({_output_label(explanation)})")
    ax.set_ylabel("descriptor")
    target = getattr(explanation, "_pyro_hea_target", "single-phase")
    ax.set_title(title or f"Global importance of the descriptors for q({target} | x)")
    ax.grid(axis="x", alpha=0.3)
    save_figure(fig, path)


def _output_label(explanation) -> str:
    return getattr(explanation, "_pyro_hea_output", "change in q(single-phase | x)")


def plot_shap_beeswarm(explanation, path: str | os.PathLike, title: str | None = None) -> None:
    """SHAP beeswarm: one dot per alloy and descriptor, coloured by the descriptor's value.

    Examples
    --------
    >>> plot_shap_beeswarm(ex, "shap_beeswarm.png")   # needs a trained model and shap  # doctest: +SKIP
    """
    import copy

    import matplotlib.pyplot as plt

    shap = _require_shap()
    fig = plt.figure(figsize=(7.5, 4.8))
    ex = _pretty(copy.copy(explanation))
    shap.plots.beeswarm(ex, max_display=len(DESCRIPTOR_NAMES), show=False, plot_size=None,
                        color_bar_label="descriptor value (low → high)")
    ax = fig.axes[0]
    ax.set_xlabel(f"SHAP value ({_output_label(explanation)})")
    ax.set_title(title or "SHAP values of the classifier head, per alloy")
    save_figure(fig, path)


def plot_alloy_explanation(explanation, index: int, path: str | os.PathLike, name: str | None = None) -> None:
    """Waterfall plot of one alloy's explanation: from the base value to its prediction.

    Examples
    --------
    >>> plot_alloy_explanation(ex, 0, "alloy_0.png", name="CoCrFeMnNi")   # needs a trained model and shap  # doctest: +SKIP
    """
    import copy

    import matplotlib.pyplot as plt

    shap = _require_shap()
    if not 0 <= index < len(explanation.values):
        raise ExplainError(f"alloy index {index} is outside 0..{len(explanation.values) - 1}")
    fig = plt.figure(figsize=(7.5, 4.5))
    ex = _pretty(copy.copy(explanation))
    shap.plots.waterfall(ex[index], max_display=len(DESCRIPTOR_NAMES), show=False)
    fig = plt.gcf()
    fig.suptitle(f"Why {name or f'alloy {index}'}: {_output_label(explanation)}", y=1.02)
    save_figure(fig, path)


