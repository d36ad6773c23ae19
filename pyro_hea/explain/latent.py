"""What the latent space encodes: traversals, the phase map over a latent plane, disentanglement.

- :func:`latent_traversals` decodes along each axis of z at fixed y (multi-phase
  and single-phase) and :func:`plot_latent_traversals` draws the compositions
  as heat maps.
- :func:`phase_probability_map` maps the classifier over a 2-D latent plane.
  q(y | x) depends on x, not z, so it is mapped *through the decoder*: each
  grid point z is decoded with y, the decoded composition is re-featurized and
  classified, giving q(y=1 | x̂(z, y)). (Bayes' p(y | z) is no alternative
  here: y and z are independent under the prior, so p(y | z) is the prior
  p(y) unless an alloy x is also given.)
- :func:`disentanglement_auc` is the cross-validated ROC AUC of a logistic
  regression that predicts y from the posterior mean of z on held-out alloys.
  About 0.5 means z carries no information about the phase (disentangled);
  near 1 means y can be read off z.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from pyro_hea.diagnostics.plots import save_figure
from pyro_hea.explain.common import ExplainError, _positive_class
from pyro_hea.model.tensors import AlloyTensors

__all__ = ["Traversal", "disentanglement_auc", "disentanglement_score", "latent_traversals",
           "phase_probability_map", "plot_latent_traversals", "plot_phase_probability_map", "posterior_means"]


# ------------------------------------------------------------------ latent space
def posterior_means(model, alloys, y: str | np.ndarray = "label") -> np.ndarray:
    """Posterior mean of z for each alloy, shape (n, latent_dim).

    Parameters
    ----------
    model : PhaseModel
    alloys : DataFrame, list of formulas or AlloyTensors
    y : "label", "predicted" or array of int
        The class fed to q(z | x, y): the alloy's label where known (else the
        most probable class), always the most probable class, or given.

    Examples
    --------
    >>> posterior_means(model, ["CoCrFeMnNi"]).shape   # needs a trained model  # doctest: +SKIP
    (1, 2)
    """
    t = model.tensors(alloys)
    if isinstance(y, str):
        if y not in ("label", "predicted"):
            raise ExplainError(f"y must be 'label', 'predicted' or an array of classes, got {y!r}")
        y_used = t.y if y == "label" else torch.full_like(t.y, -1)
        y_used = torch.where(y_used >= 0, y_used, model.vae.predict_proba(t).argmax(-1))
    else:
        y_used = torch.as_tensor(np.asarray(y), dtype=torch.long)
        if y_used.shape != t.y.shape or bool(((y_used < 0) | (y_used >= model.n_classes)).any()):
            raise ExplainError(f"y must hold one class in 0..{model.n_classes - 1} per alloy")
    model.vae.eval()
    loc, _ = model.vae.encode(t, y_used)
    return loc.numpy().astype(float)


@dataclass
class Traversal:
    """Compositions decoded along each latent axis.

    Attributes
    ----------
    values : array (latent_dim, n_points)
        The z values visited on each axis.
    base : array (latent_dim,)
        The point the traversal starts from; other axes stay there.
    ys : tuple of int
        The classes decoded with.
    compositions : array (latent_dim, len(ys), n_points, n_elements)
        Decoded compositions in at.%.
    vocabulary : tuple of str
        Element of each composition column.
    """

    values: np.ndarray
    base: np.ndarray
    ys: tuple[int, ...]
    compositions: np.ndarray
    vocabulary: tuple[str, ...]

    def to_frame(self) -> pd.DataFrame:
        """Long table: axis, y, z value, element, at.%."""
        d, k, n, e = self.compositions.shape
        idx = np.indices((d, k, n, e)).reshape(4, -1)
        return pd.DataFrame({
            "axis": idx[0], "y": np.asarray(self.ys)[idx[1]], "z": self.values[idx[0], idx[2]],
            "element": np.asarray(self.vocabulary)[idx[3]], "at_percent": self.compositions.reshape(-1),
        })


def latent_traversals(model, alloys=None, n_points: int = 11, ys: Sequence[int] | None = None,
                      span: float = 3.0) -> Traversal:
    """Decode along each latent axis at fixed y.

    Parameters
    ----------
    model : PhaseModel
    alloys : optional
        Alloys whose posterior means set the range. Then the traversal
        starts at the median posterior mean and each axis runs over the 2nd
        to 98th percentile of the means on that axis. Without alloys it
        starts at 0 and runs over [-span, span].
    n_points : int
        Points per axis.
    ys : sequence of int, optional
        Classes to decode with; all classes by default (0 = multi-phase,
        1 = single-phase for K = 2).
    span : float
        Half-width of the range without alloys.

    Examples
    --------
    >>> tr = latent_traversals(model, n_points=5)   # needs a trained model  # doctest: +SKIP
    >>> tr.compositions.shape                       # doctest: +SKIP
    (2, 2, 5, 30)
    """
    if n_points < 2:
        raise ExplainError(f"a traversal needs at least 2 points per axis, got n_points={n_points}")
    if not span > 0:
        raise ExplainError(f"span must be positive, got {span}")
    k, d = model.n_classes, model.vae.config.latent_dim
    ys = tuple(range(k)) if ys is None else tuple(int(v) for v in ys)
    if not ys or any(not 0 <= v < k for v in ys):
        raise ExplainError(f"ys must be classes in 0..{k - 1}, got {ys}")
    if alloys is None:
        base = np.zeros(d)
        lo, hi = np.full(d, -span), np.full(d, span)
    else:
        means = posterior_means(model, alloys)
        base = np.median(means, axis=0)
        lo, hi = np.percentile(means, 2, axis=0), np.percentile(means, 98, axis=0)
        hi = np.where(hi - lo > 1e-6, hi, lo + 1e-6)
    values = np.linspace(lo, hi, n_points).T  # (d, n_points)
    z = np.repeat(base[None, None, :], d * n_points, axis=0).reshape(d, n_points, d).copy()
    for axis in range(d):
        z[axis, :, axis] = values[axis]
    z_t = torch.tensor(z, dtype=torch.float32)
    model.vae.eval()
    comps = np.stack([model.vae.decode(z_t, y).numpy() for y in ys], axis=1)  # (d, k, n, E)
    return Traversal(values, base, ys, comps.astype(float), tuple(model.vocabulary))


def plot_latent_traversals(traversal: Traversal, path: str | os.PathLike, top: int = 12,
                           class_names: Sequence[str] | None = None) -> None:
    """Heat maps of the decoded compositions: one row per latent axis, one column per y.

    Only the ``top`` elements with the largest decoded at.% anywhere are shown.

    Examples
    --------
    >>> plot_latent_traversals(latent_traversals(model), "traversals.png")   # needs a trained model  # doctest: +SKIP
    """
    import matplotlib.pyplot as plt

    d, k, n, _ = traversal.compositions.shape
    peak = traversal.compositions.max(axis=(0, 1, 2))
    keep = np.sort(np.argsort(peak)[::-1][: min(top, len(peak))])
    elements = [traversal.vocabulary[i] for i in keep]
    vmax = float(traversal.compositions[..., keep].max())
    names = class_names or [f"y = {y}" for y in traversal.ys]
    fig, axes = plt.subplots(d, k, figsize=(3.4 * k + 1.2, 0.28 * len(elements) * d + 1.4 * d),
                             squeeze=False, sharey=True)
    image = None
    for a in range(d):
        for j in range(k):
            ax = axes[a, j]
            data = traversal.compositions[a, j][:, keep].T  # (elements, n_points)
            image = ax.imshow(data, aspect="auto", cmap="viridis", vmin=0, vmax=vmax, origin="upper")
            ax.set_yticks(range(len(elements)))
            ax.set_yticklabels(elements, fontsize=7)
            ticks = np.linspace(0, n - 1, min(n, 5)).round().astype(int)
            ax.set_xticks(ticks)
            ax.set_xticklabels([f"{traversal.values[a, t]:.1f}" for t in ticks], fontsize=7)
            ax.set_xlabel(f"z[{a}]", fontsize=8)
            if a == 0:
                ax.set_title(f"decoded with {names[j]}", fontsize=9)
            if j == 0:
                ax.set_ylabel("element", fontsize=8)
    fig.colorbar(image, ax=axes, shrink=0.6, label="decoded at.%")
    fig.suptitle("Latent traversals: composition along each axis of z (others at the base point)")
    save_figure(fig, path)


def _clean_decoded(x_hat: np.ndarray, vocabulary: Sequence[str], min_percent: float) -> np.ndarray:
    """Make decoded compositions featurizable, as a real alloy would be.

    Elements below ``min_percent`` at.% are dropped (the decoder's softmax
    gives every element some weight); of an element pair without a mixing
    enthalpy (e.g. Th-U) the smaller is dropped; the rest is renormalized.
    """
    from pyro_hea.data.descriptors import element_table

    x = np.where(x_hat >= min_percent, x_hat, 0.0)
    empty = x.sum(axis=1) <= 0
    x[empty] = x_hat[empty]  # nothing above the threshold: keep the raw decoded composition
    _, pairs = element_table(tuple(vocabulary))
    for i, j in np.argwhere(np.isnan(pairs)):
        if i < j:
            both = (x[:, i] > 0) & (x[:, j] > 0)
            smaller = np.where(x[:, i] <= x[:, j], i, j)
            x[both, smaller[both]] = 0.0
    return 100.0 * x / x.sum(axis=1, keepdims=True)


def phase_probability_map(model, alloys=None, axes: tuple[int, int] = (0, 1), n_grid: int = 41,
                          span: float = 3.0, positive: int | None = None, min_percent: float = 1.0) -> dict:
    """q(y = positive | x̂) over a 2-D latent plane, through the decoder.

    Each grid point z (axes ``axes`` varied, the others at the base point)
    is decoded with every class y to x̂(z, y), re-featurized and classified.
    The decoder's softmax gives every element a little weight; elements
    below ``min_percent`` at.% are dropped, as is the smaller element of a
    pair without a mixing enthalpy (Th-U), and the rest renormalized before
    featurizing, as for a real alloy.

    Parameters
    ----------
    model : PhaseModel
    alloys : optional
        Alloys whose posterior means set the base point (their median) and
        the plane's extent (1st to 99th percentile, padded by 10%); else
        base 0 and [-span, span].
    axes : pair of int
        The latent axes of the plane.
    n_grid : int
        Grid points per axis.
    span : float
        Half-width of the plane without alloys.
    positive : int, optional
        Class whose probability is mapped, 1 (single-phase) by default.
    min_percent : float
        Elements below this at.% are dropped from decoded compositions.

    Returns
    -------
    dict
        ``z1`` (n_grid,), ``z2`` (n_grid,), ``prob`` (K, n_grid, n_grid):
        ``prob[y, i, j]`` is q(positive | x̂(z, y)) at z1[j], z2[i];
        ``means`` the alloys' posterior means (or None), ``axes``.

    Examples
    --------
    >>> m = phase_probability_map(model, n_grid=5)   # needs a trained model  # doctest: +SKIP
    >>> m["prob"].shape                              # doctest: +SKIP
    (2, 5, 5)
    """
    d = model.vae.config.latent_dim
    if d < 2:
        raise ExplainError("a 2-D latent plane needs latent_dim >= 2")
    a1, a2 = (int(a) for a in axes)
    if a1 == a2 or not (0 <= a1 < d and 0 <= a2 < d):
        raise ExplainError(f"axes must be two different latent axes in 0..{d - 1}, got {axes}")
    if n_grid < 2:
        raise ExplainError(f"n_grid must be at least 2, got {n_grid}")
    positive = _positive_class(model, positive)
    if alloys is None:
        base, means = np.zeros(d), None
        lo, hi = np.array([-span, -span]), np.array([span, span])
    else:
        means = posterior_means(model, alloys)
        base = np.median(means, axis=0)
        lo, hi = np.percentile(means[:, [a1, a2]], 1, axis=0), np.percentile(means[:, [a1, a2]], 99, axis=0)
        pad = 0.1 * np.maximum(hi - lo, 1e-3)
        lo, hi = lo - pad, hi + pad
    z1, z2 = np.linspace(lo[0], hi[0], n_grid), np.linspace(lo[1], hi[1], n_grid)
    g1, g2 = np.meshgrid(z1, z2)  # (n_grid, n_grid), row i = z2[i]
    z = np.repeat(base[None, :], g1.size, axis=0)
    z[:, a1], z[:, a2] = g1.ravel(), g2.ravel()
    z_t = torch.tensor(z, dtype=torch.float32)
    model.vae.eval()
    prob = np.empty((model.n_classes, n_grid, n_grid))
    for y in range(model.n_classes):
        x_hat = _clean_decoded(model.vae.decode(z_t, y).numpy().astype(float), model.vocabulary, min_percent)
        t = AlloyTensors.from_compositions(x_hat, model.vocabulary, model.scaler)
        prob[y] = model.vae.predict_proba(t)[:, positive].numpy().reshape(n_grid, n_grid)
    return {"z1": z1, "z2": z2, "prob": prob, "means": means, "axes": (a1, a2), "base": base}


def plot_phase_probability_map(prob_map: dict, path: str | os.PathLike, labels: np.ndarray | None = None,
                               class_names: Sequence[str] | None = None) -> None:
    """Draw :func:`phase_probability_map`: one panel per decoded class, alloys on top.

    ``labels`` (0/1, -1 unknown) colours the alloys' posterior means.

    Examples
    --------
    >>> plot_phase_probability_map(m, "latent_phase_map.png")   # needs a trained model  # doctest: +SKIP
    """
    import matplotlib.pyplot as plt

    prob = prob_map["prob"]
    k = prob.shape[0]
    names = class_names or [f"y = {y}" for y in range(k)]
    a1, a2 = prob_map["axes"]
    fig, axs = plt.subplots(1, k, figsize=(5.2 * k + 1, 4.6), squeeze=False)
    mesh = None
    for y in range(k):
        ax = axs[0, y]
        mesh = ax.pcolormesh(prob_map["z1"], prob_map["z2"], prob[y], cmap="RdBu", vmin=0, vmax=1, shading="auto")
        ax.contour(prob_map["z1"], prob_map["z2"], prob[y], levels=[0.5], colors="k", linewidths=1)
        means = prob_map.get("means")
        if means is not None:
            lab = np.full(len(means), -1) if labels is None else np.asarray(labels)
            for value, colour, marker, text in ((0, "darkorange", "x", "multi-phase alloys"),
                                                 (1, "black", "+", "single-phase alloys"),
                                                 (-1, "grey", ".", "unlabelled alloys")):
                sel = lab == value
                if sel.any():
                    ax.scatter(means[sel, a1], means[sel, a2], s=14, color=colour, marker=marker, alpha=0.8,
                               label=text, linewidths=0.9)
        ax.set_xlim(prob_map["z1"][0], prob_map["z1"][-1])
        ax.set_ylim(prob_map["z2"][0], prob_map["z2"][-1])
        ax.set_xlabel(f"z[{a1}]")
        ax.set_ylabel(f"z[{a2}]")
        ax.set_title(f"decoded with {names[y]}")
    handles, labels_ = axs[0, 0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels_, loc="lower center", ncol=3, bbox_to_anchor=(0.45, -0.06))
    fig.colorbar(mesh, ax=axs, label="q(single-phase | decoded composition)")
    fig.suptitle("Classifier over the latent plane: decode z with y, re-featurize, classify")
    save_figure(fig, path)


# ------------------------------------------------------------ disentanglement
def disentanglement_auc(z: np.ndarray, y: np.ndarray, n_splits: int = 5, seed: int = 0) -> float:
    """How well y can be predicted from z: cross-validated ROC AUC of a logistic regression.

    A logistic regression on standardized z is fit on all but one of
    ``n_splits`` stratified folds and scored on the held-out fold; the
    out-of-fold predictions of every alloy give one AUC. About 0.5 means z
    carries no linearly readable information about y (disentangled); 1
    means y can be read off z. For K > 2 classes the AUC is one-vs-rest,
    macro-averaged.

    Parameters
    ----------
    z : array (n, latent_dim)
        E.g. posterior means of z of held-out alloys.
    y : array (n,) of int
        Their classes.
    n_splits : int
        Cross-validation folds (reduced when a class has fewer members).
    seed : int
        Seed of the fold assignment.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> y = rng.integers(0, 2, 400)
    >>> round(disentanglement_auc(rng.normal(size=(400, 2)), y), 1)
    0.5
    >>> disentanglement_auc(np.c_[y + 0.1 * rng.normal(size=400)], y) > 0.99
    True
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    z = np.asarray(z, dtype=float)
    y = np.asarray(y).astype(int)
    if z.ndim == 1:
        z = z[:, None]
    if z.ndim != 2 or len(z) != len(y):
        raise ExplainError(f"z must be (n, latent_dim) with one row per label; got z {z.shape}, y {y.shape}")
    if not np.all(np.isfinite(z)):
        raise ExplainError("z contains NaN or infinite values")
    classes, counts = np.unique(y, return_counts=True)
    if len(classes) < 2:
        raise ExplainError("the disentanglement AUC needs alloys of at least two classes")
    folds = int(min(n_splits, counts.min()))
    if folds < 2:
        raise ExplainError(f"every class needs at least 2 alloys for cross-validation, got counts {counts.tolist()}")
    scores = np.zeros((len(y), len(classes)))
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for train, test in cv.split(z, y):
        clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
        clf.fit(z[train], y[train])
        scores[test] = clf.predict_proba(z[test])
    if len(classes) == 2:
        return float(roc_auc_score(y, scores[:, 1]))
    return float(roc_auc_score(y, scores, multi_class="ovr", labels=classes))


