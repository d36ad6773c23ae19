"""Figures of design results: latent candidates, y=1 vs y=0 at the same z, trajectories, paths.

Each function draws on a new figure and returns it; save it with
:func:`pyro_hea.diagnostics.plots.save_figure`.

Examples
--------
>>> fig = plot_trajectory(designer.invert("Al2CoCrFeNi"))  # needs a Designer on a trained model  # doctest: +SKIP
>>> save_figure(fig, "inversion.png")  # doctest: +SKIP
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from pyro_hea.design.result import DesignError, DesignResult

__all__ = ["plot_contrast", "plot_latent_candidates", "plot_path_heatmap", "plot_trajectory"]


def _need(result: DesignResult, mode: str) -> None:
    if result.mode != mode:
        raise DesignError(f"this plot needs a {mode} result, got a {result.mode} result")


def plot_latent_candidates(result: DesignResult, training_z: np.ndarray | None = None,
                           training_labels: np.ndarray | None = None, max_points: int = 4000):
    """Decoded candidates at their z (first two axes), coloured by p_model and p_judge.

    Parameters
    ----------
    result : DesignResult
        From :meth:`~pyro_hea.design.designer.Designer.latent`.
    training_z, training_labels : ndarray, optional
        Posterior means of training alloys and their labels (0/1), drawn
        underneath for orientation. With more than two latent axes, the
        decodes and the training alloys are shown on the first two principal
        axes of ``training_z`` (of the decodes' z when it is not given).

    Examples
    --------
    >>> fig = plot_latent_candidates(designer.latent(n=2000))  # needs a Designer on a trained model  # doctest: +SKIP
    """
    _need(result, "latent")
    t = result.table
    if "z_2" not in t.columns:
        raise DesignError("the latent space has one axis; plot z_1 against p_model instead")
    t = t.sample(max_points, random_state=0) if len(t) > max_points else t
    z = t[[c for c in t.columns if c.startswith("z_") and c[2:].isdigit()]].to_numpy(float)
    names = ("z₁", "z₂")
    if z.shape[1] > 2:
        basis = np.asarray(training_z, dtype=float) if training_z is not None else z
        centre = basis.mean(axis=0)
        axes_pc = np.linalg.svd(basis - centre, full_matrices=False)[2][:2].T
        project = lambda v: (np.asarray(v, dtype=float) - centre) @ axes_pc  # noqa: E731
        z = project(z)
        training_z = None if training_z is None else project(training_z)
        names = (f"principal axis 1 of z ({axes_pc.shape[0]}-D)", "principal axis 2 of z")
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6), sharex=True, sharey=True)
    for ax, column, title in zip(axes, ("p_model", "p_judge"),
                                 ("model q(single-phase | x) of each decode", "independent judge p(single-phase)")):
        points = ax.scatter(z[:, 0], z[:, 1], c=t[column], cmap="viridis", vmin=0, vmax=1, s=5, alpha=0.7,
                            linewidths=0)
        if training_z is not None:
            labels = np.full(len(training_z), -1) if training_labels is None else np.asarray(training_labels)
            for value, colour, name in ((1, "#ff7f0e", "training alloy: single-phase"),
                                        (0, "#d62728", "training alloy: multi-phase")):
                sel = labels == value
                ax.scatter(training_z[sel, 0], training_z[sel, 1], s=9, marker="x", lw=0.6, color=colour,
                           alpha=0.8, label=name)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel(names[0])
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(names[1])
    if training_z is not None:
        axes[0].legend(fontsize=8, loc="lower left", framealpha=0.9)
    fig.colorbar(points, ax=axes, label="probability of single-phase", shrink=0.9)
    fig.suptitle(f"Latent design: distinct decodes with y = {result.summary.get('target')} "
                 f"({len(t)} of {len(result.table)} shown), at their z")
    return fig


def plot_contrast(result: DesignResult, examples: int = 6):
    """y = target vs y = contrast decoded at the same z.

    Left: the judge's and the model's probability of the target phase for
    the two decodes of every z. Right: the compositions of a few z, the two
    decodes side by side. The examples are drawn from the accepted
    candidates whose contrast decode is scored too (then from any z whose
    two decodes are scored); a decode that cannot be scored (e.g. an
    element pair without mixing-enthalpy data) is labelled "not scored".

    Examples
    --------
    >>> fig = plot_contrast(designer.latent(n=2000))  # needs a Designer on a trained model  # doctest: +SKIP
    """
    _need(result, "latent")
    if result.contrast is None:
        raise DesignError("the result has no contrast decodes; run latent(..., compare=True)")
    t, s = result.table, result.summary
    target, other = s["target"], s["contrast"]["class"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 4.8), gridspec_kw={"width_ratios": [1, 1.5]})
    bins = np.linspace(0, 1, 21)
    for column, label, style in (("p_judge", "judge", "-"), ("p_model", "model", "--")):
        ax1.hist(t[column].dropna(), bins=bins, histtype="step", lw=1.8, ls=style, color="C0",
                 label=f"{label}, decoded with y = {target}")
        ax1.hist(t[f"{column}_contrast"].dropna(), bins=bins, histtype="step", lw=1.8, ls=style, color="C3",
                 label=f"{label}, decoded with y = {other}")
    ax1.set_xlabel(f"probability of {target}")
    ax1.set_ylabel("decodes")
    ax1.set_title(f"{len(t)} latent points, each decoded twice", fontsize=10)
    ax1.legend(fontsize=8)
    ax1.grid(alpha=0.3)

    both = t["scored"].to_numpy(bool) & t["p_model_contrast"].notna().to_numpy()
    preferred = both & (t["accepted"].to_numpy(bool) if "accepted" in t.columns else True)
    pool = np.flatnonzero(preferred) if preferred.sum() >= examples else np.flatnonzero(both)
    if len(pool) == 0:
        pool = np.arange(len(t))
    rows = np.sort(np.random.default_rng(0).choice(pool, size=min(examples, len(pool)), replace=False))
    pairs = np.nan_to_num(np.concatenate([result.compositions[rows], result.contrast[rows]]))
    used = np.flatnonzero(pairs.sum(axis=0) > 0)
    used = used[np.argsort(-pairs[:, used].sum(axis=0))]
    palette = [*plt.get_cmap("tab20").colors, *plt.get_cmap("tab20b").colors]
    positions = np.concatenate([np.arange(len(rows)) * 3.0, np.arange(len(rows)) * 3.0 + 1.0])
    bottom = np.zeros(len(pairs))
    for k, j in enumerate(used):
        ax2.bar(positions, pairs[:, j], bottom=bottom, width=0.9, color=palette[k % len(palette)],
                edgecolor="white", lw=0.5, label=result.vocabulary[j])
        for x, b, h in zip(positions, bottom, pairs[:, j]):
            if h >= 7:
                ax2.text(x, b + h / 2, result.vocabulary[j], ha="center", va="center", fontsize=7)
        bottom += pairs[:, j]
    p_model = np.concatenate([t["p_model"].to_numpy()[rows], t["p_model_contrast"].to_numpy()[rows]])
    p_judge = np.concatenate([t["p_judge"].to_numpy()[rows], t["p_judge_contrast"].to_numpy()[rows]])
    for x, pm, pj in zip(positions, p_model, p_judge):
        label = "not\nscored" if np.isnan(pm) or np.isnan(pj) else f"{pm:.2f}\n{pj:.2f}"
        ax2.text(x, 101, label, ha="center", va="bottom", fontsize=7)
    ax2.set_xticks(positions, [f"z{k + 1}\ny={'1' if i < len(rows) else '0'}" for i, k in
                               enumerate(np.concatenate([np.arange(len(rows))] * 2))], fontsize=8)
    ax2.set_ylim(0, 118)
    ax2.set_ylabel("at.%")
    ax2.set_title(f"same z, y = 1 ({target}) beside y = 0 ({other}); above each bar: p_model, p_judge",
                  fontsize=10)
    fig.tight_layout()
    return fig


def plot_trajectory(result: DesignResult):
    """Probability of the target phase along an iterative inversion.

    Examples
    --------
    >>> fig = plot_trajectory(designer.invert("Al2CoCrFeNi"))  # needs a Designer on a trained model  # doctest: +SKIP
    """
    _need(result, "invert")
    t, s = result.table, result.summary
    fig, ax = plt.subplots(figsize=(8, 4.2))
    ax.plot(t["step"], t["p_model"], "o-", label="model q(y | x)")
    ax.plot(t["step"], t["p_judge"], "s--", label="independent judge")
    ax.axhline(s["threshold"], color="grey", ls=":", label=f"threshold {s['threshold']:g}")
    for row, align in ((0, "left"), (len(t) - 1, "right")):
        ax.annotate(t["formula"].iloc[row], (t["step"].iloc[row], t["p_model"].iloc[row]), ha=align,
                    textcoords="offset points", xytext=(0, 9), fontsize=8)
    ax.set_xlabel("inversion step")
    ax.set_ylabel(f"probability of {s['target']}")
    ax.set_ylim(-0.02, 1.12)
    ax.set_xticks(t["step"])
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_title(f"Iterative inversion of {t['formula'].iloc[0]}: {s['stopped']} after {s['steps']} step(s)",
                 fontsize=10)
    return fig


def plot_path_heatmap(result: DesignResult):
    """An interpolation path as a heat map: elements by step, in at.%.

    Examples
    --------
    >>> fig = plot_path_heatmap(designer.interpolate("NbMoTaW", "CoCrFeMnNi"))  # needs a Designer on a trained model  # doctest: +SKIP
    """
    _need(result, "interpolate")
    frame = result.composition_frame()
    t, s = result.table, result.summary
    fig, (ax, axp) = plt.subplots(2, 1, figsize=(8, 1.6 + 0.32 * frame.shape[1] + 1.8), sharex=True,
                                  gridspec_kw={"height_ratios": [max(frame.shape[1], 3), 3]})
    image = ax.imshow(frame.to_numpy().T, aspect="auto", cmap="magma_r", vmin=0)
    ax.set_yticks(range(frame.shape[1]), frame.columns)
    ax.set_ylabel("element")
    fig.colorbar(image, ax=[ax, axp], label="at.%", shrink=0.8)
    ax.set_title(f"Latent path {s['start']} → {s['end']}, decoded with y = {s['target']}", fontsize=10)
    axp.plot(t["step"], t["p_model"], "o-", label="model")
    axp.plot(t["step"], t["p_judge"], "s--", label="judge")
    axp.set_ylim(-0.05, 1.05)
    axp.set_ylabel(f"p({s['target']})")
    axp.set_xlabel("step along the path (t = 0 … 1)")
    axp.set_xticks(t["step"])
    axp.legend(fontsize=8)
    axp.grid(alpha=0.3)
    return fig
