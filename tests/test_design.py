"""Inverse design: design spaces, validity rules, novelty, the judge and the four workflows."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from pyro_hea import PhaseModel
from pyro_hea.data.composition import canonical_formula, to_vector
from pyro_hea.data.descriptors import DESCRIPTOR_NAMES, featurize
from pyro_hea.design.designer import Designer, DesignError, format_summary
from pyro_hea.design.space import (
    DEFAULT_PALETTE,
    RADIOACTIVE,
    CompositionRules,
    DesignSpaceError,
    check_validity,
    equimolar_space,
    formulas,
    grid_space,
    principal_elements,
    realize,
)
from pyro_hea.errors import PyroHeaError
from pyro_hea.design.judge import Judge
from pyro_hea.design.novelty import DescriptorDomain, NoveltyIndex, composition_distance

REQUIRED = ["formula", "p_model", "p_judge", "novelty_distance", "nearest_training_alloy", "valid", "novel"]


@pytest.fixture(scope="session")
def model(data):
    df, split = data
    return PhaseModel.fit(df, split, steps=40, latent_dim=2, seed=0, progress=False)


@pytest.fixture(scope="session")
def designer(model, data):
    df, split = data
    return Designer(model, df, split)


def brute_nearest(x, reference):
    d = composition_distance(x[:, None, :], reference[None, :, :])
    return d.min(axis=1), d.argmin(axis=1)


# ------------------------------------------------------------------ design space
def test_realize_gives_rounded_compositions_within_the_rules():
    rng = np.random.default_rng(0)
    x = rng.dirichlet(np.full(30, 0.3), size=500) * 100
    rules = CompositionRules(min_percent=5, resolution=0.5, min_elements=2, max_elements=6)
    r = realize(x, rules)
    assert np.allclose(r.sum(axis=1), 100.0)
    assert np.allclose(r / 0.5, np.rint(r / 0.5))
    assert ((r > 0).sum(axis=1) <= 6).all()
    assert (r[r > 0] >= 4.5).all()  # at least min_percent before rounding, minus half a step of renormalisation
    # the kept elements are the largest of each row
    for row, out in zip(x[:50], r[:50]):
        kept = np.flatnonzero(out > 0)
        assert row[kept].min() >= np.sort(row)[-len(kept)]
    assert check_validity(r, rules).all()


def test_realize_keeps_the_largest_element_and_rejects_bad_input():
    r = realize(np.array([[1.0, 1.0, 2.0]]), CompositionRules(min_percent=60, min_elements=1))
    assert r.tolist() == [[0.0, 0.0, 100.0]]
    with pytest.raises(DesignSpaceError, match="negative"):
        realize(np.array([[50.0, -1.0]]))
    with pytest.raises(DesignSpaceError, match="all zero"):
        realize(np.zeros((1, 3)))


@pytest.mark.parametrize("kwargs, message", [
    ({"resolution": 0.3}, "resolution"), ({"min_percent": 100}, "min_percent"),
    ({"min_elements": 5, "max_elements": 3}, "min_elements"),
    ({"max_percent": 5.0}, "max_percent"), ({"max_percent": 101.0}, "max_percent"),
    ({"max_percent": float("nan")}, "max_percent"), ({"max_percent": 10.0, "max_elements": 8}, "max_elements"),
])
def test_composition_rules_reject_bad_settings(kwargs, message):
    with pytest.raises(PyroHeaError, match=message):
        CompositionRules(**kwargs)


def test_validity_rules():
    rules = CompositionRules(min_elements=2, max_elements=3)
    x = np.array([
        [50.0, 50.0, 0, 0],        # valid
        [100.0, 0, 0, 0],          # one element
        [25.0, 25, 25, 25],        # four elements
        [60.0, 50, -10, 0],        # negative entry
        [40.0, 40, 0, 0],          # sums to 80
        [np.nan, 50, 50, 0],       # not finite
    ])
    assert check_validity(x, rules).tolist() == [True, False, False, False, False, False]
    # an upper share: 35 at.% at most (the default, 100, bounds nothing)
    capped = CompositionRules(max_percent=35.0)
    shares = np.array([[35.0, 25, 20, 20], [35.5, 24.5, 20, 20], [59.0, 21, 15, 5]])
    assert check_validity(shares, capped).tolist() == [True, False, False]
    assert check_validity(shares).tolist() == [True, True, True]


def test_the_designer_names_an_element_above_the_upper_share(model, data):
    df, split = data
    capped = Designer(model, df, split, rules=CompositionRules(max_percent=35.0))
    x = np.zeros((1, len(capped.vocabulary)))
    for el, amount in {"Co": 15, "Cr": 21, "Fe": 5, "Ni": 59}.items():
        x[0, capped.vocabulary.index(el)] = amount
    row = capped.score(x).iloc[0]
    assert not row["valid"] and "Ni at 59 at.%, above max_percent 35" in row["flag"]
    result = capped.invert("Al2CoCrFeNi", max_steps=4, proposals=16)
    assert (result.compositions[1:].max(axis=1) <= 35.0 + 1e-9).all()


def test_equimolar_and_grid_spaces():
    x, elements = equimolar_space(["Co", "Cr", "Fe", "Ni", "Mn"], 3)
    assert len(x) == math.comb(5, 3) and elements == ("Co", "Cr", "Fe", "Ni", "Mn")
    assert np.allclose(x[x > 0], 100 / 3) and ((x > 0).sum(axis=1) == 3).all()
    g, _ = grid_space(["Co", "Cr", "Fe", "Ni"], 3, step=5, min_percent=10, max_percent=50)
    assert np.allclose(g.sum(axis=1), 100) and ((g > 0).sum(axis=1) == 3).all()
    assert g[g > 0].min() >= 10 and g.max() <= 50
    assert len(np.unique(g, axis=0)) == len(g)
    with pytest.raises(DesignSpaceError, match="unknown element"):
        equimolar_space(["Co", "Xx"], 2)
    with pytest.raises(DesignSpaceError, match="more than the limit"):
        grid_space(k=6, step=1, min_percent=1, max_percent=100)


def test_fast_formulas_are_canonical():
    rng = np.random.default_rng(1)
    vocab = ["Al", "Co", "Cr", "Fe", "Ni", "Ti", "Nb", "Mo"]
    grid = realize(rng.dirichlet(np.ones(8), size=200) * 100, CompositionRules(resolution=0.1, min_percent=2))
    off_grid = rng.dirichlet(np.ones(8), size=20) * 100
    for x in (grid, off_grid):
        assert formulas(x, vocab) == [canonical_formula(dict(zip(vocab, row / 100))) for row in x]


# ----------------------------------------------------------------------- novelty
def test_novelty_index_is_exact(data):
    df, _ = data
    vocab = sorted({el for c in df["composition"] for el in c})
    reference = np.stack([to_vector(c, vocab) for c in df["composition"]])
    index = NoveltyIndex(reference, df["formula"].tolist())
    rng = np.random.default_rng(2)
    x = realize(reference[rng.integers(0, len(reference), 300)] + rng.gamma(0.3, 8, (300, len(vocab))))
    distance, names = index.query(x)
    expected, _ = brute_nearest(x, reference)
    assert np.allclose(distance, expected, atol=1e-3)
    position = {f: i for i, f in enumerate(df["formula"])}
    named = reference[[position[n] for n in names]]
    assert np.allclose(composition_distance(x, named), expected, atol=1e-3)  # the name is a nearest alloy
    # every training alloy is its own nearest neighbour, at distance 0
    d0, n0 = index.query(reference[:50])
    assert np.allclose(d0, 0, atol=1e-4) and n0 == df["formula"].iloc[:50].tolist()


def test_descriptor_domain_flags_values_outside_the_training_range():
    train = np.random.default_rng(3).normal(size=(100, 8))
    domain = DescriptorDomain(train, margin=0.1)
    probe = np.zeros((2, 8))
    probe[1, DESCRIPTOR_NAMES.index("VEC")] = train[:, 3].max() + 0.2 * np.ptp(train[:, 3])
    ok, why = domain.check(probe)
    assert ok.tolist() == [True, False] and why[1] == "VEC above the training range"


# ------------------------------------------------------------------------- judge
def test_judge_fits_all_labelled_alloys_and_predicts_probabilities(data, designer):
    df, _ = data
    judge = designer.judge
    assert judge.n_train == int(df["single_phase"].notna().sum())
    p = judge.predict_proba(df[list(DESCRIPTOR_NAMES)].to_numpy()[:20])
    assert p.shape == (20, 2) and np.allclose(p.sum(axis=1), 1)
    with pytest.raises(PyroHeaError, match="descriptors"):
        judge.predict_proba(np.zeros((3, 5)))


def test_the_judge_is_never_used_to_generate(model, data, designer):
    df, split = data
    other_judge = Judge.fit(df.sample(frac=0.5, random_state=1), seed=1)
    other = Designer(model, df, split, judge=other_judge)
    a = designer.latent(n=300, seed=5, compare=False).table
    b = other.latent(n=300, seed=5, compare=False).table
    assert a["formula"].tolist() == b["formula"].tolist()
    assert np.allclose(a["p_model"], b["p_model"]) and a["accepted"].tolist() == b["accepted"].tolist()
    assert not np.allclose(a["p_judge"], b["p_judge"])


# --------------------------------------------------------------------- screening
def test_screen_scores_a_list_and_flags_alloys_outside_the_vocabulary(designer, model):
    alloys = ["CoCrFeMnNi", "NbMoTaW", "CoCrFeNiB0.2", "Fe", "Al0.5CoCrFeNi"]
    result = designer.screen(alloys)
    t = result.table.set_index("input_index").sort_index()
    assert set(REQUIRED) <= set(t.columns)
    boron = t.loc[2]
    assert not boron["scored"] and np.isnan(boron["p_model"]) and np.isnan(boron["p_judge"])
    assert "['B']" in boron["flag"] and "vocabulary" in boron["flag"]
    assert not t.loc[3, "valid"] and "invalid" in t.loc[3, "flag"]
    scored = t[t["scored"]]
    expected = model.predict_proba(scored["formula"].tolist())[:, 1]
    assert np.allclose(scored["p_model"], expected, atol=1e-5)
    # known alloys are found in the training data, at distance 0
    assert t.loc[0, "nearest_training_alloy"] == canonical_formula("CoCrFeMnNi") and not t.loc[0, "novel"]
    # sorted: valid, in-domain, scored rows first, by p_model
    good = (result.table["scored"] & result.table["valid"] & result.table["in_domain"]).to_numpy()
    assert not np.any(np.diff(good.astype(int)) > 0)
    assert (np.diff(result.table.loc[good, "p_model"].to_numpy()) <= 0).all()
    assert result.summary["flagged"] == int((~good).sum()) == 2
    assert 0.0 <= t.loc[0, "uncertainty"] <= 1.0


def test_screen_generated_spaces_and_domain_flags(designer, data):
    palette = ["Co", "Cr", "Fe", "Ni", "Mn", "Nb", "W"]
    result = designer.screen(palette=palette, k=4)
    assert len(result.table) == math.comb(7, 4) and result.table["scored"].all()
    assert result.table["formula"].nunique() == len(result.table)
    grid = designer.screen(palette=["Co", "Cr", "Fe", "Ni"], k=4, grid_step=10, min_percent=10, max_percent=40)
    assert np.allclose(grid.compositions.sum(axis=1), 100) and len(grid.table) > 10
    # a palette element outside the vocabulary is flagged, not scored
    oov = designer.screen(palette=["Co", "Cr", "Fe", "Cs"], k=3)
    unscored = oov.table[~oov.table["scored"]]
    assert len(unscored) == 3 and unscored["flag"].str.contains("Cs").all()
    # descriptors outside the training range are flagged: a domain spanned by 3d alloys only
    df, _ = data
    cantor_like = df["composition"].map(lambda c: set(c) <= {"Co", "Cr", "Fe", "Ni", "Mn"})
    narrow = Designer(designer.model, df, judge=designer.judge)
    narrow.domain = DescriptorDomain(df.loc[cantor_like, list(DESCRIPTOR_NAMES)].to_numpy(), margin=0.0)
    t = narrow.screen(["NbMoTaW", "CoCrFeNi"]).table.set_index("formula")
    refractory = t.loc[canonical_formula("NbMoTaW")]
    assert not refractory["in_domain"] and "training range" in refractory["flag"]
    assert t.loc[canonical_formula("CoCrFeNi"), "in_domain"]


# ---------------------------------------------------------------- latent design
def test_latent_design_gives_valid_deduplicated_rescored_candidates(designer, model, data):
    result = designer.latent(n=2000, target="single-phase", seed=0)
    t = result.table
    assert set(REQUIRED + ["z_1", "z_2", "accepted", "draws", "formula_contrast", "p_model_contrast"]) <= set(t.columns)
    assert t["draws"].sum() == 2000 and t["formula"].is_unique
    assert result.summary["generated"] == 2000 and result.summary["unique"] == len(t)
    assert np.allclose(result.compositions.sum(axis=1), 100)
    assert (check_validity(result.compositions) == t["valid"].to_numpy()).all()
    # re-featurized and re-classified: p_model is the model's q(y=1 | x) of the realized alloy
    sample = t.sample(50, random_state=0)
    assert np.allclose(sample["p_model"], model.predict_proba(sample["formula"].tolist())[:, 1], atol=1e-5)
    raw = featurize(result.compositions[sample.index], designer.vocabulary)
    assert np.allclose(sample["p_judge"], designer.judge.predict_proba(raw)[:, 1])
    # accepted = valid, scored, inside the training domain, novel, and classified as the target by the model
    assert (t["accepted"] == (t["valid"] & t["scored"] & t["in_domain"] & t["novel"] & (t["p_model"] >= 0.5))).all()
    assert result.summary["candidates"] == int(t["accepted"].sum())
    # novelty against the data set, checked by brute force
    df, _ = data
    reference = model.tensors(df).x.numpy()
    d, _ = brute_nearest(result.compositions[sample.index], reference)
    assert np.allclose(sample["novelty_distance"], d, atol=1e-3)
    assert (sample["novel"] == (sample["novelty_distance"] > designer.novelty_threshold)).all()
    # the same z decoded with the other class
    z = t[["z_1", "z_2"]].to_numpy()
    other = designer.decode(z[:20], "multi-phase")
    assert formulas(other, designer.vocabulary) == t["formula_contrast"].iloc[:20].tolist()
    assert "candidates per second" in format_summary(result.summary)


def test_excluded_elements_never_appear_in_decoded_alloys(model, data, designer):
    df, split = data
    plain = designer.latent(n=500, seed=0, compare=False).composition_frame()
    common = plain.columns[plain.gt(0).mean().argsort()[::-1][:3]].tolist()  # the three most used elements
    strict = Designer(model, df, split, judge=designer.judge, rules=CompositionRules(exclude=tuple(common)))
    result = strict.latent(n=500, seed=0)
    for el in common:
        column = designer.vocabulary.index(el)
        assert (result.compositions[:, column] == 0).all() and (result.contrast[:, column] == 0).all()
    with pytest.raises(PyroHeaError, match="unknown element"):
        CompositionRules(exclude=("Qq",))


def test_latent_design_is_reproducible_with_a_seed(designer):
    a = designer.latent(n=500, seed=3).table
    b = designer.latent(n=500, seed=3).table
    c = designer.latent(n=500, seed=4).table
    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(a["z_1"].to_numpy()[:10], c["z_1"].to_numpy()[:10])


def test_latent_sources_and_bad_settings(designer):
    post = designer.latent(n=300, source="posterior", family="refractory", seed=0, compare=False)
    assert post.summary["source"] == "posterior (refractory)" and len(post.table) > 0
    with pytest.raises(DesignError, match="N\\(0, I\\)"):
        designer.sample_z(10, source="prior", family="refractory")
    with pytest.raises(DesignError, match="unknown family"):
        designer.sample_z(10, source="posterior", family="noble")
    with pytest.raises(DesignError, match="unknown class"):
        designer.latent(n=10, target="bcc")
    with pytest.raises(DesignError, match="accept"):
        designer.latent(n=10, accept=1.5)
    with pytest.raises(DesignError, match="positive"):
        designer.latent(n=0)


# ------------------------------------------------------------ inversion and path
def test_iterative_inversion_returns_a_trajectory(designer, model):
    result = designer.invert("Al2CoCrFeNi", target="single-phase", threshold=1.0, max_steps=4, proposals=0)
    t = result.table
    assert t["step"].tolist() == list(range(len(t))) and 2 <= len(t) <= 5
    assert t["formula"].iloc[0] == canonical_formula("Al2CoCrFeNi")
    # the formula rounds the composition to 1e-4 at.%; a tree split of q(y|x) can fall in between
    assert np.allclose(t["p_model"], model.predict_proba(t["formula"].tolist())[:, 1], atol=1e-4)
    assert result.summary["stopped"] in ("step budget", "fixed point (the composition stopped changing)")
    assert result.summary["proposals"] == 0 and "seed" not in result.summary
    assert (t["valid"] == check_validity(result.compositions)).all() and {"z_1", "z_2"} <= set(t.columns)
    # the start already passes a low threshold: the trajectory is the start alone
    short = designer.invert("Al2CoCrFeNi", threshold=1e-9)
    assert len(short.table) == 1 and short.summary["stopped"] == "threshold reached"
    with pytest.raises(DesignError, match="outside the model's vocabulary"):
        designer.invert("CoCrFeNiB")


def test_interpolation_walks_a_straight_line_in_z(designer):
    result = designer.interpolate("NbMoTaW", "CoCrFeMnNi", steps=5)
    t = result.table
    assert len(t) == 5 and np.allclose(t["t"], np.linspace(0, 1, 5))
    z = t[["z_1", "z_2"]].to_numpy()
    assert np.allclose(z[2], (z[0] + z[4]) / 2, atol=1e-5)
    frame = result.composition_frame()
    assert np.allclose(frame.sum(axis=1), 100) and set(frame.columns) <= set(designer.vocabulary)
    with pytest.raises(DesignError, match="at least 2"):
        designer.interpolate("NbMoTaW", "CoCrFeMnNi", steps=1)


# ------------------------------------------- high-entropy target, palette, bad input
def test_default_rules_are_a_high_entropy_target():
    rules = CompositionRules()
    assert (rules.min_elements, rules.min_percent, rules.palette) == (4, 5.0, DEFAULT_PALETTE)
    for el in ("Th", "U", "Pu", "Tc", "Pm", "Np", "Ra", "Po"):
        assert el in RADIOACTIVE
    assert not {"Bi", "Pb", "Fe", "W"} & set(RADIOACTIVE)
    assert rules.allowed(["Fe", "Ir", "Th"]).tolist() == [True, False, False]   # Ir: not in the palette
    assert CompositionRules(palette=None).allowed(["Fe", "Ir", "Th"]).tolist() == [True, True, False]
    assert CompositionRules(palette=None, allow_radioactive=True).allowed(["Th"]).tolist() == [True]
    with pytest.raises(DesignSpaceError, match="no alloy has 4 elements of at least 30"):
        CompositionRules(min_percent=30)
    with pytest.raises(DesignSpaceError, match="palette has unknown"):
        CompositionRules(palette=("Fe", "Qq"))


def test_an_element_below_the_minimum_does_not_count():
    rules = CompositionRules(min_elements=2)
    x = np.array([[100.0, 0, 0], [100 - 1e-6, 1e-6, 0], [95.0, 4.0, 1.0], [90.0, 5.0, 5.0]])
    assert principal_elements(x, rules).tolist() == [1, 1, 1, 3]
    assert check_validity(x, rules).tolist() == [False, False, False, True]


def test_screen_treats_a_trace_element_like_a_pure_element(designer):
    result = designer.screen(["Fe100000000Ni1", "Fe", "CoCrFeNi", "CoCrFeNiAl0.1"])
    t = result.table.set_index("input_index").sort_index()
    assert t["valid"].tolist() == [False, False, True, True]
    assert t["n_elements"].tolist() == [1, 1, 4, 4]   # Al at 2.4 at.% is a minor addition
    assert "1 principal element" in t.loc[0, "flag"] and "1 principal element" in t.loc[1, "flag"]
    ranked = result.table["input_index"].tolist()
    assert ranked.index(0) > ranked.index(2) and ranked.index(0) > ranked.index(3)   # invalid rows come last


def test_screen_reports_an_unreadable_formula_in_one_line(designer):
    with pytest.raises(DesignError) as err:
        designer.screen(["CoCrFeNi", "Fe1e308Ni1e308"])
    message = str(err.value)
    assert "\n" not in message and "alloy 1" in message and message.count("Fe1e308Ni1e308") == 1


def test_grid_space_is_counted_before_it_is_enumerated():
    import itertools
    import time

    from pyro_hea.design.space import _grid_count

    for k, total, low, high in [(3, 10, 2, 5), (4, 20, 1, 7), (5, 20, 1, 20), (3, 5, 3, 4)]:
        brute = sum(1 for v in itertools.product(range(low, high + 1), repeat=k) if sum(v) == total)
        assert _grid_count(k, total, low, high) == brute
    started = time.perf_counter()
    with pytest.raises(DesignSpaceError, match="more than the limit"):
        grid_space(step=0.001)
    with pytest.raises(DesignSpaceError, match="divides 100"):
        grid_space(step=float("inf"))
    assert time.perf_counter() - started < 1.0


def test_a_model_with_nan_weights_is_an_error_not_a_score(model, data, designer):
    import copy

    broken = copy.deepcopy(model)
    with torch.no_grad():
        for p in broken.vae.classifier.parameters():
            p.fill_(float("nan"))
    bad = Designer(broken, data[0], data[1], judge=designer.judge)
    with pytest.raises(DesignError, match="non-finite probabilities"):
        bad.screen(["CoCrFeNi", "NbMoTaW"])


def test_latent_draws_are_bounded(designer):
    with pytest.raises(DesignError, match="more than the limit"):
        designer.latent(n=1_000_000_000)
    with pytest.raises(DesignError, match="more than the limit"):
        designer.latent(n=10, n_accepted=10**9)
    with pytest.raises(DesignError, match="whole number"):
        designer.latent(n=2.5)
    with pytest.raises(DesignError, match="spread"):
        designer.latent(n=10, spread=float("nan"))


def test_latent_candidates_are_high_entropy_alloys_of_the_palette(model, data, designer):
    result = designer.latent(n=1000, seed=2, accept=None)   # the tiny test model accepts little at 0.5
    t, x = result.table, result.compositions
    allowed = designer.rules.allowed(designer.vocabulary)
    finite = np.isfinite(x).all(axis=1)
    assert not (x[finite][:, ~allowed] > 0).any() and not (result.contrast[finite][:, ~allowed] > 0).any()
    acc = t["accepted"].to_numpy()
    assert acc.any()
    heavy = x[acc]
    assert ((heavy > 0).sum(axis=1) >= 4).all() and (heavy[heavy > 0] >= 5).all()
    # every decode is accounted for: accepted, or rejected for exactly one (the first failing) reason
    assert sum(result.summary["rejected"].values()) + result.summary["candidates"] == len(t)
    assert result.summary["accept_rate"] == pytest.approx(acc.mean())
    # with the whole vocabulary allowed, still no radioactive element
    df, split = data
    wide = Designer(model, df, split, judge=designer.judge, rules=CompositionRules(palette=None))
    xw = wide.latent(n=1000, seed=2, source="prior").compositions
    radioactive = np.isin(np.array(designer.vocabulary), RADIOACTIVE)
    assert not (np.nan_to_num(xw)[:, radioactive] > 0).any()


def test_decoding_restricts_the_element_probabilities_to_the_palette(designer):
    z = np.random.default_rng(0).normal(size=(50, designer.model.vae.config.latent_dim))
    p = designer.model.vae.decode(torch.as_tensor(z, dtype=torch.float32), 1).numpy().astype(float)
    allowed = designer.rules.allowed(designer.vocabulary)
    expected = np.where(allowed, p, 0) / p[:, allowed].sum(axis=1, keepdims=True) * 100
    assert np.allclose(designer.decode(z, 1, realistic=False), expected)


def test_the_design_pool_is_target_class_alloys_that_meet_the_rules(designer):
    alloys, what = designer.design_pool("target", target="single-phase")
    x = alloys.x.numpy()
    assert (alloys.y.numpy() == 1).all() and check_validity(x, designer.rules).all()
    assert not (x[:, ~designer.rules.allowed(designer.vocabulary)] > 0).any()
    assert what.startswith(f"{len(x)} training alloys")
    wider, _ = designer.design_pool("rules")
    everything, _ = designer.design_pool("all")
    assert len(x) <= len(wider) <= len(everything) == len(designer.train_rows)
    with pytest.raises(DesignError, match="no training alloy"):
        designer.design_pool("target", family="precious")   # no precious metal in the default palette
    with pytest.raises(DesignError, match="pool must be"):
        designer.design_pool("mine")
    # posterior draws sit at the pool's encodings
    z = designer.sample_z(2000, source="posterior", spread=0.0, seed=0)
    loc, _ = designer.model.vae.encode(alloys.hide_labels(), alloys.y)
    assert len(np.unique(z.numpy().round(5), axis=0)) <= len(x)
    assert np.isin(z.numpy()[:, 0].round(5), loc.numpy()[:, 0].round(5)).all()


def test_latent_resamples_until_enough_are_accepted(designer):
    one = designer.latent(n=100, seed=7, compare=False)
    many = designer.latent(n=100, seed=7, compare=False, n_accepted=one.summary["candidates"] + 30)
    assert many.summary["rounds"] >= 2 and many.summary["generated"] == 100 * many.summary["rounds"]
    assert many.summary["candidates"] >= one.summary["candidates"] + 30 or many.summary["rounds"] == 20
    assert many.table["formula"].iloc[:len(one.table)].tolist() == one.table["formula"].tolist()  # round 0 = seed
    assert many.table["draws"].sum() == many.summary["generated"]
    with pytest.raises(DesignError, match="given z"):
        designer.latent(z=np.zeros((3, 2)), n_accepted=5)


def test_the_contrast_summary_says_how_often_the_judge_prefers_the_target_decode(designer):
    result = designer.latent(n=300, seed=1)
    c, t = result.summary["contrast"], result.table
    both = t["scored"] & t["p_judge_contrast"].notna()
    assert c["compared"] == int(both.sum())
    assert c["judge_prefers_target"] == pytest.approx((t.loc[both, "p_judge"] > t.loc[both, "p_judge_contrast"]).mean())
    assert "the judge prefers the y=single-phase decode" in format_summary(result.summary)
    # the contrast decode's own validity, recomputed from its compositions, and the comparison of valid pairs
    valid_contrast = check_validity(np.nan_to_num(result.contrast), designer.rules)
    np.testing.assert_array_equal(t["valid_contrast"].to_numpy(bool), valid_contrast)
    assert c["contrast_valid"] == pytest.approx(valid_contrast[both.to_numpy()].mean())
    pairs = both & t["valid"] & t["valid_contrast"]
    assert pairs.sum() > 0
    assert c["judge_prefers_target_valid"] == pytest.approx(
        (t.loc[pairs, "p_judge"] > t.loc[pairs, "p_judge_contrast"]).mean())
    assert "meets the composition rules at" in format_summary(result.summary)


def test_the_valid_pair_preference_leaves_out_pairs_where_either_decode_breaks_the_rules(designer):
    table = pd.DataFrame({"p_model": [.9, .9, .9, .9], "p_judge": [.9, .2, .9, .2], "valid": [True, True, False, True],
                          "contrast_distance": [10.0] * 4})
    other = pd.DataFrame({"p_model": [.1] * 4, "p_judge": [.5, .5, .5, .5], "valid": [True, False, True, True]})
    both = np.ones(4, dtype=bool)
    c = designer._contrast_summary(table, other, both, np.ones(4, dtype=bool), 0)
    assert c["judge_prefers_target"] == pytest.approx(0.5)
    assert c["contrast_valid"] == pytest.approx(0.75)
    assert c["judge_prefers_target_valid"] == pytest.approx(0.5)  # rows 0 and 3 only: one win, one loss
    other.loc[3, "valid"] = False
    assert designer._contrast_summary(table, other, both, both, 0)["judge_prefers_target_valid"] == 1.0


def test_inversion_and_interpolation_encode_at_the_posterior_mode(designer):
    from pyro_hea.model.tensors import AlloyTensors

    vae = designer.model.vae
    ends = np.vstack([designer._vector("NbMoTaW", "a"), designer._vector("CoCrFeMnNi", "b")])
    tensors = AlloyTensors.from_compositions(ends, designer.vocabulary, designer.model.scaler)
    y = vae.predict_proba(tensors).argmax(-1)
    mode = vae.posterior_mode(tensors, y, steps=50).numpy()
    mean = vae.encode(tensors, y)[0].numpy()
    assert not np.allclose(mode, mean, atol=1e-3)
    path = designer.interpolate("NbMoTaW", "CoCrFeMnNi", steps=3).table
    assert np.allclose(path[["z_1", "z_2"]].to_numpy()[[0, -1]], mode, atol=1e-4)
    amortized = designer.interpolate("NbMoTaW", "CoCrFeMnNi", steps=3, refine_steps=0).table
    assert np.allclose(amortized[["z_1", "z_2"]].to_numpy()[[0, -1]], mean, atol=1e-5)
    trajectory = designer.invert("NbMoTaW", threshold=1.0, max_steps=1).table
    # the same refinement, run inside invert on the one alloy (L-BFGS over a batch stops elsewhere):
    # equal up to float drift across machines (2e-4 seen)
    alone = vae.posterior_mode(tensors[np.array([0])], y[:1], steps=50).numpy()
    assert np.allclose(trajectory[["z_1", "z_2"]].to_numpy()[0], alone[0], atol=1e-3)
    with pytest.raises(DesignError, match="refine_steps"):
        designer.invert("NbMoTaW", refine_steps=-1)
    with pytest.raises(DesignError, match="max_steps"):
        designer.invert("NbMoTaW", max_steps=10**9)


def test_the_contrast_figure_never_shows_nan(designer):
    import matplotlib

    matplotlib.use("Agg")
    from pyro_hea.design.plots import plot_contrast

    result = designer.latent(n=300, seed=0)
    result.table.loc[:, "p_model_contrast"] = np.nan   # as if no contrast decode could be scored
    result.table.loc[:, "p_judge_contrast"] = np.nan
    fig = plot_contrast(result)
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert texts and not any("nan" in text for text in texts) and any("not\nscored" in text for text in texts)
    good = designer.latent(n=300, seed=0)
    texts = [t.get_text() for ax in plot_contrast(good).axes for t in ax.texts]
    assert not any("nan" in text or "not\nscored" in text for text in texts)


SEARCH_STOPS = ("threshold reached", "step budget", "local optimum (no move raises q(target | x))",
                "no move meets the composition rules inside the training range")


@pytest.mark.parametrize("start", ["Al2CoCrFeNi", "CoCrFeNiTi"])
def test_the_inversion_search_stays_inside_the_rules_and_raises_q(designer, start):
    result = designer.invert(start, target="single-phase", threshold=0.999, max_steps=6, proposals=32)
    t = result.table
    assert result.summary["stopped"] in SEARCH_STOPS and result.summary["proposals"] == 32
    assert len(t) > 1  # (the start is multi-phase to this model: at least one move)
    moved = t.iloc[1:]
    assert moved["valid"].all() and moved["in_domain"].all()   # every step meets the rules
    q = t["p_model"].to_numpy()
    assert np.all(np.diff(q) > 0), q                           # and raises q(target | x)
    assert check_validity(result.compositions[1:]).all()
    end = result.summary["end"]
    assert end["formula"] == t["formula"].iloc[-1] and end["p_model"] == pytest.approx(q[-1])
    assert f"end: {end['formula']}" in format_summary(result.summary)
    if result.summary["stopped"] == "step budget":
        assert len(t) == 7
    # reproducible from its seed
    again = designer.invert(start, target="single-phase", threshold=0.999, max_steps=6, proposals=32)
    assert again.table["formula"].tolist() == t["formula"].tolist()


def test_the_inversion_search_takes_the_nearest_alloy_that_reaches_the_threshold(designer):
    # with a threshold every valid move reaches, the move is the valid one nearest the start; the
    # quarter step towards the decode of the posterior mode is always among the moves
    from pyro_hea.design.inversion import MOVES
    from pyro_hea.design.space import realize

    start = designer._vector("Al2CoCrFeNi", "the starting")
    z, scale = designer._encode(start, with_scale=True)
    quarter = realize(start + MOVES[0] * (designer.decode(z, 1, realistic=False) - start), designer.rules)
    row = designer.score(quarter, 1, novelty=False).iloc[0]
    assert row["valid"] and row["in_domain"]
    picked, why = designer._best_move(start, z, scale, start[0], float("nan"), 1, 1e-12, 16, 1.0,
                                      np.random.SeedSequence([0, 0]))
    assert why == "" and picked.shape == start.shape and check_validity(picked).all()
    assert np.abs(picked - start).sum() <= np.abs(quarter - start).sum() + 1e-9
    # with the threshold out of reach it takes the move of highest q instead
    best, _ = designer._best_move(start, z, scale, start[0], float("nan"), 1, 1.0, 16, 1.0,
                                  np.random.SeedSequence([0, 0]))
    q = designer.score(np.vstack([picked, best]), 1, novelty=False)["p_model"].to_numpy()
    assert q[1] >= q[0]


def test_the_inversion_search_drops_a_starting_element_outside_the_palette(designer):
    # Si is in the model's vocabulary but not in the default palette: no step after the start has it
    assert "Si" in designer.vocabulary and "Si" not in designer.rules.palette
    result = designer.invert("CoCrFeNiSi", target="single-phase", threshold=0.999, max_steps=3, proposals=16)
    si = result.compositions[:, designer.vocabulary.index("Si")]
    assert len(si) > 1 and si[0] == pytest.approx(20.0) and np.all(si[1:] == 0.0)
    allowed = designer.rules.allowed(designer.vocabulary)
    assert not np.any((result.compositions[1:] > 0) & ~allowed)


@pytest.mark.parametrize("proposals", [0, 16])
def test_a_start_that_breaks_the_palette_never_ends_the_inversion(model, data, proposals):
    # with Co excluded, CoCrFeMnNi passes any threshold's probability test but breaks the rules:
    # the search must move off it (or stop without ending on it), and the summary must say so
    from pyro_hea.design.space import CompositionRules

    df, split = data
    strict = Designer(model, df, split, rules=CompositionRules(exclude=("Co",)))
    result = strict.invert("CoCrFeMnNi", threshold=1e-9, max_steps=3, proposals=proposals)
    assert result.summary["stopped"] != "threshold reached" or len(result.table) > 1
    if result.summary["stopped"] == "threshold reached":
        assert result.compositions[-1, strict.vocabulary.index("Co")] == 0 and result.summary["end"]["valid"]
    if len(result.table) == 1:
        assert not result.summary["end"]["valid"]


def test_the_inversion_accepts_numpy_numbers(designer):
    result = designer.invert("Al2CoCrFeNi", max_steps=1, proposals=np.int64(8), spread=np.float32(0.5),
                             seed=np.int64(3))
    assert result.summary["spread"] == 0.5 and result.summary["proposals"] == 8


def test_the_inversion_refuses_bad_search_options(designer):
    for bad in ({"proposals": -1}, {"proposals": 1.5}, {"proposals": True}, {"proposals": 10**9}):
        with pytest.raises(DesignError, match="proposals"):
            designer.invert("CoCrFeNi", **bad)
    for bad in ({"spread": -1.0}, {"spread": float("nan")}, {"spread": "1"}):
        with pytest.raises(DesignError, match="spread"):
            designer.invert("CoCrFeNi", **bad)
    with pytest.raises(DesignError, match="seed"):
        designer.invert("CoCrFeNi", seed=-1)


def test_inversion_ends_only_on_a_valid_alloy(designer):
    # a binary passes any threshold's probability test only if it is valid: under the default
    # high-entropy rules it is not, so the search goes on from it
    short = designer.invert("NbTa", threshold=1e-9, max_steps=2)
    assert short.table["valid"].iloc[0] == False  # noqa: E712
    assert len(short.table) > 1 or short.summary["stopped"] != "threshold reached"
    if short.summary["stopped"] == "threshold reached":
        assert short.table["valid"].iloc[-1]
