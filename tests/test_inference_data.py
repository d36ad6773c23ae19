"""The ArviZ export: groups, dims, coords, semantics, seeding and the netCDF round trip."""

from __future__ import annotations

import warnings

import arviz as az
import numpy as np
import pytest
import torch

from pyro_hea import PhaseModel, paper_split
from pyro_hea.data.descriptors import DESCRIPTOR_NAMES
from pyro_hea.errors import PyroHeaError
from pyro_hea.data.families import family_of
from pyro_hea.diagnostics.inference_data import single_phase_classes, to_inference_data
from pyro_hea.model.vae import ModelConfig

S = 40  # draws per chain


@pytest.fixture(scope="module")
def model(data):
    torch.manual_seed(0)
    return PhaseModel.build(*data, ModelConfig(hidden=[16, 16]))


@pytest.fixture(scope="module")
def idata(model, data):
    return to_inference_data(model, *data, num_samples=S, num_chains=2, seed=3)


def test_groups_variables_and_dims(idata, data, model):
    df, _ = data
    n, d, k, n_el = len(df), model.vae.config.latent_dim, model.n_classes, len(model.vocabulary)
    assert set(idata.groups()) == {
        "posterior",
        "posterior_predictive",
        "observed_data",
        "constant_data",
        "guide",
    }
    expect = {
        ("posterior", "z"): (("chain", "draw", "alloy", "latent_dim"), (2, S, n, d)),
        ("posterior", "y"): (("chain", "draw", "alloy"), (2, S, n)),
        ("posterior_predictive", "y"): (("chain", "draw", "alloy"), (2, S, n)),
        ("observed_data", "y"): (("labelled_alloy",), (int(df["single_phase"].notna().sum()),)),
        ("constant_data", "composition"): (("alloy", "element"), (n, n_el)),
        ("constant_data", "descriptors"): (("alloy", "descriptor"), (n, 8)),
        ("constant_data", "split"): (("alloy",), (n,)),
        ("constant_data", "is_labelled"): (("alloy",), (n,)),
        ("constant_data", "n_elements"): (("alloy",), (n,)),
        ("constant_data", "family"): (("alloy",), (n,)),
        ("constant_data", "phase_is_single"): (("phase",), (k,)),
        ("guide", "q_y"): (("alloy", "phase"), (n, k)),
        ("guide", "q_z_loc"): (("alloy", "phase", "latent_dim"), (n, k, d)),
        ("guide", "q_z_scale"): (("alloy", "phase", "latent_dim"), (n, k, d)),
    }
    for (group, name), (dims, shape) in expect.items():
        var = idata[group][name]
        assert var.dims == dims, (group, name)
        assert var.shape == shape, (group, name)
    assert "x" not in idata.posterior_predictive  # reconstructions are opt-in


def test_coords_are_real_names(idata, data, model):
    df, split = data
    post = idata.posterior
    assert list(post["alloy"].values) == df["formula"].tolist()
    assert post["alloy"].values[0] == "Ag5Zr95"
    assert list(idata.constant_data["element"].values) == list(model.vocabulary)
    assert {"Fe", "Ni", "Co", "Cr"} <= set(idata.constant_data["element"].values)
    assert list(idata.constant_data["descriptor"].values) == list(DESCRIPTOR_NAMES)
    assert list(idata.guide["phase"].values) == ["multi-phase", "single-phase"]
    assert list(post["latent_dim"].values) == list(range(model.vae.config.latent_dim))
    obs = idata.observed_data
    known = df["single_phase"].notna().to_numpy()
    assert list(obs["labelled_alloy"].values) == df["formula"][known].tolist()
    assert list(obs["split"].values) == split[known].tolist()
    assert obs["y"].values.tolist() == df["single_phase"][known].astype(int).tolist()


def test_constant_data(idata, data):
    df, split = data
    const = idata.constant_data
    np.testing.assert_allclose(const["composition"].sum("element"), 100.0, rtol=1e-5)
    np.testing.assert_allclose(const["descriptors"].sel(descriptor="VEC"), df["VEC"], rtol=1e-5)
    assert const["split"].values.tolist() == split.tolist()
    assert const["is_labelled"].values.tolist() == (split == "labelled").tolist()
    assert const["n_elements"].values.tolist() == df["n_elements"].tolist()
    assert const["family"].values.tolist() == [family_of(c) for c in df["composition"]]
    assert const["phase_is_single"].values.tolist() == [False, True]


