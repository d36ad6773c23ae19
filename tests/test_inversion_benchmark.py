"""benchmarks/inversion.py: the search from multi-phase high-entropy training alloys."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="module")
def bench(load_benchmark):
    return load_benchmark("inversion")


def test_the_starts_are_multi_phase_training_alloys_within_the_rules_and_the_summary_counts_them(bench, data):
    from pyro_hea import PhaseModel
    from pyro_hea.design.designer import Designer

    df, split = data
    designer = Designer(PhaseModel.fit(df, split, steps=40, latent_dim=2, seed=0, progress=False), df, split)
    formulas = bench.starts(designer, df, split)
    by_formula = df.set_index("formula")
    assert formulas and all(by_formula.loc[f, "single_phase"] == 0 for f in formulas[:20])
    assert set(formulas) <= set(df.loc[(split == "labelled").to_numpy(), "formula"])
    row, table = bench.summarize(designer, formulas[:3])
    assert row["searches"] == 3 and len(table) == 3 and table["meets_rules"].all()
    assert row["reached_pct"] == pytest.approx(100 * table["reached"].mean())
    assert (table["p_model_end"] >= table["p_model_start"]).all()  # the search never lowers q
    assert np.isfinite(table["moved_pct"]).all() and (table["steps"] >= 0).all()
