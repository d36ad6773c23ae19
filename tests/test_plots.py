"""The training-curve figure."""

from __future__ import annotations

import numpy as np
import pytest

from pyro_hea.diagnostics.plots import training_curve_figure


@pytest.mark.parametrize("scale", [1.0, 40.0, 3000.0])
def test_the_symlog_loss_axis_has_tick_labels(scale):
    steps = np.arange(1, 51)
    loss = scale * (1.5 + np.exp(-steps / 10))  # stays within one decade: no whole-decade tick inside
    fig = training_curve_figure({"step": steps, "train_loss": loss, "val_loss": loss * 1.1,
                                 "val_accuracy": np.full(50, 0.8)})
    ax = fig.axes[0]
    fig.canvas.draw()
    low, high = ax.get_ylim()
    shown = [t.get_text() for t in ax.get_yticklabels() if low <= t.get_position()[1] <= high and t.get_text()]
    assert len(shown) >= 2, (scale, shown)
    assert all(float(text) > 0 for text in shown)


def test_a_wide_symlog_axis_is_labelled_at_1_2_5_times_powers_of_ten():
    steps = np.arange(1, 101)
    loss = 5000.0 * np.exp(-steps / 12) + 3.0  # three decades
    fig = training_curve_figure({"step": steps, "train_loss": loss, "val_loss": loss, "val_accuracy": np.ones(100)})
    ax = fig.axes[0]
    fig.canvas.draw()
    low, high = ax.get_ylim()
    shown = [float(t.get_text()) for t in ax.get_yticklabels() if low <= t.get_position()[1] <= high and t.get_text()]
    assert len(shown) >= 4
    assert all(f"{v:g}"[0] in "125" for v in shown)
