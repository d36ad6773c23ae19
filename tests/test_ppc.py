"""Posterior predictive checks and plots on a fitted toy model and on deliberately broken ones."""

from __future__ import annotations

import copy
import json

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from torch import nn

from pyro_hea import PhaseModel
from pyro_hea.diagnostics import ppc, ppc_plots
from pyro_hea.diagnostics.inference_data import to_inference_data
from pyro_hea.infer.metrics import expected_calibration_error
from pyro_hea.model.vae import ModelConfig

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def fitted(data):
    """A small model fitted for 300 full-batch steps."""
    df, split = data
    return PhaseModel.fit(df, split, steps=300, hidden=[32, 32], seed=0, progress=False)


@pytest.fixture(scope="module")
def idata(fitted, data):
    return to_inference_data(fitted, *data, num_samples=400, seed=1)


def _with_classifier(model: PhaseModel, classifier: nn.Module) -> PhaseModel:
    broken = copy.deepcopy(model)
    broken.vae.classifier = classifier
    return broken


class ConstantClassifier(nn.Module):
    """Logits whose bias forces one class: q(y=cls|x) ~ 1 for every alloy."""

    def __init__(self, n_classes: int, cls: int):
        super().__init__()
        self.bias = torch.full((n_classes,), -20.0)
        self.bias[cls] = 20.0

    def forward(self, x, features):
        return self.bias.expand(*x.shape[:-1], -1)


