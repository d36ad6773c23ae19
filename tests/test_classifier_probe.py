"""benchmarks/classifier_probe.py: supervised probes scored on validation, never reading test."""

from __future__ import annotations

import pandas as pd
import pytest


@pytest.fixture(scope="module")
def probe(load_benchmark):
    return load_benchmark("classifier_probe")


def test_every_probe_is_scored_on_validation_and_test_labels_are_never_read(probe, tmp_path):
    from pyro_hea import load_dataset
    from pyro_hea.data.splits import paper_split

    df = load_dataset("pei2020")
    rows = probe.run_split(df, 0.1, 0, steps=3)
    assert [r["method"] for r in rows] == list(probe.PROBES)
    assert all(0.5 < r["val_auc"] <= 1.0 for r in rows)  # all beat chance on 66 labels
    split = paper_split(df, seed=0, label_fraction=0.1)
    assert rows[0]["n_labelled"] == int(((split == "labelled") & df["single_phase"].notna()).sum()) == 66
    flipped = df.copy()
    test = (split == "test") & flipped["single_phase"].notna()
    flipped.loc[test, "single_phase"] = 1 - flipped.loc[test, "single_phase"]
    assert probe.run_split(flipped, 0.1, 0, steps=3) == rows
    path = probe.write_report(pd.DataFrame(rows), tmp_path, "python benchmarks/classifier_probe.py", 0.1)
    text = path.read_text()
    assert all(f"| {m} | " in text for m in probe.PROBES)
    assert pd.read_csv(tmp_path / "classifier_probe.csv")["val_auc"].tolist() == pytest.approx([r["val_auc"] for r in rows])