def test_latent_y_is_the_label_for_labelled_and_a_draw_otherwise(idata, data):
    df, split = data
    y_post = idata.posterior["y"].values
    y_rep = idata.posterior_predictive["y"].values
    labelled = (split == "labelled").to_numpy()
    labels = df["single_phase"][labelled].astype(int).to_numpy()
    assert (y_post[:, :, labelled] == labels).all()
    assert (y_post[:, :, ~labelled] == y_rep[:, :, ~labelled]).all()
    # the predictive draws of labelled alloys come from q(y|x), not from the label
    assert (y_rep[:, :, labelled] != labels).any()


def test_draws_follow_the_guide(model, data):
    df, split = data
    big = to_inference_data(model, df, split, num_samples=2000, seed=0)
    q_y = big.guide["q_y"].values
    freq = (big.posterior_predictive["y"].values[0] == 1).mean(axis=0)
    np.testing.assert_allclose(freq, q_y[:, 1], atol=0.05)
    labelled = np.flatnonzero((split == "labelled").to_numpy())[:50]
    labels = df["single_phase"].iloc[labelled].astype(int).to_numpy()
    z = big.posterior["z"].values[0][:, labelled]  # (draws, alloys, d)
    loc = big.guide["q_z_loc"].values[labelled, labels]  # (alloys, d)
    scale = big.guide["q_z_scale"].values[labelled, labels]
    assert np.all(np.abs(z.mean(0) - loc) < 5 * scale / np.sqrt(2000))
    np.testing.assert_allclose(z.std(0), scale, rtol=0.1)


def test_seed_reproducible_and_global_rng_untouched(model, data):
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    a = to_inference_data(model, *data, num_samples=5, seed=7)
    after = torch.rand(3)
    b = to_inference_data(model, *data, num_samples=5, seed=7)
    c = to_inference_data(model, *data, num_samples=5, seed=8)
    assert torch.equal(after, expected_next)
    assert a.posterior.identical(b.posterior) and a.posterior_predictive.identical(
        b.posterior_predictive
    )
    assert not np.array_equal(a.posterior["z"].values, c.posterior["z"].values)


def test_netcdf_round_trip_is_identical(model, data, tmp_path):
    idata = to_inference_data(model, *data, num_samples=6, num_chains=2, seed=1, reconstructions=True)
    assert idata.posterior_predictive["x"].dims == ("chain", "draw", "alloy", "element")
    np.testing.assert_allclose(idata.posterior_predictive["x"].sum("element"), 100.0, rtol=1e-4)
    assert idata.observed_data["x"].dims == ("alloy", "element")
    path = tmp_path / "idata.nc"
    idata.to_netcdf(str(path))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        back = az.from_netcdf(str(path))
    assert set(back.groups()) == set(idata.groups())
    for group in idata.groups():
        before, after = idata[group], back[group].load()
        assert set(before.data_vars) == set(after.data_vars), group
        for name in before.data_vars:
            np.testing.assert_array_equal(
                after[name].values, before[name].values, err_msg=f"{group}.{name}"
            )
            assert after[name].dims == before[name].dims
            assert after[name].dtype.kind == before[name].dtype.kind or before[name].dtype.kind == "O"
        for name in before.coords:
            assert list(after[name].values) == list(before[name].values), f"{group} coord {name}"
        assert list(after.attrs["class_names"]) == ["multi-phase", "single-phase"]
    back.close()


def test_to_datatree(idata):
    tree = idata.to_datatree()
    assert set(tree.children) == set(idata.groups())
    assert tree["posterior"]["z"].dims == ("chain", "draw", "alloy", "latent_dim")


def test_four_classes_and_wider_latent(data):
    df, split4 = data[0], paper_split(data[0], seed=0, label="phase")
    torch.manual_seed(0)
    model = PhaseModel.build(df, split4, ModelConfig(n_classes=4, latent_dim=3, hidden=[8]))
    idata = to_inference_data(model, df, split4, num_samples=3)
    assert list(idata.guide["phase"].values) == ["BCC", "FCC", "HCP", "multi"]
    assert idata.constant_data["phase_is_single"].values.tolist() == [True, True, True, False]
    assert idata.posterior.sizes["latent_dim"] == 3
    assert set(np.unique(idata.posterior_predictive["y"].values)) <= {0, 1, 2, 3}


def test_single_phase_classes():
    assert single_phase_classes(["multi-phase", "single-phase"]).tolist() == [False, True]


def test_bad_input(model, data):
    df, split = data
    with pytest.raises(PyroHeaError, match="num_samples"):
        to_inference_data(model, df, split, num_samples=0)
    with pytest.raises(PyroHeaError, match="split name"):
        to_inference_data(model, df, split.replace("test", "holdout"))
