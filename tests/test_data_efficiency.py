"""The data-efficiency benchmark: outputs, caching and resume on a tiny grid."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "data_efficiency.py"


@pytest.fixture(scope="module")
def de():
    spec = importlib.util.spec_from_file_location("data_efficiency", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["data_efficiency"] = module  # worker processes unpickle its functions by name
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("data_efficiency", None)


def _argv(tmp_path, *extra, steps=4):
    return ["--fractions", "0.05", "--seeds", "0", "--steps", str(steps), "--out-dir", str(tmp_path / "out"),
            "--cache-dir", str(tmp_path / "cache"), "--no-progress", *extra]


def test_tiny_grid_writes_outputs_then_resumes_from_the_cache(de, tmp_path):
    argv = _argv(tmp_path, "--methods", "pyro-hea", "logistic-regression")
    first = de.main(argv)
    assert first["counts"] == {"configurations": 2, "cached": 0, "computed": 2}
    out = tmp_path / "out"
    csv = pd.read_csv(out / "data_efficiency.csv")
    assert list(csv.columns[:6]) == ["method", "label_fraction", "seed", "test_auc", "test_auc_multi", "test_accuracy"]
    assert set(csv["method"]) == {"pyro-hea", "logistic-regression"}
    assert csv["test_auc"].between(0, 1).all() and csv["test_accuracy"].between(0, 1).all()
    assert csv[["test_brier", "test_ece"]].apply(lambda c: c.between(0, 1)).all().all()
    assert (csv["test_log_loss"] > 0).all()
    # the recalibrated log-loss is a column, recomputed from the probabilities that stay in the cache only
    assert (csv["test_log_loss_platt"] > 0).all()
    assert not any("_p_single" in d for d in csv["details"])
    # identical split and label subset for every method
    assert csv["n_labelled"].nunique() == 1 and csv["n_unlabelled"].nunique() == 1
    pyro_row = csv[csv.method == "pyro-hea"].iloc[0]
    assert json.loads(pyro_row["settings"]) == {"steps": 4}
    assert json.loads(pyro_row["details"])["steps_run"] == 4
    md = (out / "data_efficiency.md").read_text()
    assert "| pyro-hea |" in md and '"steps": 4' in md
    assert "| 0.05 | logistic-regression | " in md  # the paired-difference table
    assert (out / "data_efficiency.png").read_bytes()[:4] == b"\x89PNG"
    cached = sorted((tmp_path / "cache").rglob("f0.05_s0_*.json"))
    assert len(cached) == 2
    record = json.loads(cached[0].read_text())
    assert len(record["details"]["val_p_single"]) == 57 and len(record["details"]["test_p_single"]) == 106
    assert de.recalibrated_log_loss(record) == pytest.approx(
        csv.set_index("method").loc[record["method"], "test_log_loss_platt"])
    assert np.isnan(de.recalibrated_log_loss({**record, "details": {}}))  # cached without probabilities

    # a rerun computes nothing and reproduces the table
    mtimes = [p.stat().st_mtime_ns for p in cached]
    (out / "data_efficiency.md").write_text(md + "My analysis.\n")
    second = de.main(argv)
    assert second["counts"] == {"configurations": 2, "cached": 2, "computed": 0}
    assert [p.stat().st_mtime_ns for p in cached] == mtimes
    pd.testing.assert_frame_equal(pd.read_csv(out / "data_efficiency.csv"), csv)
    assert (out / "data_efficiency.md").read_text().endswith("My analysis.\n")  # notes survive

    # resume: only the missing configuration is run again
    baseline_file = next(p for p in cached if "logistic" in str(p))
    baseline_file.unlink()
    third = de.main(argv)
    assert third["counts"]["computed"] == 1 and baseline_file.is_file()

    # other pyro-hea settings are other configurations; the baseline's cache still holds
    fourth = de.main(_argv(tmp_path, "--methods", "pyro-hea", "logistic-regression", steps=3))
    assert fourth["counts"] == {"configurations": 2, "cached": 1, "computed": 1}


def test_parallel_jobs_give_the_same_results(de, tmp_path):
    argv = ["--fractions", "0.05", "0.1", "--seeds", "1", "--methods", "logistic-regression",
            "--out-dir", str(tmp_path / "a"), "--cache-dir", str(tmp_path / "ca"), "--no-progress"]
    serial = de.main(argv)["table"]
    argv_parallel = [a.replace("/a", "/b").replace("/ca", "/cb") for a in argv] + ["--jobs", "2"]
    parallel = de.main(argv_parallel)["table"]
    assert len(parallel) == 2
    cols = ["method", "label_fraction", "seed", "test_auc", "test_accuracy", "n_labelled"]
    pd.testing.assert_frame_equal(serial[cols], parallel[cols])


@pytest.mark.parametrize("method", ["logistic-regression", "random-forest"])
def test_baselines_use_only_labelled_rows_and_tune_on_val(de, pei, method):
    from pyro_hea import paper_split

    split = paper_split(pei, seed=0, label_fraction=0.05)
    result = de.fit_baseline(method, pei, split, seed=0)
    for name, values in de.BASELINE_GRIDS[method].items():
        assert result["params"][name] in values
    assert 0.5 < result["val_auc"] <= 1.0
    # relabelling the hidden (unlabelled) rows changes nothing: they are not used
    flipped = pei.copy()
    hidden = (split == "unlabelled").to_numpy() & flipped["single_phase"].notna().to_numpy()
    flipped.loc[hidden, "single_phase"] = 1 - flipped.loc[hidden, "single_phase"]
    assert de.fit_baseline(method, flipped, split, seed=0) == result


def test_gradient_diagnostics_measure_the_classifier_terms(de, pei):
    from pyro_hea import PhaseModel, paper_split

    split = paper_split(pei, seed=0, label_fraction=0.05)
    torch.manual_seed(0)
    model = PhaseModel.build(pei, split)
    d = de.gradient_diagnostics(model, pei, split, n_samples=2)
    assert d["n_labelled"] == int((split == "labelled").sum())
    assert d["grad_norm_labelled_aux"] > 0 and d["grad_norm_unlabelled_elbo"] > 0
    # the labelled loss reaches the classifier only through alpha * cross-entropy
    t = model.tensors(pei[(split == "labelled").to_numpy()])
    params = list(model.vae.classifier.parameters())
    ce = float(model.vae.label_weight) * torch.nn.functional.cross_entropy(
        model.vae.classifier(t.x, t.features), t.y, reduction="sum")
    norm = torch.cat([g.reshape(-1) for g in torch.autograd.grad(ce, params)]).norm()
    assert d["grad_norm_labelled_aux"] == pytest.approx(float(norm), rel=1e-4)
    for key in ("cos_labelled_oracle", "cos_unlabelled_oracle", "cos_labelled_unlabelled"):
        assert -1.0 <= d[key] <= 1.0


def test_cache_key_depends_on_settings_only_for_pyro_hea(de, tmp_path):
    a = de.cache_path(tmp_path, "pyro-hea", 0.05, 0, {"steps": 10})
    b = de.cache_path(tmp_path, "pyro-hea", 0.05, 0, {"steps": 20})
    assert a != b
    assert de.cache_path(tmp_path, "mlp", 0.05, 0, {"steps": 10}) == de.cache_path(tmp_path, "mlp", 0.05, 0, {"steps": 20})
    assert de.cache_path(tmp_path, "pyro-hea/expert-y", 0.05, 0, {"steps": 10}) != a
    assert np.isclose(float(a.name.split("_")[0][1:]), 0.05)


def test_labels_only_and_classifier_only_rows_see_no_unlabelled_row(de, pei):
    from pyro_hea import paper_split

    split = paper_split(pei, seed=0, label_fraction=0.05)
    flipped = pei.copy()
    hidden = (split == "unlabelled").to_numpy() & flipped["single_phase"].notna().to_numpy()
    flipped.loc[hidden, "single_phase"] = 1 - flipped.loc[hidden, "single_phase"]
    for method in ("pyro-hea/labels-only", "pyro-hea/classifier-only"):
        a = de.fit_pyro(method, pei, split, 0, {"steps": 3})
        b = de.fit_pyro(method, flipped, split, 0, {"steps": 3})
        assert a == b
        assert 0 <= a["test_auc_multi"] <= 1 and a["n_test_multi"] > 0
    only = de.fit_pyro("pyro-hea/classifier-only", pei, split, 0, {"steps": 3})
    n_train = int(split.isin(["labelled", "unlabelled"]).sum())
    assert only["label_weight"] == pytest.approx(only["alpha"] * n_train / int((split == "labelled").sum()))


def test_expert_rows_run_only_at_their_fractions(de, tmp_path):
    table, counts = de.run_study(["pyro-hea/expert-y"], [0.05, 0.5], [0], {"steps": 2}, tmp_path, progress=False)
    assert counts["configurations"] == 1 and set(table["label_fraction"]) == {0.05}


def test_paired_differences_pair_by_seed_and_pick_the_best_baseline(de):
    rows = []
    for seed, (ours, ablation, lr, gb) in enumerate([(0.90, 0.88, 0.70, 0.91), (0.80, 0.81, 0.60, 0.79),
                                                     (0.85, 0.80, 0.65, 0.84)]):
        for method, auc in (("pyro-hea", ours), ("pyro-hea/labels-only", ablation),
                            ("logistic-regression", lr), ("hist-gradient-boosting", gb)):
            rows.append({"method": method, "label_fraction": 0.1, "seed": seed, "test_auc": auc})
    d = de.paired_differences(pd.DataFrame(rows)).set_index("against")
    assert list(d.index) == ["pyro-hea/labels-only", "hist-gradient-boosting"]  # not the worse baseline
    assert d.loc["pyro-hea/labels-only", "mean"] == pytest.approx((0.02 - 0.01 + 0.05) / 3)
    assert d.loc["pyro-hea/labels-only", "at_least_as_good"] == "2 of 3"
    gb = d.loc["hist-gradient-boosting"]
    assert gb["mean"] == pytest.approx(0.01 / 3) and gb["low"] < gb["mean"] < gb["high"]
    assert gb["at_least_as_good"] == "2 of 3"


@pytest.fixture(scope="module")
def vs(load_benchmark):
    return load_benchmark("validation_selection")


def test_the_validation_selection_benchmark_reads_no_test_row_and_keeps_variants(tmp_path, pei, vs):
    bench = vs
    common = ["--fractions", "0.05", "--seeds", "0", "--steps", "3", "--out-dir", str(tmp_path),
              "--cache-dir", str(tmp_path / "cache")]
    bench.main(common)
    table = bench.main(common + ["--set", "classifier_members=2"])
    assert list(table["variant"]) == ["default", "classifier_members=2"]
    assert table[["auc", "brier", "ece"]].apply(lambda c: c.between(0, 1)).all().all()
    assert (table["n_val"] == 57).all()
    md = (tmp_path / "validation_selection.md").read_text()
    assert "| classifier_members=2 |" in md and "test was not read" in md
    with pytest.raises(SystemExit, match="KEY=VALUE"):
        bench.main(common + ["--set", "classifier_members"])


def test_platt_scaling_repairs_an_overconfident_predictor(de):
    """An over-confident but informative predictor: recalibration on val lowers its test log-loss."""
    from pyro_hea.infer.metrics import mean_log_loss

    rng = np.random.default_rng(0)

    def draw(n):
        y = rng.integers(0, 2, n)
        right = rng.random(n) < 0.75  # 75 % right, always 99 % sure
        p1 = np.where(right == (y == 1), 0.99, 0.01)
        return y, np.stack([1 - p1, p1], axis=1)

    (y_val, p_val), (y_test, p_test) = draw(400), draw(400)
    recal = de.platt_scale(y_val, p_val, p_test)
    assert np.allclose(recal.sum(1), 1.0)
    assert mean_log_loss(y_test, recal) < 0.6 < mean_log_loss(y_test, p_test)
    # the order of the alloys (and so the AUC) is kept
    assert (np.argsort(recal[:, 1], kind="stable") == np.argsort(p_test[:, 1], kind="stable")).all()
    one_class = p_test[:4]
    assert de.platt_scale(np.zeros(4, int), p_val[:4], one_class) is one_class  # nothing to fit: unchanged


def test_platt_scaling_minimizes_platts_smoothed_objective(de):
    """The fit equals a direct minimization of the cross-entropy against Platt's smoothed targets."""
    from scipy.optimize import minimize

    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 60)
    p1 = np.clip(1 / (1 + np.exp(-(3 * (y - 0.5) + rng.normal(0, 1.5, 60)))), 1e-6, 1 - 1e-6)
    t = np.where(y == 1, ((y == 1).sum() + 1) / ((y == 1).sum() + 2), 1 / ((y == 0).sum() + 2))
    s = np.log(p1 / (1 - p1))

    def loss(ab):
        q = np.clip(1 / (1 + np.exp(-(ab[0] * s + ab[1]))), 1e-12, 1 - 1e-12)
        return -(t * np.log(q) + (1 - t) * np.log(1 - q)).sum()

    a, b = minimize(loss, [1.0, 0.0], method="Nelder-Mead", options={"xatol": 1e-9, "fatol": 1e-12}).x
    probe = np.array([[0.8, 0.2], [0.4, 0.6]])
    expected = 1 / (1 + np.exp(-(a * np.log(probe[:, 1] / probe[:, 0]) + b)))
    got = de.platt_scale(y, np.stack([1 - p1, p1], axis=1), probe)[:, 1]
    np.testing.assert_allclose(got, expected, atol=2e-3)


