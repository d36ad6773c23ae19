"""Interpretability: SHAP wrapper against exact Shapley values, traversals, disentanglement, CLI."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch

from pyro_hea import explain as ex
from pyro_hea.cli import main as cli
from pyro_hea.data.descriptors import DESCRIPTOR_NAMES
from pyro_hea.errors import PyroHeaError
from pyro_hea.explain.latent import _clean_decoded
from pyro_hea.infer.run import load_run


@pytest.fixture(scope="session")
def run(tmp_path_factory):
    """A small run written by the CLI (60 SVI steps, 2-D latent), loaded back."""
    out = tmp_path_factory.mktemp("explain") / "run"
    status = cli(["train", "--dataset", "pei2020", "--seed", "0", "--out", str(out), "--epochs", "60",
                  "--latent-dim", "2", "--quiet"])
    assert status == 0
    return load_run(out)


@pytest.fixture(scope="session")
def small(run):
    """Background of 12 training alloys and 6 test alloys' raw descriptors."""
    bg = ex.background_sample(run.model, run.df, run.split, n=12, seed=1)
    test = run.df[(run.split == "test").to_numpy()].iloc[:6]
    return bg, test


# -------------------------------------------------------------------- Shapley
def test_exact_shapley_of_a_linear_function_is_weight_times_offset():
    rng = np.random.default_rng(0)
    w = rng.normal(size=5)
    bg, X = rng.normal(size=(7, 5)), rng.normal(size=(3, 5))
    phi, base = ex.exact_shapley_values(lambda a: a @ w, X, bg)
    np.testing.assert_allclose(phi, w * (X - bg.mean(axis=0)), atol=1e-12)
    assert base == pytest.approx(float((bg @ w).mean()))


def test_exact_shapley_of_an_interaction_splits_it_evenly():
    # f = x0 * x1 from background 0: the interaction is shared equally
    phi, base = ex.exact_shapley_values(lambda a: a[:, 0] * a[:, 1], np.array([[2.0, 3.0, 5.0]]), np.zeros((1, 3)))
    np.testing.assert_allclose(phi, [[3.0, 3.0, 0.0]])
    assert base == 0.0


@pytest.mark.parametrize("output", ["probability", "logit"])
def test_shap_wrapper_matches_exact_shapley_values(run, small, output):
    bg, test = small
    explanation = ex.shap_values(run.model, test, bg, output=output)
    f = ex.classifier_function(run.model, output=output)
    X = test[list(DESCRIPTOR_NAMES)].to_numpy(float)
    phi, base = ex.exact_shapley_values(f, X, bg)
    assert explanation.values.shape == (6, 8)
    assert list(explanation.feature_names) == list(DESCRIPTOR_NAMES)
    np.testing.assert_allclose(explanation.values, phi, atol=1e-6)
    np.testing.assert_allclose(explanation.base_values, base, atol=1e-6)
    # efficiency: base value plus the SHAP values is the classifier's output
    np.testing.assert_allclose(base + phi.sum(axis=1), f(X), atol=1e-6)


def test_classifier_function_is_the_models_probability(run, small):
    _, test = small
    f = ex.classifier_function(run.model)
    np.testing.assert_allclose(f(test[list(DESCRIPTOR_NAMES)].to_numpy(float)),
                               run.model.predict_proba(test)[:, 1], atol=1e-6)
    logit = ex.classifier_function(run.model, output="logit")(test[list(DESCRIPTOR_NAMES)].to_numpy(float))
    p = run.model.predict_proba(test)[:, 1]
    np.testing.assert_allclose(logit, np.log(p / (1 - p)), atol=1e-4)


def test_global_importance_and_per_alloy_table(run, small):
    bg, test = small
    explanation = ex.shap_values(run.model, test, bg)
    imp = ex.global_importance(explanation)
    assert set(imp.index) == set(DESCRIPTOR_NAMES)
    assert np.all(np.diff(imp.to_numpy()) <= 0)
    np.testing.assert_allclose(imp[DESCRIPTOR_NAMES[0]], np.abs(explanation.values[:, 0]).mean())
    table = ex.alloy_explanations(explanation, names=test["formula"])
    assert list(table.index) == list(test["formula"])
    np.testing.assert_allclose(table["output"], run.model.predict_proba(test)[:, 1], atol=1e-6)
    with pytest.raises(PyroHeaError, match="names"):
        ex.alloy_explanations(explanation, names=["a"])


