"""benchmarks/design_contrast.py: the fixed-z comparison taken apart, on the selection judge."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch


@pytest.fixture(scope="module")
def contrast(load_benchmark):
    return load_benchmark("design_contrast")


def test_the_diagnostics_restore_the_class_positions_and_match_the_design(contrast):
    from pyro_hea import PhaseModel, load_dataset, paper_split
    from pyro_hea.design.designer import Designer

    df = load_dataset("pei2020")
    split = paper_split(df, seed=0)
    model = PhaseModel.fit(df, split, steps=30, latent_dim=2, seed=0, progress=False)
    judge = contrast.selection_judge(df, split, 2)
    assert judge.n_train == int(((split != "test") & df["single_phase"].notna()).sum())  # never test
    designer = Designer(model, df, split, judge=judge)
    before = {k: v.clone() for k, v in model.vae.state_dict().items()}
    rows = contrast.diagnose(designer, n=300)
    after = model.vae.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert [r["variant"] for r in rows][:8] == ["trained", "scale=0.5", "scale=0.75", "scale=1.25",
                                                "hea positions", "pool rules", "family draws, trained positions",
                                                "family positions"]
    assert all(r["variant"].endswith(" draws, trained positions") for r in rows[8:]) and len(rows) > 8
    # the trained row is the design's own fixed-z comparison
    c = designer.latent(n=300, target="single-phase", seed=0).summary["contrast"]
    assert rows[0]["judge_prefers_pct"] == pytest.approx(100 * c["judge_prefers_target"])
    assert rows[0]["contrast_valid_pct"] == pytest.approx(100 * c["contrast_valid"])
    assert rows[0]["model_prefers_pct"] == pytest.approx(100 * c["model_prefers_target"])
    summary = designer.latent(n=300, target="single-phase", seed=0).summary
    assert rows[0]["accepted_pct"] == pytest.approx(100 * summary["accept_rate"])
    assert rows[0]["judged_pct"] == pytest.approx(100 * summary["judged_target"], nan_ok=True)
    # moving only mu_0 leaves every y = 1 decode, so acceptance, as it is
    assert len({round(r["accepted_pct"], 9) for r in rows[:5]}) == 1
    for r in rows:
        for key in contrast.COLUMNS:
            assert np.isnan(r[key]) or 0 <= r[key] <= 100 or key == "apart_pct"
    text = contrast.markdown(pd.DataFrame(rows), "python benchmarks/design_contrast.py")
    assert "| trained |" in text and "nan" not in text


def test_the_diagnostics_never_read_the_hidden_labels(contrast):
    """Flipping the labels the split hides (its unlabelled rows) changes no diagnostic row."""
    from pyro_hea import PhaseModel, load_dataset, paper_split
    from pyro_hea.design.designer import Designer

    df = load_dataset("pei2020")
    split = paper_split(df, seed=0)
    model = PhaseModel.fit(df, split, steps=20, latent_dim=2, seed=0, progress=False)
    judge = contrast.selection_judge(df, split, 2)
    hidden = (split == "unlabelled").to_numpy() & df["single_phase"].notna().to_numpy()
    assert hidden.sum() > 100
    flipped = df.copy()
    flipped.loc[hidden, "single_phase"] = 1 - flipped.loc[hidden, "single_phase"]
    rows = [contrast.diagnose(Designer(model, table, split, judge=judge, contrast_position=False), n=200)
            for table in (df, flipped)]
    assert [r["variant"] for r in rows[0]] == [r["variant"] for r in rows[1]]
    for a, b in zip(*rows):
        assert {k: v for k, v in a.items()} == pytest.approx({k: v for k, v in b.items()}, nan_ok=True)


def test_run_seed_ends_with_the_contrast_position(contrast):
    rows = contrast.run_seed(0, n=200, steps=20)
    names = [r["variant"] for r in rows]
    assert names[0] == "trained" and names[-1] == "contrast position"
    # moving only mu_0 leaves every candidate as it is
    assert rows[-1]["accepted_pct"] == pytest.approx(rows[0]["accepted_pct"])
