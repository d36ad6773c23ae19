"""The contrast position: fitted after training, it moves only the multi-phase decodes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from pyro_hea import PhaseModel
from pyro_hea.design.contrast import ensure_contrast_position, fit_contrast_position, needs_contrast_position
from pyro_hea.design.designer import Designer
from pyro_hea.errors import PyroHeaError

SETTINGS = dict(steps=40, seed=0, progress=False)


@pytest.fixture(scope="module")
def pair(data):
    """The same fit with and without the contrast position (everything else equal)."""
    df, split = data
    fitted = PhaseModel.fit(df, split, contrast_position=True, **SETTINGS)
    assert needs_contrast_position(fitted)  # training leaves it to the first design
    assert ensure_contrast_position(fitted, df, split) is not None
    assert not needs_contrast_position(fitted) and ensure_contrast_position(fitted, df, split) is None
    return fitted, PhaseModel.fit(df, split, contrast_position=False, **SETTINGS)


def test_it_changes_no_prediction_and_no_single_phase_decode(pair, data):
    df, _ = data
    fitted, plain = pair
    assert np.array_equal(fitted.predict_proba(df), plain.predict_proba(df))  # q(y|x): bit for bit
    mu_fitted = fitted.vae.decoder.class_shift.weight.detach()
    mu_plain = plain.vae.decoder.class_shift.weight.detach()
    assert torch.equal(mu_fitted[:, 1], mu_plain[:, 1])  # the single-phase position stays
    assert not torch.equal(mu_fitted[:, 0], mu_plain[:, 0])  # the multi-phase one moved
    z = torch.randn(50, fitted.vae.config.latent_dim, generator=torch.Generator().manual_seed(1))
    assert torch.equal(fitted.vae.decode(z, 1), plain.vae.decode(z, 1))
    assert not torch.allclose(fitted.vae.decode(z, 0), plain.vae.decode(z, 0))
    # the encoder subtracts the class position exactly: the amortized reconstruction is unchanged;
    # the refined one moves a little where the prior's pull towards mu_0 changed
    a, b = fitted.tensors(df.iloc[:200]), plain.tensors(df.iloc[:200])
    assert torch.allclose(fitted.vae.reconstruct(a, refine_steps=0), plain.vae.reconstruct(b, refine_steps=0), atol=1e-4)
    apart = 0.5 * (fitted.vae.reconstruct(a) - plain.vae.reconstruct(b)).abs().sum(-1)
    assert float(apart.median()) < 1.0


def test_the_agreement_never_falls_and_is_recorded(pair):
    fitted, plain = pair
    record = fitted.metadata["contrast_position"]
    assert record["target"] == 1 and record["contrast"] == 0
    assert record["agreement_after"] >= record["agreement_before"]
    assert record["evaluations"] == 1 + 15 * 6
    assert "contrast_position" not in plain.metadata
    json.dumps(record)  # it goes into the checkpoint's JSON


def test_the_agreement_is_what_the_model_measures(pair, data):
    """The recorded agreement is recomputed from the fitted model: its own q prefers y = 1 and the y = 0 decode is valid."""
    df, split = data
    fitted, _ = pair
    designer = Designer(fitted, df, split)
    z = designer.sample_z(1000, seed=0 + 7919)
    own = designer.score(designer.decode(z, 1), 1, novelty=False, judged=False)
    other = designer.score(designer.decode(z, 0), 1, novelty=False, judged=False)
    agree = (own["scored"] & other["scored"] & other["valid"]
             & (own["p_model"] > other["p_model"])).to_numpy(bool)
    assert agree.sum() / own["scored"].sum() == pytest.approx(fitted.metadata["contrast_position"]["agreement_after"])
    assert np.isnan(own["p_judge"]).all()  # judged=False: the judge is not asked ...
    assert designer._judge is None  # ... nor fitted


def test_it_is_reproducible_and_saved(pair, data, tmp_path):
    df, split = data
    fitted, _ = pair
    again = PhaseModel.fit(df, split, contrast_position=True, **SETTINGS)
    Designer(again, df, split)  # a designer fits it when it is built
    assert torch.equal(again.vae.decoder.class_shift.weight, fitted.vae.decoder.class_shift.weight)
    fitted.save(tmp_path / "m.safetensors")
    loaded = PhaseModel.load(tmp_path / "m.safetensors")
    assert torch.equal(loaded.vae.decoder.class_shift.weight, fitted.vae.decoder.class_shift.weight)
    assert loaded.metadata["contrast_position"] == fitted.metadata["contrast_position"]
    assert loaded.vae.config.contrast_position is True


def test_it_is_skipped_where_it_does_not_apply(data):
    df, split = data
    mlp = PhaseModel.fit(df, split, decoder="mlp", steps=5, seed=0, progress=False)
    assert "contrast_position" not in mlp.metadata
    designer = Designer(mlp, df, split)
    with pytest.raises(PyroHeaError, match="needs the linear decoder"):
        fit_contrast_position(designer)


@pytest.mark.parametrize("option, value", [("draws", 0), ("rounds", -1), ("proposals", 2.5), ("draws", True)])
def test_bad_options_give_one_line(pair, data, option, value):
    df, split = data
    designer = Designer(pair[1], df, split)
    with pytest.raises(PyroHeaError, match=f"{option} must be an integer"):
        fit_contrast_position(designer, **{option: value})


def test_an_interrupted_search_keeps_the_trained_positions(pair, data, monkeypatch):
    df, split = data
    plain = pair[1]
    designer = Designer(plain, df, split)
    before = plain.vae.decoder.class_shift.weight.detach().clone()
    calls = {"n": 0}
    real = designer.decode

    def decode(z, y, realistic=True):
        calls["n"] += 1
        if calls["n"] > 3:
            raise KeyboardInterrupt
        return real(z, y, realistic)

    monkeypatch.setattr(designer, "decode", decode)
    with pytest.raises(KeyboardInterrupt):
        fit_contrast_position(designer)
    assert torch.equal(plain.vae.decoder.class_shift.weight, before)


def test_a_checkpoint_from_before_the_option_loads_without_it(pair, tmp_path):
    """A checkpoint whose model config predates ``contrast_position`` is read as False (its positions as trained)."""
    from pyro_hea.infer.checkpoint import load_checkpoint, save_checkpoint

    path = tmp_path / "old.safetensors"
    pair[1].save(path)
    data = load_checkpoint(path)
    meta = json.loads(data["meta_json"])
    del meta["model_config"]["contrast_position"]
    data["meta_json"] = json.dumps(meta)
    save_checkpoint(path, data)
    assert PhaseModel.load(path).vae.config.contrast_position is False


def test_the_fit_never_reads_the_labels_of_unlabelled_rows(pei):
    """Half the training rows unlabelled: flipping their hidden labels leaves the fitted position bit-identical."""
    from pyro_hea.data.splits import paper_split

    split = paper_split(pei, seed=0, label_fraction=0.5)
    hidden = (split == "unlabelled").to_numpy() & pei["single_phase"].notna().to_numpy()
    flipped = pei.copy()
    flipped.loc[hidden, "single_phase"] = 1 - flipped.loc[hidden, "single_phase"]
    weights = []
    for frame in (pei, flipped):
        model = PhaseModel.fit(frame, split, **SETTINGS)
        designer = Designer(model, frame, split)
        assert "agreement_after" in model.metadata["contrast_position"]
        weights.append(model.vae.decoder.class_shift.weight.detach().clone())
        _, y = designer.training_latents()
        assert (y[~designer.train_labelled] == -1).all()
    assert torch.equal(*weights)


def test_train_saves_the_fitted_position(run_dir):
    from pyro_hea.infer.run import load_run

    run = load_run(run_dir)
    assert "contrast_position" in run.model.metadata
