"""Figures of the posterior predictive checks: calibration, separation, single-phase rate, latent space.

Each ``plot_*`` function reads the :class:`arviz.InferenceData` of
:func:`~pyro_hea.diagnostics.inference_data.to_inference_data` (or a dict of
them, to overlay several fits) and the numbers of :mod:`pyro_hea.diagnostics.ppc`;
:func:`write_report` writes all four PNGs, as ``pyro-hea inspect`` does.

Examples
--------
>>> import tempfile
>>> from pyro_hea import PhaseModel, load_dataset, paper_split
>>> from pyro_hea.diagnostics.inference_data import to_inference_data
>>> df = load_dataset("pei2020"); split = paper_split(df, seed=0)
>>> idata = to_inference_data(PhaseModel.build(df, split), df, split, num_samples=20)
>>> sorted(write_report(idata, tempfile.mkdtemp()))
['calibration', 'latent_space', 'separation', 'single_phase_rate']
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from pyro_hea.data.families import FAMILIES
from pyro_hea.data.splits import SPLITS
from pyro_hea.diagnostics.plots import save_figure
from pyro_hea.diagnostics.ppc import (ELEMENT_GROUPS, GROUPS, _as_models, calibration_by_split, label_table,
                                      latent_means, posterior_predictive_pvalue, rate_statistics)

__all__ = ["REPORT_FILES", "plot_calibration", "plot_separation", "plot_single_phase_rate", "plot_latent_space",
           "write_report"]

SPLIT_MARKERS = {"labelled": "o", "unlabelled": "s", "val": "^", "test": "X"}
_TEXT_BOX = {"facecolor": "white", "alpha": 0.8, "edgecolor": "none", "pad": 1}


# ------------------------------------------------------------------ plots
def _finish(fig, path):
    if path is None:
        return fig
    save_figure(fig, path)
    return Path(path)


def plot_calibration(idata, path: str | os.PathLike | None = None, splits: Sequence[str] = SPLITS):
    """Reliability diagram per split with its ECE, and the confidence histogram below.

    ``idata`` may be a dict ``{name: InferenceData}`` to overlay several fits.
    Returns the figure, or the path when ``path`` is given (the figure is then
    saved as PNG and closed).
    """
    models = _as_models(idata)
    low = 1.0 / next(iter(models.values())).constant_data.sizes["phase"]  # the least confidence possible
    calib = {name: calibration_by_split(data, splits) for name, data in models.items()}
    fig, axes = plt.subplots(
        2,
        len(splits),
        figsize=(3.6 * len(splits), 5.6),
        sharex=True,
        gridspec_kw={"height_ratios": [3, 1]},
        squeeze=False,
    )
    for j, split in enumerate(splits):
        top, bottom = axes[0, j], axes[1, j]
        top.plot([0, 1], [0, 1], color="grey", ls="--", lw=1, label="perfect calibration")
        for m, name in enumerate(models):
            c = calib[name][split]
            table, color = c["table"], f"C{m}"
            if c["n"]:
                top.plot(
                    table["confidence"],
                    table["accuracy"],
                    "-",
                    color=color,
                    lw=1.2,
                    label=f"accuracy per bin, ECE {c['ece']:.3f}",
                )
                top.scatter(
                    table["confidence"],
                    table["accuracy"],
                    s=12 + 60 * np.sqrt(table["n"] / c["n"]),
                    color=color,
                    zorder=3,
                )
                width = (table["upper"] - table["lower"]).to_numpy() / (len(models) + 0.5)
                bottom.bar(
                    table["lower"] + width * (m + 0.25),
                    table["n"],
                    width=width,
                    align="edge",
                    color=color,
                    alpha=0.7,
                )
        n = next(iter(calib.values()))[split]["n"]
        top.set_title(f"{split} (n={n})", fontsize=10)
        if n == 0:
            top.text(0.5, 0.5, "no labelled alloys", ha="center", va="center", transform=top.transAxes)
        top.set_xlim(low - 0.02, 1.01)
        top.set_ylim(0, 1.02)
        top.grid(alpha=0.3)
        bottom.set_xlabel("confidence q(ŷ|x) of the predicted phase")
        if j == 0:
            top.set_ylabel("accuracy in the bin")
            bottom.set_ylabel("alloys")
        top.legend(fontsize=7, loc="upper left")
    fig.suptitle(
        "Calibration of q(y|x): reliability diagram per split (10 equal-width bins; "
        "marker area grows with the bin's count)"
    )
    _legend_of_fits(fig, models)
    return _finish(fig, path)


def plot_separation(idata, path: str | os.PathLike | None = None, split: str = "test"):
    """Separation plot of P(single-phase) for one split (Greenhill, Ward & Sacks 2011).

    Alloys are sorted by q(single-phase | x); each is a vertical stripe,
    dark where it is single-phase and light where it is not; the black line
    is the predicted probability and the triangle marks where the expected
    number of single-phase alloys begins. A perfect classifier puts every
    dark stripe to the right.
    """
    labels = label_table(idata)
    rows = labels[(labels["split"] == split) & labels["observed_single"].notna()]
    order = np.argsort(rows["p_single"].to_numpy(), kind="stable")
    p = rows["p_single"].to_numpy()[order]
    y = rows["observed_single"].to_numpy()[order]
    n = len(p)
    fig, ax = plt.subplots(figsize=(9, 2.6))
    if n:
        colors = np.where(y > 0.5, "#8c2d04", "#fdd49e")
        ax.bar(np.arange(n), np.ones(n), width=1.0, color=colors, edgecolor="none")
        ax.plot(np.arange(n), p, color="black", lw=1.5, label="q(single-phase | x)")
        expected = n - p.sum()
        ax.plot(
            [expected],
            [-0.06],
            marker="^",
            color="black",
            ms=8,
            clip_on=False,
            label=f"expected number of single-phase alloys ({p.sum():.1f} of {n})",
        )
        from matplotlib.patches import Patch

        handles = ax.get_legend_handles_labels()[0] + [
            Patch(color="#8c2d04", label="single-phase"),
            Patch(color="#fdd49e", label="multi-phase"),
        ]
        ax.legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    else:
        ax.text(0.5, 0.5, "no labelled alloys", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlim(-0.5, max(n, 1) - 0.5)
    ax.set_ylim(0, 1)
    ax.set_xlabel(f"{split} alloys, sorted by q(single-phase | x)")
    ax.set_ylabel("q(single-phase | x)")
    ax.set_title(f"Separation plot, {split} split (n={n})")
    fig.tight_layout()
    return _finish(fig, path)


def plot_single_phase_rate(idata, path: str | os.PathLike | None = None, splits: Sequence[str] = SPLITS):
    """Posterior predictive distribution of the single-phase rate, per split and element-count group.

    Each panel is a histogram of T(y_rep) over the draws with the observed
    T(y_obs) as a vertical line, the p-value and the number of labelled
    alloys. ``idata`` may be a dict ``{name: InferenceData}`` to overlay fits.
    """
    models = _as_models(idata)
    stats = {name: rate_statistics(data, splits) for name, data in models.items()}
    fig, axes = plt.subplots(
        len(splits), len(GROUPS), figsize=(2.55 * len(GROUPS), 2.15 * len(splits)), squeeze=False
    )
    for i, split in enumerate(splits):
        for j, group in enumerate(GROUPS):
            ax = axes[i, j]
            first = next(iter(stats.values()))
            t_obs, _, n = first[split, group]
            if n == 0:
                ax.text(
                    0.5,
                    0.5,
                    "no labelled alloys",
                    ha="center",
                    va="center",
                    transform=ax.transAxes,
                    fontsize=8,
                    color="grey",
                )
                ax.set_xticks([])
                ax.set_yticks([])
            else:
                edges = (np.arange(n + 2) - 0.5) / n
                for m, (name, st) in enumerate(stats.items()):
                    _, t_rep, _ = st[split, group]
                    ax.hist(t_rep, bins=edges, color=f"C{m}", alpha=0.55, label=name or None)
                    p = posterior_predictive_pvalue(t_obs, t_rep)
                    ax.text(
                        0.03,
                        0.97 - 0.11 * m,
                        f"p={p:.2f}",
                        transform=ax.transAxes,
                        va="top",
                        fontsize=7,
                        color="black" if len(stats) == 1 else f"C{m}",
                        fontweight="bold",
                        bbox=_TEXT_BOX,
                    )
                ax.text(
                    0.03,
                    0.97 - 0.11 * len(stats),
                    f"n={n}",
                    transform=ax.transAxes,
                    va="top",
                    fontsize=7,
                    bbox=_TEXT_BOX,
                )
                ax.axvline(t_obs, color="black", lw=1.5)
                lo = min(t_obs, *(st[split, group][1].min() for st in stats.values()))
                hi = max(t_obs, *(st[split, group][1].max() for st in stats.values()))
                pad = max(0.05, 0.15 * (hi - lo))
                ax.set_xlim(max(-0.02, lo - pad), min(1.02, hi + pad))
                ax.tick_params(labelsize=7)
            if i == 0:
                ax.set_title("all alloys" if group == "all" else f"{group} elements", fontsize=9)
            if j == 0:
                ax.set_ylabel(f"{split}\ndraws", fontsize=9)
            if i == len(splits) - 1:
                ax.set_xlabel("single-phase rate", fontsize=8)
    fig.suptitle(
        "Posterior predictive check: single-phase rate T(y_rep) (bars) vs observed T(y_obs) (line);"
        " p = Pr(T(y_rep) ≥ T(y_obs))",
        fontsize=10,
    )
    _legend_of_fits(fig, models)
    return _finish(fig, path)


def _legend_of_fits(fig, models: dict) -> None:
    """Lay out the figure; with several fits, name their colours in one legend above the panels."""
    if len(models) == 1:
        fig.tight_layout()
        return
    from matplotlib.patches import Patch

    handles = [Patch(color=f"C{m}", alpha=0.7, label=name) for m, name in enumerate(models)]
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    fig.legend(
        handles=handles,
        loc="upper center",
        bbox_to_anchor=(0.5, 0.955),
        ncol=len(models),
        fontsize=9,
        frameon=False,
    )


def plot_latent_space(idata, path: str | os.PathLike | None = None):
    """Posterior means of z, coloured by phase, by number of elements and by alloy family.

    The marker shows the split (labelled, unlabelled, val, test). With more
    than two latent axes the means are projected on their first two
    principal components (the axis labels give the share of variance each
    explains); a one-dimensional latent is plotted against a small vertical
    jitter.
    """
    import seaborn as sns

    labels = label_table(idata)
    z = latent_means(idata)
    d = z.shape[1]
    class_names = [str(c) for c in idata.constant_data["phase"].to_numpy()]
    labels["phase"] = [class_names[y] if y >= 0 else "no label" for y in labels["observed"]]
    if d > 2:
        centred = z - z.mean(axis=0)
        _, sv, vt = np.linalg.svd(centred, full_matrices=False)
        share = sv**2 / np.sum(sv**2)
        z = centred @ vt[:2].T
        axis_names = [f"principal component {i + 1} of E[z | x] ({100 * share[i]:.0f}% of variance, "
                      f"{d} latent axes)" for i in range(2)]
    else:
        axis_names = ["posterior mean of z, axis 1",
                      "jitter (the latent is 1-D)" if d == 1 else "posterior mean of z, axis 2"]
    labels["z1"] = z[:, 0]
    labels["z2"] = z[:, 1] if d > 1 else np.random.default_rng(0).uniform(-0.1, 0.1, len(z))
    labels["elements"] = labels["group"]
    labels["split "] = labels["split"]
    phases = [c for c in class_names if c in set(labels["phase"])] + (
        ["no label"] if (labels["phase"] == "no label").any() else []
    )
    families = [f for f in FAMILIES if f in set(labels["family"])]
    groups = [g for g in ELEMENT_GROUPS if g in set(labels["group"])]
    panels = [
        ("phase", "recorded phase label", phases, "Set1"),
        ("elements", "number of elements", groups, "viridis"),
        ("family", "alloy family", families, "Dark2"),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(17, 5.4), sharex=True, sharey=True)
    splits_present = [s for s in SPLITS if s in set(labels["split"])]
    for ax, (column, title, hue_order, palette) in zip(axes, panels):
        # the most common colour first, so that rare groups are drawn on top and stay visible
        counts = labels[column].map(labels[column].value_counts())
        data = labels.iloc[np.argsort(-counts.to_numpy(), kind="stable")]
        sns.scatterplot(
            data=data,
            x="z1",
            y="z2",
            hue=column,
            hue_order=hue_order,
            palette=palette,
            style="split ",
            style_order=splits_present,
            markers={s: SPLIT_MARKERS[s] for s in splits_present},
            s=22,
            alpha=0.75,
            linewidth=0.3,
            edgecolor="white",
            ax=ax,
        )
        ax.set_title(f"coloured by {title}")
        ax.legend(fontsize=7, loc="best", markerscale=0.9, framealpha=0.85)
        ax.grid(alpha=0.3)
        ax.set_xlabel(axis_names[0])
        ax.set_ylabel(axis_names[1])
    fig.suptitle("Latent space: E[z | x] per alloy; marker = split")
    fig.tight_layout()
    return _finish(fig, path)


#: PNG file names written by :func:`write_report`.
REPORT_FILES = {
    "calibration": "ppc_calibration.png",
    "separation": "ppc_separation_test.png",
    "single_phase_rate": "ppc_single_phase_rate.png",
    "latent_space": "latent_space.png",
}


def write_report(idata, out_dir: str | os.PathLike, prefix: str = "") -> dict[str, Path]:
    """Write the four PNGs of :data:`REPORT_FILES` (names prefixed with ``prefix``) into ``out_dir``."""
    out_dir = Path(out_dir)
    paths = {key: out_dir / f"{prefix}{name}" for key, name in REPORT_FILES.items()}
    plot_calibration(idata, paths["calibration"])
    plot_separation(idata, paths["separation"], split="test")
    plot_single_phase_rate(idata, paths["single_phase_rate"])
    plot_latent_space(idata, paths["latent_space"])
    return paths