class WrongForBinaries(nn.Module):
    """The fitted classifier, except that binary alloys are always called multi-phase."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, x, features):
        logits = self.inner(x, features)
        binary = ((x > 0).sum(-1) == 2)[..., None]
        return torch.where(binary, torch.tensor([20.0, -20.0]), logits)


def test_pvalue_convention():
    assert ppc.posterior_predictive_pvalue(0.5, np.array([0.4, 0.5, 0.6, 0.7])) == 0.75
    assert ppc.posterior_predictive_pvalue(1.0, np.zeros(10)) == 0.0
    assert ppc.element_group([2, 3, 4, 5, 6, 8]).tolist() == ["2", "3", "4", "5", "6+", "6+"]


def test_fitted_model_has_sensible_pvalues(idata, fitted, data):
    table = ppc.single_phase_rate_ppc(idata).set_index(["split", "group"])
    assert len(table) == 4 * 6
    row = table.loc["labelled", "all"]
    assert row["n"] == 664
    assert 0.05 < row["p_value"] < 0.95, row
    assert abs(row["predicted_mean"] - row["observed"]) < 0.05
    assert row["predicted_low"] <= row["predicted_mean"] <= row["predicted_high"]
    # the group counts are those of the table
    df, split = data
    labelled = df[(split == "labelled").to_numpy()]
    assert table.loc["labelled", "2"]["n"] == (labelled["n_elements"] == 2).sum()
    assert table.loc["labelled", "6+"]["n"] == (labelled["n_elements"] >= 6).sum()
    assert table.loc["labelled", "5"]["observed"] == pytest.approx(
        labelled[labelled["n_elements"] == 5]["single_phase"].mean()
    )
    # a group without labelled alloys is reported as empty, not as a number
    empty = table[table["n"] == 0]
    assert empty["p_value"].isna().all()


def test_biased_classifier_gets_extreme_pvalues(fitted, data):
    always_single = _with_classifier(fitted, ConstantClassifier(2, cls=1))
    table = ppc.single_phase_rate_ppc(to_inference_data(always_single, *data, num_samples=200))
    table = table.set_index(["split", "group"])["p_value"]
    for split in ("labelled", "unlabelled", "val", "test"):
        assert table[split, "all"] == 1.0
    always_multi = _with_classifier(fitted, ConstantClassifier(2, cls=0))
    table = ppc.single_phase_rate_ppc(to_inference_data(always_multi, *data, num_samples=200))
    assert (table.set_index(["split", "group"])["p_value"][:, "all"] == 0.0).all()
    calib = ppc.calibration_by_split(to_inference_data(always_multi, *data, num_samples=10))
    assert calib["labelled"]["ece"] > 0.4


def test_a_model_bad_on_binaries_shows_it_in_that_group_only(fitted, data, idata):
    bad = _with_classifier(fitted, WrongForBinaries(fitted.vae.classifier))
    table = ppc.single_phase_rate_ppc(to_inference_data(bad, *data, num_samples=400, seed=1))
    table = table.set_index(["split", "group"])["p_value"]
    good = ppc.single_phase_rate_ppc(idata).set_index(["split", "group"])["p_value"]
    assert table["labelled", "2"] == 0.0 and good["labelled", "2"] > 0.05
    for group in ("4", "5", "6+"):  # alloys with more elements untouched
        assert table["labelled", group] == good["labelled", group]


def test_ece_matches_metrics(idata, fitted, data):
    df, split = data
    calib = ppc.calibration_by_split(idata)
    for name in ("val", "test"):
        rows = (split == name).to_numpy()
        assert calib[name]["ece"] == pytest.approx(fitted.evaluate(df, rows)["ece"], abs=1e-6)
        assert calib[name]["accuracy"] == pytest.approx(fitted.evaluate(df, rows)["accuracy"])
        table = calib[name]["table"]
        assert table["n"].sum() == calib[name]["n"] == rows.sum()
        gap = (table["n"] * (table["accuracy"] - table["confidence"]).abs()).sum() / table["n"].sum()
        assert gap == pytest.approx(calib[name]["ece"])
    y, p = np.array([1, 0, 1, 1]), np.array([[0.2, 0.8], [0.7, 0.3], [0.6, 0.4], [0.05, 0.95]])
    table = ppc.calibration_table(y, p)
    assert (table["n"] * (table["accuracy"] - table["confidence"]).abs()).sum() / 4 == pytest.approx(
        expected_calibration_error(y, p)
    )


def test_summary_is_plain_json(idata):
    summary = ppc.ppc_summary(idata)
    text = json.dumps(summary, allow_nan=False)
    assert "T(y_rep) >= T(y_obs)" in summary["p_value_convention"]
    for split in ("labelled", "unlabelled", "val", "test"):
        s = summary["splits"][split]
        assert set(s["single_phase_rate"]) == {"all", "2", "3", "4", "5", "6+"}
        assert 0 <= s["ece"] <= 1
    assert summary["splits"]["val"]["single_phase_rate"]["3"]["p_value"] is None  # val has no ternary
    assert "ess" not in text.lower() and "r_hat" not in text.lower()


def test_compare_fits(idata, fitted, data):
    other = to_inference_data(_with_classifier(fitted, ConstantClassifier(2, 1)), *data, num_samples=50)
    table = ppc.compare_fits({"fitted": idata, "always single": other})
    assert list(table.columns) == ["fitted", "always single"]
    assert table.loc[("test", "p-value, rate all"), "always single"] == 1.0
    assert table.loc[("val", "ECE"), "fitted"] == pytest.approx(
        ppc.calibration_by_split(idata)["val"]["ece"]
    )


def _texts(fig):
    out = []
    for ax in fig.axes:
        out += [ax.get_xlabel(), ax.get_ylabel(), ax.get_title()]
        legend = ax.get_legend()
        if legend is not None:
            out += [t.get_text() for t in legend.get_texts()]
    return [t for t in out if t]


def test_plots_are_labelled(idata):
    fig = ppc_plots.plot_calibration(idata)
    texts = _texts(fig)
    assert "accuracy in the bin" in texts and any("ECE" in t for t in texts)
    plt.close(fig)
    fig = ppc_plots.plot_separation(idata)
    assert fig.axes[0].get_xlabel().startswith("test alloys") and fig.axes[0].get_legend() is not None
    plt.close(fig)
    fig = ppc_plots.plot_single_phase_rate(idata)
    texts = _texts(fig)
    assert "all alloys" in texts and "6+ elements" in texts and "single-phase rate" in texts
    assert any(t.startswith("p=") for ax in fig.axes for t in (x.get_text() for x in ax.texts))
    plt.close(fig)
    fig = ppc_plots.plot_latent_space(idata)
    texts = _texts(fig)
    for expected in (
        "single-phase",
        "refractory",
        "6+",
        "test",
        "unlabelled",
    ):
        assert expected in texts, expected
    assert any(t.startswith("principal component 1 of E[z | x] (") for t in texts)
    plt.close(fig)


def test_latent_plot_names_the_axes_shown(data):
    df, split = data
    torch.manual_seed(0)
    model = PhaseModel.build(df, split, ModelConfig(latent_dim=4, hidden=[8]))
    fig = ppc_plots.plot_latent_space(to_inference_data(model, df, split, num_samples=3))
    x_label, y_label = fig.axes[0].get_xlabel(), fig.axes[0].get_ylabel()
    assert x_label.startswith("principal component 1 of E[z | x]") and "4 latent axes" in x_label
    assert y_label.startswith("principal component 2 of E[z | x]") and "% of variance" in y_label
    plt.close(fig)
    model2 = PhaseModel.build(df, split, ModelConfig(latent_dim=2, hidden=[8]))
    fig = ppc_plots.plot_latent_space(to_inference_data(model2, df, split, num_samples=3))
    assert fig.axes[0].get_xlabel() == "posterior mean of z, axis 1"
    plt.close(fig)


def test_write_report_and_overlay(idata, tmp_path):
    paths = ppc_plots.write_report(idata, tmp_path, prefix="x_")
    assert sorted(p.name for p in paths.values()) == sorted(f"x_{n}" for n in ppc_plots.REPORT_FILES.values())
    for path in paths.values():
        blob = path.read_bytes()
        assert blob.startswith(PNG_MAGIC) and len(blob) > 20_000
    both = {"a": idata, "b": idata}
    assert ppc_plots.plot_calibration(both, tmp_path / "c.png", splits=("val", "test")).stat().st_size > 20_000
    assert (
        ppc_plots.plot_single_phase_rate(both, tmp_path / "r.png", splits=("val", "test")).stat().st_size
        > 20_000
    )