def test_the_corpus_pool_holds_real_alloys_that_pei2020_lacks(pei, vs):
    from pyro_hea import load_dataset
    from pyro_hea.data.datasets import composition_matrix, element_vocabulary

    pool = vs.corpus_pool()
    assert 8_000 < len(pool) < len(load_dataset("corpus"))
    known = composition_matrix(pei, element_vocabulary(pei))
    rows = pool.take(np.arange(len(pool)))
    assert np.allclose(rows.sum(1), 100.0)
    # no Pei 2020 alloy, not even one written with rounded amounts (within 0.5 at.% on every element)
    nearest = np.array([np.abs(known - r).max(axis=1).min() for r in rows])
    assert nearest.min() > vs.CORPUS_MATCH_AT_PCT


def test_platt_scaling_stays_finite_on_a_separated_validation_set(de):
    """Platt's smoothed targets: a perfectly separated val set gives a bounded slope, not p = 0 or 1."""
    p_val = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.1, 0.9]])
    recal = de.platt_scale(np.array([0, 0, 1, 1]), p_val, np.array([[0.99, 0.01], [0.01, 0.99]]))
    assert 0.001 < recal[0, 1] < 0.3 and 0.7 < recal[1, 1] < 0.999


@pytest.fixture(scope="module")
def ds(load_benchmark):
    return load_benchmark("design_selection")


