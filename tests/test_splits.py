"""The paper-protocol split, label_fraction, and the training-only scaler."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pyro_hea.data.composition import composition_key
from pyro_hea.data.descriptors import DESCRIPTOR_NAMES
from pyro_hea.data.splits import SPLITS, DescriptorScaler, SplitError, paper_split


def test_paper_split_counts(pei):
    split = paper_split(pei, seed=0)
    assert split.index.equals(pei.index) and split.name == "split"
    assert split.value_counts().to_dict() == {"labelled": 664, "unlabelled": 228, "val": 57, "test": 106}
    assert set(split) == set(SPLITS)


def test_paper_split_fractions(pei):
    counts = paper_split(pei, seed=1).value_counts()
    n = len(pei)
    assert counts["test"] == pytest.approx(0.1 * n, abs=1)
    pool = counts["unlabelled"] + counts["val"]
    assert pool == pytest.approx(0.3 * (n - counts["test"]), abs=1)
    assert counts["val"] == pytest.approx(0.2 * pool, abs=1)


def test_deterministic_for_a_seed(pei):
    a = paper_split(pei, seed=7)
    b = paper_split(pei, seed=7)
    c = paper_split(pei, seed=8)
    pd.testing.assert_series_equal(a, b)
    assert (a != c).any()
    assert set(a[a == "test"].index) != set(c[c == "test"].index)


@pytest.mark.parametrize("kwargs", [{}, {"stratify": True}, {"label_fraction": 0.25}, {"label": "phase"}])
def test_parts_are_disjoint_by_composition(pei, kwargs):
    split = paper_split(pei, seed=3, **kwargs)
    formulas = {name: set(pei.loc[split == name, "formula"]) for name in SPLITS}
    keys = {name: {composition_key(c) for c in pei.loc[split == name, "composition"]} for name in SPLITS}
    for i, a in enumerate(SPLITS):
        for b in SPLITS[i + 1:]:
            assert not formulas[a] & formulas[b], (a, b)
            assert not keys[a] & keys[b], (a, b)
    assert sum(len(f) for f in formulas.values()) == len(pei)


def test_label_fraction_is_stratified(pei):
    full = paper_split(pei, seed=0)
    part = paper_split(pei, seed=0, label_fraction=0.1)
    # test and validation do not move
    assert (full[full.isin(["test", "val"])] == part[full.isin(["test", "val"])]).all()
    labelled_full = full == "labelled"
    kept = part == "labelled"
    assert kept.sum() == round(0.1 * labelled_full.sum()) == 66
    assert (kept <= labelled_full).all()  # a subset of the labelled training split
    # the rest of the labelled split becomes unlabelled
    assert (part[labelled_full & ~kept] == "unlabelled").all()
    assert (part == "unlabelled").sum() == (full == "unlabelled").sum() + labelled_full.sum() - kept.sum()
    # class balance kept within a few percent
    ratio_full = pei.loc[labelled_full, "single_phase"].mean()
    ratio_kept = pei.loc[kept, "single_phase"].mean()
    assert abs(ratio_kept - ratio_full) < 0.03


def test_label_fraction_with_rare_classes(pei):
    split = paper_split(pei, seed=0, label="phase", label_fraction=0.005)
    kept = split == "labelled"
    # round(0.005 * 664) = 3 is raised to the number of classes, so that
    # scikit-learn can stratify (it used to raise a bare ValueError here)
    assert kept.sum() == 4
    assert (paper_split(pei, seed=0, label="phase")[kept] == "labelled").all()


def test_unlabelled_source_rows_stay_unlabelled(pei):
    df = pei.copy()
    hidden = df.sample(100, random_state=0).index
    df.loc[hidden, "single_phase"] = pd.NA
    for kwargs in ({}, {"label_fraction": 0.5}, {"stratify": True}):
        split = paper_split(df, seed=0, **kwargs)
        assert (split[hidden] == "unlabelled").all()
        labelled_rows = split.isin(["labelled", "val", "test"])
        assert df.loc[labelled_rows, "single_phase"].notna().all()


def test_stratify_keeps_class_ratio(pei):
    overall = pei["single_phase"].mean()
    for seed in range(3):
        split = paper_split(pei, seed=seed, stratify=True)
        for name in ("test", "val", "labelled"):
            assert abs(pei.loc[split == name, "single_phase"].mean() - overall) < 0.02, (seed, name)


def test_stratify_changes_the_draw(pei):
    assert (paper_split(pei, seed=0, stratify=True) != paper_split(pei, seed=0)).any()


def test_non_default_index(pei):
    df = pei.set_index(pei.index + 1000)
    split = paper_split(df, seed=0)
    assert split.index.equals(df.index)
    assert (split.to_numpy() == paper_split(pei, seed=0).to_numpy()).all()


@pytest.mark.parametrize(
    "kwargs, problem",
    [
        ({"test_size": 0.0}, r"test_size must be in \(0, 1\), got 0.0"),
        ({"test_size": 1.0}, r"test_size must be in \(0, 1\)"),
        ({"unlabelled_size": -0.3}, "unlabelled_size must be in"),
        ({"val_size": float("nan")}, "val_size must be in"),
        ({"label_fraction": 0.0}, r"label_fraction must be in \(0, 1\]"),
        ({"label_fraction": 1.5}, r"label_fraction must be in \(0, 1\]"),
        ({"label": "nope"}, "no label column 'nope'"),
    ],
)
def test_bad_settings(pei, kwargs, problem):
    with pytest.raises(SplitError, match=problem):
        paper_split(pei, **kwargs)


def test_too_few_labels(pei):
    df = pei.head(30).copy()
    df.loc[df.index[5:], "single_phase"] = pd.NA
    with pytest.raises(SplitError, match="only 5 labelled alloys"):
        paper_split(df)


# ---------------------------------------------------------------------------
# the scaler
# ---------------------------------------------------------------------------

def test_scaler_fit_on_training_rows_only(pei):
    split = paper_split(pei, seed=0)
    features = pei[list(DESCRIPTOR_NAMES)].to_numpy(dtype=float)
    train = split.isin(["labelled", "unlabelled"]).to_numpy()
    scaler = DescriptorScaler.fit(features[train])
    np.testing.assert_allclose(scaler.mean, features[train].mean(axis=0))
    np.testing.assert_allclose(scaler.scale, features[train].std(axis=0))
    assert not np.allclose(scaler.mean, features.mean(axis=0), rtol=1e-6, atol=0)
    scaled = scaler.transform(features[train])
    np.testing.assert_allclose(scaled.mean(axis=0), 0.0, atol=1e-9)
    np.testing.assert_allclose(scaled.std(axis=0), 1.0, atol=1e-9)
    # Tm in K is about 2,000; scaled it is order 1
    assert np.abs(scaler.transform(features[~train])).max() < 20


def test_scaler_round_trip():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 8)) * [100, 1, 2000, 3, 5, 0.1, 10, 20]
    scaler = DescriptorScaler.fit(x)
    np.testing.assert_allclose(scaler.inverse_transform(scaler.transform(x)), x, rtol=1e-12, atol=1e-9)


def test_scaler_constant_column():
    x = np.array([[1.0, 5.0], [3.0, 5.0]])
    scaler = DescriptorScaler.fit(x)
    assert scaler.scale.tolist() == [1.0, 1.0]
    assert scaler.transform(x).tolist() == [[-1.0, 0.0], [1.0, 0.0]]


def test_scaler_rejects_bad_input():
    with pytest.raises(SplitError, match="NaN or infinite"):
        DescriptorScaler.fit(np.array([[1.0, np.nan], [2.0, 3.0]]))
    with pytest.raises(SplitError, match="at least 2 rows"):
        DescriptorScaler.fit(np.array([[1.0, 2.0]]))
    scaler = DescriptorScaler.fit(np.array([[1.0, 2.0], [3.0, 4.0]]))
    with pytest.raises(SplitError, match="NaN or infinite"):
        scaler.transform(np.array([[np.nan, 1.0]]))
    with pytest.raises(SplitError, match="expected 2 descriptors, got 3"):
        scaler.transform(np.ones((1, 3)))
