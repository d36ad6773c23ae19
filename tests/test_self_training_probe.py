"""benchmarks/self_training_probe.py: pseudo-labels place the forest; validation only."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest


@pytest.fixture(scope="module")
def probe(load_benchmark):
    return load_benchmark("self_training_probe")


def test_pseudo_labels_keep_the_real_labels_and_label_only_confident_unlabelled_alloys(probe):
    from pyro_hea import PhaseModel, load_dataset, paper_split

    df = load_dataset("pei2020")
    split = paper_split(df, seed=0, label_fraction=0.1)
    model = PhaseModel.fit(df, split, steps=10, latent_dim=2, seed=0, progress=False)
    labels, pseudo = probe.pseudo_labels(model, df, split, tau=0.9)
    train = split.isin(["labelled", "unlabelled"]).to_numpy()
    part = split[train].to_numpy()
    real = df.loc[train, "single_phase"].to_numpy()
    assert np.array_equal(labels[part == "labelled"], real[part == "labelled"].astype(int))
    assert not pseudo[part == "labelled"].any()
    q = model.predict_proba(df[train]).max(axis=1)
    assert np.array_equal(pseudo, (part == "unlabelled") & (q >= 0.9))
    assert np.all(labels[(part == "unlabelled") & ~pseudo] == -1)


def test_with_the_real_labels_the_refit_is_the_plain_fit_bit_for_bit(probe):
    # the control: only the forest's labels may differ between the two fits of the probe
    import torch

    from pyro_hea import PhaseModel, load_dataset, paper_split

    df = load_dataset("pei2020")
    split = paper_split(df, seed=1, label_fraction=0.1)
    plain = PhaseModel.fit(df, split, steps=10, latent_dim=2, seed=1, progress=False)
    labels, pseudo = probe.pseudo_labels(plain, df, split, tau=0.999999)
    labels[pseudo] = -1  # real labels only
    again = probe.fit_with_forest_labels(df, split, labels, steps=10, latent_dim=2, seed=1)
    a, b = plain.vae.state_dict(), again.vae.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    fewer = labels.copy()
    fewer[np.flatnonzero(labels >= 0)[::2]] = -1  # half the labels (flipping them all would not do:
    other = probe.fit_with_forest_labels(df, split, fewer, steps=10, latent_dim=2, seed=1)  # Gini is symmetric)
    forest = other.vae.classifier.forest
    assert not (torch.equal(forest.thresholds, a["classifier.forest.thresholds"])
                and torch.equal(forest.split_feature, a["classifier.forest.split_feature"]))


def test_the_probe_scores_validation_only_and_reports_paired_differences(probe, tmp_path):
    table = probe.main(["--fractions", "0.1", "--seeds", "0", "--steps", "5", "--out-dir", str(tmp_path)])
    assert table["variant"].tolist() == ["default", "self-trained forest, tau=0.9"]
    assert table["auc"].between(0, 1).all()
    text = (tmp_path / "self_training_probe.md").read_text()
    assert "Paired AUC difference" in text and "test was not read" in text
    with pytest.raises(SystemExit, match="tau"):
        probe.main(["--tau", "0.2", "--out-dir", str(tmp_path)])
    assert pd.read_csv(tmp_path / "self_training_probe.csv").shape[0] == 2
