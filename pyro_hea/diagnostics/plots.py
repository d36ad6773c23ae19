"""Training plots."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

__all__ = ["plot_training_curve", "training_curve_figure", "save_figure"]


def save_figure(fig, path: str | os.PathLike) -> None:
    """Save a figure as PNG (150 dpi, tight) and close it."""
    from pyro_hea.io import atomic_write

    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=150, bbox_inches="tight", format="png"))
    plt.close(fig)


def plot_training_curve(history: dict, path: str | os.PathLike, best_step: int | None = None,
                        best_elbo_step: int | None = None) -> None:
    """Training and validation loss per alloy, and validation accuracy, against the SVI step.

    ``best_step`` marks the step the classifier (or the whole model) was kept
    from; ``best_elbo_step`` the step the encoder, decoder and priors were
    kept from under per-network selection.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> h = {"step": [1, 2], "train_loss": [3.0, 2.0], "val_loss": [3.5, 2.5], "val_accuracy": [.5, .6]}
    >>> plot_training_curve(h, pathlib.Path(tempfile.mkdtemp()) / "c.png")
    """
    save_figure(training_curve_figure(history, best_step, best_elbo_step), path)


def _label_symlog_axis(ax, values) -> None:
    """Labelled ticks on a symlog axis: 1, 2 and 5 times powers of ten over a wide range, plain
    evenly spaced numbers within one decade.

    Matplotlib's default symlog ticks sit only on whole decades, so a loss
    curve that stays within one decade showed no tick label at all.
    """
    from matplotlib.ticker import FuncFormatter, MaxNLocator, NullFormatter, SymmetricalLogLocator

    values = np.abs(np.asarray(values, dtype=float))
    values = values[np.isfinite(values) & (values > 0)]
    wide = values.size and values.max() / values.min() >= 10
    if wide:
        ax.yaxis.set_major_locator(SymmetricalLogLocator(ax.yaxis.get_transform(), subs=(1.0, 2.0, 5.0)))
    else:
        ax.yaxis.set_major_locator(MaxNLocator(nbins=5))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())


def training_curve_figure(history: dict, best_step: int | None = None, best_elbo_step: int | None = None):
    """The figure of :func:`plot_training_curve`, not saved.

    Examples
    --------
    >>> h = {"step": [1, 2], "train_loss": [300.0, 200.0], "val_loss": [350.0, 250.0], "val_accuracy": [.5, .6]}
    >>> ax = training_curve_figure(h).axes[0]; ax.figure.canvas.draw()
    >>> low, high = ax.get_ylim()
    >>> [t.get_text() for t in ax.get_yticklabels() if low <= t.get_position()[1] <= high]
    ['200', '240', '280', '320']
    """
    steps = np.asarray(history["step"])
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.plot(steps, history["train_loss"], label="training")
    ax1.plot(steps, history["val_loss"], label="validation")
    ax1.set_xlabel("SVI step")
    ax1.set_ylabel("loss per alloy (−ELBO + α·CE)")
    ax1.set_yscale("symlog")
    _label_symlog_axis(ax1, np.concatenate([np.ravel(history["train_loss"]), np.ravel(history["val_loss"])]))
    ax2.plot(steps, history["val_accuracy"], color="C2", label="validation accuracy")
    if "val_log_loss" in history:
        ax2.plot(steps, history["val_log_loss"], color="C3", label="validation log-loss of q(y|x)")
    ax2.set_xlabel("SVI step")
    ax2.set_ylabel("accuracy / log-loss")
    log_loss = np.asarray(history.get("val_log_loss", []), dtype=float)
    log_loss = log_loss[np.isfinite(log_loss)]
    ax2.set_ylim(0, max(1.0, float(log_loss.max()) if log_loss.size else 1.0))
    for ax in (ax1, ax2):
        if best_step:
            ax.axvline(best_step, color="grey", ls="--", lw=1, label="classifier kept (validation log-loss)"
                       if best_elbo_step else "selected on validation")
        if best_elbo_step:
            ax.axvline(best_elbo_step, color="black", ls=":", lw=1,
                       label="encoder and decoder kept (validation ELBO)")
        ax.grid(alpha=0.3)
    ax2.legend(fontsize=8)
    ax1.legend(fontsize=8)
    fig.suptitle("pyro-hea training")
    return fig