def test_the_design_selection_judge_never_sees_a_test_label(pei, ds):
    from pyro_hea import paper_split

    split = paper_split(pei, seed=0)
    judge = ds.selection_judge(pei, split)
    labelled = pei["single_phase"].notna()
    assert judge.n_train == int((labelled & (split != "test")).sum()) < int(labelled.sum())
    # its training labels are exactly those of the training and validation rows
    kept = pei[(split != "test") & labelled]
    assert (judge._labels == kept["single_phase"].to_numpy(int)).all()


def test_the_design_selection_benchmark_keeps_variants(tmp_path, ds):
    common = ["--seeds", "0", "--n", "200", "--steps", "3", "--out-dir", str(tmp_path)]
    ds.main(common)
    table = ds.main(common + ["--set", "class_position_lr_factor=1"])
    assert list(table["variant"]) == ["default", "class_position_lr_factor=1"]
    assert table["judge_prefers_pct"].between(0, 100).all() and table["accepted_pct"].between(0, 100).all()
    md = (tmp_path / "design_selection.md").read_text()
    assert "| class_position_lr_factor=1 |" in md and "no test label was read" in md
    with pytest.raises(SystemExit, match="KEY=VALUE"):
        ds.main(common + ["--set", "class_position_lr_factor"])
    # the package's judge (test labels included) writes its own record, never the selection one
    ds.main(common + ["--judge", "all"])
    assert "evaluation" in (tmp_path / "design_all_judge.md").read_text()
    assert list(pd.read_csv(tmp_path / "design_selection.csv")["variant"]) == ["default", "class_position_lr_factor=1"]