def disentanglement_score(model, df: pd.DataFrame, split: pd.Series | None = None,
                          rows: Sequence[str] = ("val", "test"), y: str = "label",
                          n_splits: int = 5, seed: int = 0) -> dict:
    """Disentanglement AUC of a model on held-out alloys.

    The posterior means of z (q(z | x, y) at the alloy's label, see
    :func:`posterior_means`) of the labelled alloys in the ``rows`` splits,
    never seen with labels in training, go to :func:`disentanglement_auc`.

    Parameters
    ----------
    model : PhaseModel
    df : DataFrame
    split : Series, optional
        Split names; all labelled rows of ``df`` when None.
    rows : sequence of str
        The splits to use; held-out ``val`` and ``test`` by default.
    y : "label" or "predicted"
        The class fed to the encoder.

    Returns
    -------
    dict
        ``auc``, ``n`` (alloys used), ``rows``, ``y``.

    Examples
    --------
    >>> disentanglement_score(run.model, run.df, run.split)["auc"]   # needs a trained model  # doctest: +SKIP
    0.55
    """
    if split is not None:
        mask = pd.Series(split, index=df.index).isin(list(rows)).to_numpy()
        df = df[mask]
    t = model.tensors(df)
    keep = np.flatnonzero(t.labelled.numpy())
    if len(keep) == 0:
        raise ExplainError(f"no labelled alloy in the split(s) {list(rows)} to score disentanglement on")
    t = t[keep]
    z = posterior_means(model, t, y=y)
    return {"auc": disentanglement_auc(z, t.y.numpy(), n_splits=n_splits, seed=seed), "n": len(keep),
            "rows": list(rows), "y": y}