def test_shap_plots_are_written(run, small, tmp_path):
    bg, test = small
    explanation = ex.shap_values(run.model, test, bg)
    ex.plot_shap_bar(explanation, tmp_path / "bar.png")
    ex.plot_shap_beeswarm(explanation, tmp_path / "bee.png")
    ex.plot_alloy_explanation(explanation, 0, tmp_path / "one.png", name="x")
    for name in ("bar.png", "bee.png", "one.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(PyroHeaError, match="outside"):
        ex.plot_alloy_explanation(explanation, 99, tmp_path / "x.png")


def test_missing_shap_names_the_extra(run, small, monkeypatch):
    bg, test = small
    monkeypatch.setitem(sys.modules, "shap", None)  # makes `import shap` fail
    with pytest.raises(ex.ShapMissingError, match=r'pip install -e "\.\[shap\]"'):
        ex.shap_values(run.model, test, bg)
    assert issubclass(ex.ShapMissingError, PyroHeaError)


def test_bad_shap_inputs(run, small):
    bg, test = small
    with pytest.raises(PyroHeaError, match="output"):
        ex.classifier_function(run.model, output="odds")
    with pytest.raises(PyroHeaError, match="positive class"):
        ex.classifier_function(run.model, positive=2)
    with pytest.raises(PyroHeaError, match="background"):
        ex.shap_values(run.model, test, bg[:, :3])
    with pytest.raises(PyroHeaError, match="too many"):
        ex.exact_shapley_values(lambda a: a.sum(1), np.zeros((1, 13)), np.zeros((1, 13)))


# ------------------------------------------------------------------ traversals
def test_traversal_shapes_and_decoding(run):
    model = run.model
    tr = ex.latent_traversals(model, n_points=5)
    d, e = model.vae.config.latent_dim, len(model.vocabulary)
    assert tr.values.shape == (d, 5)
    assert tr.compositions.shape == (d, 2, 5, e)
    assert tr.ys == (0, 1)
    np.testing.assert_allclose(tr.compositions.sum(axis=-1), 100.0, rtol=1e-4)
    # point 4 of axis 1 at y = 1 is the decoder at z = (0, ..., values[1, 4], ..., 0)
    z = torch.zeros(d)
    z[1] = float(tr.values[1, 4])
    np.testing.assert_allclose(tr.compositions[1, 1, 4], model.vae.decode(z[None], 1)[0].numpy(), rtol=1e-5)
    np.testing.assert_allclose(tr.values[:, [0, -1]], np.tile([-3.0, 3.0], (d, 1)))
    frame = tr.to_frame()
    assert len(frame) == tr.compositions.size


def test_traversal_from_alloys_spans_their_posterior_means(run):
    train = run.df[run.split.isin(["labelled"]).to_numpy()]
    tr = ex.latent_traversals(run.model, train, n_points=3, ys=[1])
    means = ex.posterior_means(run.model, train)
    np.testing.assert_allclose(tr.base, np.median(means, axis=0), rtol=1e-6)
    np.testing.assert_allclose(tr.values[:, 0], np.percentile(means, 2, axis=0), rtol=1e-6)
    assert tr.compositions.shape[1] == 1
    with pytest.raises(PyroHeaError, match="n_points"):
        ex.latent_traversals(run.model, n_points=1)
    with pytest.raises(PyroHeaError, match="ys"):
        ex.latent_traversals(run.model, ys=[2])


def test_phase_probability_map(run, tmp_path):
    held = run.df[run.split.isin(["val", "test"]).to_numpy()]
    m = ex.phase_probability_map(run.model, held, n_grid=7)
    assert m["prob"].shape == (2, 7, 7)
    assert np.all((m["prob"] >= 0) & (m["prob"] <= 1))
    assert m["means"].shape == (len(held), run.model.vae.config.latent_dim)
    ex.plot_phase_probability_map(m, tmp_path / "map.png", labels=run.model.tensors(held).y.numpy())
    assert (tmp_path / "map.png").is_file()
    with pytest.raises(PyroHeaError, match="axes"):
        ex.phase_probability_map(run.model, axes=(0, 0))


def test_clean_decoded_drops_traces_and_uncovered_pairs():
    vocab = ("Fe", "Ni", "Th", "U")
    x = np.array([[50.0, 49.5, 0.3, 0.2], [40.0, 30.0, 20.0, 10.0]])
    clean = _clean_decoded(x, vocab, min_percent=1.0)
    np.testing.assert_allclose(clean.sum(axis=1), 100.0)
    assert clean[0, 2] == 0 and clean[0, 3] == 0  # below 1 at.%
    assert clean[1, 3] == 0 and clean[1, 2] > 0  # Th-U has no mixing enthalpy: the smaller goes


# ------------------------------------------------------------- disentanglement
def test_disentanglement_auc_on_synthetic_latents():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 2000)
    independent = rng.normal(size=(2000, 3))
    assert abs(ex.disentanglement_auc(independent, y) - 0.5) < 0.05
    leaky = independent + 1.5 * y[:, None] * np.array([1.0, 0.0, 0.0])
    assert ex.disentanglement_auc(leaky, y) > 0.8
    assert ex.disentanglement_auc(np.c_[y + 0.05 * rng.normal(size=2000)], y) > 0.99