RESULTS = SCRIPT.parents[1] / "docs" / "results"


def test_merge_rebuilds_the_ten_seed_page_from_committed_csvs_without_fitting(de, tmp_path):
    sources = [RESULTS / "session24_default" / "data_efficiency.csv", RESULTS / "ten_seeds_default" / "seeds_5_9.csv",
               RESULTS / "ten_seeds" / "data_efficiency.csv", RESULTS / "random_forest" / "ten_seeds" / "data_efficiency.csv"]
    methods = ["pyro-hea", "pyro-hea/labels-only", "logistic-regression", "mlp", "hist-gradient-boosting", "random-forest"]
    out = tmp_path / "merged"
    result = de.main(["--merge", *map(str, sources), "--methods", *methods, "--out-dir", str(out), "--no-progress"])
    merged = pd.read_csv(out / "data_efficiency.csv")
    committed = pd.read_csv(RESULTS / "ten_seeds_default" / "data_efficiency.csv")
    key = ["method", "label_fraction", "seed"]
    pd.testing.assert_frame_equal(merged.sort_values(key).reset_index(drop=True),
                                  committed.sort_values(key).reset_index(drop=True))
    assert merged.groupby("method").seed.nunique().eq(10).all()
    # the earlier files win: the previous default's pyro-hea rows of ten_seeds/ are dropped, and reported
    assert "175 more already given by an earlier file" in result["notes"][2]
    table = (out / "data_efficiency.md").read_text()
    assert "no fit in this invocation" in table and "| pyro-hea | 0.948 ± 0.019 |" in table
    assert (out / "data_efficiency.png").read_bytes()[:4] == b"\x89PNG"


def test_merge_filters_and_refuses_bad_input(de, tmp_path):
    source = RESULTS / "data_efficiency.csv"
    one = de.main(["--merge", str(source), "--methods", "random-forest", "--seeds", "0", "--fractions", "0.05",
                   "--out-dir", str(tmp_path / "one"), "--no-progress"])
    assert len(one["table"]) == 1 and one["table"].iloc[0]["method"] == "random-forest"
    bad = tmp_path / "bad.csv"
    bad.write_text("method,seed\nmlp,0\n")
    with pytest.raises(SystemExit, match="no column label_fraction"):
        de.main(["--merge", str(bad), "--out-dir", str(tmp_path / "x")])
    with pytest.raises(SystemExit, match="is not a file"):
        de.main(["--merge", str(tmp_path / "missing.csv"), "--out-dir", str(tmp_path / "x")])
    with pytest.raises(SystemExit, match="no row of these files matches"):
        de.main(["--merge", str(source), "--seeds", "99", "--out-dir", str(tmp_path / "x")])
    with pytest.raises(SystemExit, match="is one of the inputs"):
        de.main(["--merge", str(source), "--out-dir", str(RESULTS)])
    assert source.is_file()  # never overwritten