def test_disentanglement_auc_rejects_bad_input():
    with pytest.raises(PyroHeaError, match="two classes"):
        ex.disentanglement_auc(np.zeros((5, 2)), np.ones(5))
    with pytest.raises(PyroHeaError, match="one row per label"):
        ex.disentanglement_auc(np.zeros((5, 2)), np.array([0, 1]))
    with pytest.raises(PyroHeaError, match="NaN"):
        ex.disentanglement_auc(np.full((4, 1), np.nan), np.array([0, 1, 0, 1]))


def test_disentanglement_score_of_fitted_models(run, monkeypatch):
    model = run.model
    held = run.split.isin(["val", "test"]).to_numpy() & run.df["single_phase"].notna().to_numpy()
    score = ex.disentanglement_score(model, run.df, run.split)
    assert score["n"] == int(held.sum())
    z = ex.posterior_means(model, run.df[held])
    assert score["auc"] == pytest.approx(ex.disentanglement_auc(z, run.df["single_phase"][held].to_numpy(int)))

    encoder = model.vae.encoder
    original = encoder.forward

    # z independent of y by construction: the encoder ignores its inputs
    def constant(x, features, y_onehot):
        loc, scale = original(x, features, y_onehot)
        return torch.zeros_like(loc), scale

    monkeypatch.setattr(encoder, "forward", constant)
    # (the per-fold intercepts still differ a little, so the AUC is near but not exactly 0.5)
    assert ex.disentanglement_score(model, run.df, run.split)["auc"] == pytest.approx(0.5, abs=0.08)

    # z carries y by construction: the encoder writes the class onto axis 0
    def leaky(x, features, y_onehot):
        loc, scale = original(x, features, y_onehot)
        return loc + 5.0 * y_onehot[..., 1:2] * torch.eye(loc.shape[-1])[0], scale

    monkeypatch.setattr(encoder, "forward", leaky)
    assert ex.disentanglement_score(model, run.df, run.split)["auc"] > 0.95
    with pytest.raises(PyroHeaError, match="no labelled alloy"):
        ex.disentanglement_score(model, run.df, run.split, rows=("nowhere",))


# ------------------------------------------------------------------------ CLI
def test_cli_explain_writes_plots_and_json(run, tmp_path, capsys):
    out = tmp_path / "explain"
    status = cli(["explain", str(run.path), "--out", str(out), "--background", "8", "--max-alloys", "6",
                  "--points", "4", "--grid", "6"])
    assert status == 0
    report = json.loads((out / "explain.json").read_text())
    assert set(report["global_importance"]) == set(DESCRIPTOR_NAMES)
    assert 0.0 <= report["disentanglement"]["auc"] <= 1.0
    for name in report["files"]:
        assert (out / name).is_file(), name
    assert "latent_phase_map.png" in report["files"]
    assert "disentanglement AUC" in capsys.readouterr().out


def test_cli_explain_errors(tmp_path, capsys):
    assert cli(["explain", str(tmp_path / "missing")]) == 2
    assert "error" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert cli(["explain", str(tmp_path / "empty")]) == 2
    assert "model.pt" in capsys.readouterr().err
