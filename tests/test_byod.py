"""Bring your own data (issue 13): published table formats load as they are, with a report."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pandas as pd
import pytest

from pyro_hea.cli import main
from pyro_hea.commands.data import summarize
from pyro_hea.data.datasets import DatasetError, load_dataset
from pyro_hea.data.descriptors import descriptors
from pyro_hea.data.report import LoadReport, RowIssue
from pyro_hea.data.splits import SplitError, paper_split
from pyro_hea.data.tables import column_key, descriptor_columns, read_label

R = 8.314


def _paper_rows(formulas, classes, vec_offset=None, smix_in_r=False):
    rows = []
    for formula, label in zip(formulas, classes):
        d = descriptors(formula)
        rows.append({
            "Alloys": formula, "K": d["k"], "Vm": d["Vm"], "Tm": d["Tm"],
            "VEC": d["VEC"] + (vec_offset(formula) if vec_offset else 0.0),
            "delta": d["delta"], "Δχ": d["delta_chi"],
            "Smix": d["dS_mix"] / R if smix_in_r else d["dS_mix"], "Hmix": d["dH_mix"], "Class": label,
        })
    return pd.DataFrame(rows)


PAPER = ["Al0CoCrFeNi", "Al0.3CoCrFeNi", "Al0.5CoCrFeNi", "AlCoCrFeNi", "CoCrFeMnNi", "HfNbTaTiZr",
         "Al0.0CoCrFeNiTi0.5", "CoCrFeNi", "NbMoTaW", "FeNi"]
PAPER_CLASS = [1, 1, 0, 0, 1, 1, 0, 1, 1, 1]


# ---------------------------------------------------------------------------
# the seed paper's format: Alloys, eight descriptors, Class
# ---------------------------------------------------------------------------

def test_paper_format(tmp_path):
    path = tmp_path / "paper.csv"
    _paper_rows(PAPER, PAPER_CLASS, smix_in_r=True).to_csv(path, index=False)
    df = load_dataset(path)
    report = df.attrs["report"]
    assert (report.formula_column, report.label_column) == ("Alloys", "Class")
    assert report.label_note == "numbers: 1 = single-phase, 0 = multi-phase"
    # Al0CoCrFeNi is CoCrFeNi: merged, with agreeing labels
    assert report.n_read == 10 and report.n_alloys == 9 and report.n_duplicates_merged == 1
    assert report.zero_amounts == {"Al": 2} and report.n_zero_amount_rows == 2
    assert report.dropped == {} and report.conflicts == []
    assert df.loc[df["formula"] == "Co25Cr25Fe25Ni25", "single_phase"].item() == 1
    # 0 reads as multi-phase, 1 as single-phase
    assert df.loc[df["formula_raw"] == "AlCoCrFeNi", "single_phase"].item() == 0
    assert df.loc[df["formula_raw"] == "AlCoCrFeNi", "phase"].item() == "multi"
    # the user's descriptors are compared, never used: pyro-hea's own columns are in the table
    checks = {c.descriptor: c for c in report.descriptor_checks}
    assert set(checks) == {"k", "Vm", "Tm", "VEC", "delta", "delta_chi", "dS_mix", "dH_mix"}
    assert checks["delta_chi"].column == "Δχ" and checks["dS_mix"].column == "Smix"
    for name in ("k", "Vm", "Tm", "VEC", "delta", "delta_chi", "dH_mix"):
        assert checks[name].median_relative_difference < 1e-9 and not checks[name].differs
    assert checks["dS_mix"].differs and checks["dS_mix"].median_ratio == pytest.approx(1 / R, rel=1e-6)
    assert "K" not in df.columns and "Smix" not in df.columns
    text = report.summary()
    assert "'Smix' vs dS_mix: 87.97% over 10 rows  <- differs (median ratio 0.12" in text and "differs" in text
    assert "zero amounts  2 rows name an element with amount 0, read as absent: Al 2" in text


def test_paper_format_5d_vec_convention_shows_up():
    # the published element table counts filled 4f shells for the 5d elements (Hf 18, Ta 19, W 20)
    extra = {"Hf": 14, "Ta": 14, "W": 14}

    def offset(formula):
        d = pd.Series(load_dataset(pd.DataFrame({"formula": [formula]})).loc[0, "composition"])
        return float(sum(d.get(el, 0.0) * v for el, v in extra.items()))

    refractory = ["HfNbTaTiZr", "NbMoTaW", "HfNbTa", "MoNbTaVW", "HfTaTiZr"]
    table = _paper_rows(refractory, [1] * 5, vec_offset=offset)
    check = {c.descriptor: c for c in load_dataset(table).attrs["report"].descriptor_checks}["VEC"]
    assert check.differs and check.median_relative_difference > 0.3


# ---------------------------------------------------------------------------
# Borg et al. 2020: space-separated formulas and a microstructure column
# ---------------------------------------------------------------------------

def test_borg_format(tmp_path):
    path = tmp_path / "MPEA_dataset.csv"
    path.write_text(
        "IDENTIFIER: Reference ID,FORMULA,PROPERTY: Microstructure,PROPERTY: Processing method,"
        "PROPERTY: BCC/FCC/other\n"
        "1,Al0.25 Co1 Fe1 Ni1,FCC,CAST,FCC\n"
        "2,Al1 Co1 Cr1 Fe1 Ni1,BCC+B2,CAST,other\n"
        "3,Co1 Cr1 Fe1 Mn1 Ni1,FCC,WROUGHT,FCC\n"
        "4,Hf1 Nb1 Ta1 Ti1 Zr1,BCC,CAST,BCC\n"
        "5,Al0.5 Co1 Cr1 Cu1 Fe1 Ni1,FCC+BCC,CAST,other\n"
        "6,Mo1 Nb1 Ta1 W1,BCC+Laves+Sec.,CAST,other\n"
        "7,C0.1 Co1 Cr1 Fe1 Mn1 Ni1,FCC,CAST,FCC\n"
        "8,Al0.25 Co1 Fe1 Ni1,FCC+L12,ANNEAL,other\n"
    )
    df = load_dataset(path)
    report = df.attrs["report"]
    assert (report.formula_column, report.label_column) == ("FORMULA", "PROPERTY: Microstructure")
    labels = dict(zip(df["formula_raw"], zip(df["phase"], df["single_phase"])))
    assert labels["Co1 Cr1 Fe1 Mn1 Ni1"] == ("FCC", 1)
    assert labels["Hf1 Nb1 Ta1 Ti1 Zr1"] == ("BCC", 1)
    assert labels["Al1 Co1 Cr1 Fe1 Ni1"] == ("multi", 0)
    assert labels["Mo1 Nb1 Ta1 W1"] == ("multi", 0)
    # the carbon steel is dropped (no descriptor data for C), the rest kept
    assert report.dropped == {"uncovered element": 1} and report.dropped_elements == {"C": 1}
    [issue] = report.issues
    assert (issue.line, issue.row, issue.reason) == (8, 6, "uncovered element")
    # the same alloy, FCC as cast and FCC+L12 annealed: a conflict, unlabelled by default
    assert report.n_conflicts == 1 and report.conflicts[0]["kind"] == "single vs multi"
    assert pd.isna(labels["Al0.25 Co1 Fe1 Ni1"][1])


# ---------------------------------------------------------------------------
# Al0 series members, bad rows, ambiguous columns
# ---------------------------------------------------------------------------

def test_al0_series(tmp_path):
    path = tmp_path / "series.csv"
    path.write_text("composition,phase\nAl0CoCrFeNi,FCC\nAl0.0CoCrFeNi,FCC\nAl0.25CoCrFeNi,FCC\n"
                    "Al0.5CoCrFeNi,FCC+BCC\nAl1CoCrFeNi,BCC+B2\nAl-0.5CoCrFeNi,FCC\nAlnanCoCrFeNi,FCC\n")
    df = load_dataset(path)
    report = df.attrs["report"]
    assert df["formula"].tolist() == ["Co25Cr25Fe25Ni25", "Al5.8824Co23.5294Cr23.5294Fe23.5294Ni23.5294",
                                      "Al11.1111Co22.2222Cr22.2222Fe22.2222Ni22.2222", "Al20Co20Cr20Fe20Ni20"]
    assert report.zero_amounts == {"Al": 2} and report.n_duplicates_merged == 1
    # negative and NaN amounts are still rejected, row by row
    assert report.dropped == {"bad formula": 2}
    assert [(i.line, i.reason) for i in report.issues] == [(7, "bad formula"), (8, "bad formula")]
    assert "negative amounts" in report.issues[0].message and "not a finite number" in report.issues[1].message


def test_a_few_bad_rows_do_not_sink_the_table(tmp_path):
    path = tmp_path / "messy.csv"
    path.write_text(
        "Alloy,Label,Notes\n"
        "CoCrFeMnNi,single,cantor\n"
        "Fe$Ni,single,typo\n"
        ",multi,no formula\n"
        "FeNiB,multi,boron\n"
        "\n"
        "AlCoCrFeNi,maybe,unclear label\n"
        "CoCrFeNi,FCC,\n"
        "MoNbTaW,,unlabelled\n"
        "ThU,BCC,no pair enthalpy\n"
    )
    df = load_dataset(path)
    report = df.attrs["report"]
    assert df["formula_raw"].tolist() == ["CoCrFeMnNi", "CoCrFeNi", "MoNbTaW"]
    assert pd.isna(df.loc[2, "single_phase"])  # an empty label is unlabelled, not bad
    assert report.n_read == 8 and report.n_empty_rows == 1
    assert report.dropped == {"bad formula": 1, "empty formula": 1, "uncovered element": 1, "bad label": 1,
                              "uncovered element pair": 1}
    assert [(i.line, i.row, i.reason) for i in report.issues] == [
        (3, 1, "bad formula"), (4, 2, "empty formula"), (5, 3, "uncovered element"), (7, 5, "bad label"),
        (10, 8, "uncovered element pair"),
    ]
    assert report.n_read - report.n_dropped - report.n_duplicates_merged == report.n_alloys
    assert report.ignored_columns == ["Notes"]
    assert all(isinstance(i, RowIssue) for i in report.issues)
    with pytest.raises(DatasetError, match=r"messy\.csv: 5 bad row\(s\) with strict=True: line 3 \(row 1\): bad "
                                           r"formula: .*; and 2 more"):
        load_dataset(path, strict=True)


def test_two_plausible_label_columns_is_an_error_listing_them():
    table = pd.DataFrame({"formula": ["FeNi"], "Phase": ["FCC"], "class": [1]})
    with pytest.raises(DatasetError, match=r"dataframe: 2 columns could hold the labels: \['Phase', 'class'\]; "
                                           r"choose one with label_column \(--label-column\)"):
        load_dataset(table)
    assert load_dataset(table, label_column="class")["single_phase"].tolist() == [1]
    assert load_dataset(table, label_column="PHASE")["phase"].tolist() == ["FCC"]  # any case
    with pytest.raises(DatasetError, match=r"2 columns could hold the formulas: \['Alloy', 'Composition'\]"):
        load_dataset(pd.DataFrame({"Alloy": ["FeNi"], "Composition": ["FeNi"]}))


@pytest.mark.parametrize("name", ["formula", "Formula", "ALLOY", "alloys", "Composition", "name"])
def test_formula_column_names(name):
    df = load_dataset(pd.DataFrame({name: ["FeNi", "CoCr"]}))
    assert df.attrs["report"].formula_column == name and len(df) == 2


@pytest.mark.parametrize("name", ["single_phase", "Single Phase", "phase", "CLASS", "label", "Structure",
                                  "microstructure", "PROPERTY: Microstructure"])
def test_label_column_names(name):
    df = load_dataset(pd.DataFrame({"formula": ["FeNi", "CoCr"], name: ["1", "0"]}))
    assert df.attrs["report"].label_column == name and df["single_phase"].tolist() == [1, 0]


# ---------------------------------------------------------------------------
# duplicates with conflicting labels: the three policies
# ---------------------------------------------------------------------------

DUPLICATES = pd.DataFrame({
    "formula": ["FeNi", "NiFe", "Fe50Ni50", "CoCr", "CrCo", "TiZr", "ZrTi", "NbTa", "TaNb"],
    "label": ["FCC", "FCC", "multi", "1", "0", "BCC", "HCP", "BCC", "BCC"],
})


def test_conflicts_unlabelled_by_default():
    df = load_dataset(DUPLICATES).set_index("formula")
    report = df.attrs["report"]
    assert report.conflict_policy == "unlabelled" and report.n_conflicts == 3
    assert pd.isna(df.loc["Fe50Ni50", "single_phase"]) and pd.isna(df.loc["Co50Cr50", "single_phase"])
    # BCC vs HCP: both single-phase, so single_phase stays and only the structure is missing
    assert df.loc["Ti50Zr50", "single_phase"] == 1 and pd.isna(df.loc["Ti50Zr50", "phase"])
    assert df.loc["Nb50Ta50", "phase"] == "BCC" and not df.loc["Nb50Ta50", "label_conflict"]
    assert report.n_duplicates_merged == 5
    assert sorted(c["kind"] for c in report.conflicts) == ["single vs multi", "single vs multi", "structure"]


def test_conflicts_drop():
    df = load_dataset(DUPLICATES, conflicts="drop")
    report = df.attrs["report"]
    assert df["formula"].tolist() == ["Nb50Ta50"]
    assert report.dropped == {"label conflict": 7} and report.n_conflicts == 3
    assert report.n_read - report.n_dropped - report.n_duplicates_merged == report.n_alloys == 1


def test_conflicts_majority():
    df = load_dataset(DUPLICATES, conflicts="majority").set_index("formula")
    assert df.loc["Fe50Ni50", "single_phase"] == 1 and df.loc["Fe50Ni50", "phase"] == "FCC"  # 2 of 3
    assert pd.isna(df.loc["Co50Cr50", "single_phase"])  # 1 against 1: a tie stays unlabelled
    assert df.loc["Ti50Zr50", "single_phase"] == 1 and pd.isna(df.loc["Ti50Zr50", "phase"])
    assert df["label_conflict"].sum() == 3


# ---------------------------------------------------------------------------
# file formats, the report object, API = CLI
# ---------------------------------------------------------------------------

def test_semicolon_tab_bom_and_latin1_files(tmp_path):
    semicolon = tmp_path / "excel.csv"
    semicolon.write_bytes("\ufeffAlloys;Class\nCoCrFeMnNi;1\nAlCoCrFeNi;0\n".encode("utf-8"))
    df = load_dataset(semicolon)
    assert df["single_phase"].tolist() == [1, 0] and df.attrs["report"].formula_column == "Alloys"
    tsv = tmp_path / "table.tsv"
    tsv.write_text("formula\tphase\nAl0.25 Co1 Fe1 Ni1\tFCC\n")
    assert load_dataset(tsv)["phase"].tolist() == ["FCC"]
    latin = tmp_path / "latin.csv"
    latin.write_bytes("formula,phase,note\nFeNi,FCC,r\xe9sum\xe9\n".encode("latin-1"))
    df = load_dataset(latin)
    assert len(df) == 1 and "Latin-1" in df.attrs["report"].notes[0]


def test_report_survives_pandas_operations_without_copying():
    df = load_dataset(DUPLICATES)
    report = df.attrs["report"]
    assert isinstance(report, LoadReport)
    assert df[df["n_elements"] == 2].attrs["report"] is report
    assert json.loads(json.dumps(report.to_dict()))["n_conflicts"] == 3
    # it is also the dict of to_dict(): DataFrame.to_parquet json-dumps attrs, and old code read report["..."]
    assert json.loads(json.dumps(df.attrs))["report"] == json.loads(json.dumps(report.to_dict()))
    assert report["n_read"] == report.n_read == 9
    back = pickle.loads(pickle.dumps(df))
    assert back.attrs["report"] == report and back.attrs["report"].issues == report.issues


def test_all_uncovered_says_why(tmp_path):
    path = tmp_path / "borides.csv"
    path.write_text("formula,label\nFeB,1\nNiB,0\nCoB2,1\n")
    with pytest.raises(DatasetError, match=r"borides\.csv: no usable alloy: all 3 rows were dropped "
                                           r"\(3 uncovered element\); the elements without descriptor data: B"):
        load_dataset(path)
    with pytest.raises(DatasetError, match="no data rows"):
        (tmp_path / "empty.csv").write_text("formula,label\n")
        load_dataset(tmp_path / "empty.csv")


def test_too_few_labels_says_why():
    table = pd.DataFrame({"formula": ["FeNi", "NiFe", "CoCr", "FeB", "TiZr"], "label": [1, 0, 1, 1, None]})
    df = load_dataset(table)
    with pytest.raises(SplitError, match=r"only 1 labelled alloys; the protocol needs at least 10 \(dataframe: "
                                         r"3 alloys kept, 1 with conflicting labels left unlabelled, 1 without a "
                                         r"label; 1 rows dropped on loading: 1 uncovered element \(B 1\)\)"):
        paper_split(df)


def _messy(tmp_path):
    path = tmp_path / "messy.csv"
    rows = ["Alloys,VEC,Class"] + [f"{f},{descriptors(f)['VEC']},{c}" for f, c in zip(PAPER, PAPER_CLASS)]
    path.write_text("\n".join(rows + ["Fe$Ni,1,1", "FeNiB,1,0", "NiFe,9,0", "Al0CoCrFeNi,8.25,0"]) + "\n")
    return path


def test_api_and_cli_give_the_same_result(tmp_path, capsys):
    path = _messy(tmp_path)
    for options, flags in (({}, []), ({"conflicts": "drop"}, ["--conflicts", "drop"]),
                           ({"conflicts": "majority", "label_column": None}, ["--conflicts", "majority",
                                                                              "--label-column", "none"])):
        df = load_dataset(path, **options)
        assert main(["data", "--dataset", str(path), "--json", *flags]) == 0
        assert json.loads(capsys.readouterr().out) == json.loads(json.dumps(summarize(df)))
        assert main(["data", "--dataset", str(path), *flags]) == 0
        assert capsys.readouterr().out == df.attrs["report"].summary() + "\n"
    assert main(["data", "--dataset", str(path), "--strict"]) == 2
    assert "with strict=True" in capsys.readouterr().err


def test_cli_prints_the_report(tmp_path, capsys):
    assert main(["data", "--dataset", str(_messy(tmp_path))]) == 0
    out = capsys.readouterr().out
    assert "dataset       messy.csv (14 rows read)" in out
    assert "columns       formula 'Alloys', label 'Class' (numbers: 1 = single-phase, 0 = multi-phase)" in out
    assert "dropped       2 rows: bad formula 1, uncovered element 1" in out
    assert "line 12 (row 10): bad formula" in out and "line 13 (row 11): uncovered element" in out
    assert "zero amounts  3 rows name an element with amount 0" in out
    assert "2 compositions with conflicting labels" in out
    assert "alloys by number of elements: 2: 1, 4: 2, 5: 6" in out
    assert "'VEC' vs VEC: 0.00%" in out


def test_messy_table_trains(tmp_path):
    """The example of docs/byod.md: a messy table loads, splits and fits (a few steps)."""
    from pyro_hea.infer.phase_model import PhaseModel
    from pyro_hea.infer.training import TrainConfig

    rng = np.random.default_rng(0)
    base = load_dataset("pei2020").sample(60, random_state=0)
    table = pd.DataFrame({"Alloys": base["formula_raw"], "Class": base["single_phase"].astype(int)})
    table.loc[table.index[:3], "Alloys"] = ["Fe$Ni", "FeB", ""]
    table = pd.concat([table, pd.DataFrame({"Alloys": ["Al0CoCrFeNi"], "Class": [int(rng.integers(2))]})])
    path = tmp_path / "mine.csv"
    table.to_csv(path, index=False)
    df = load_dataset(path)
    assert df.attrs["report"].n_dropped == 3
    split = paper_split(df, seed=0)
    model = PhaseModel.fit(df, split, train_config=TrainConfig(steps=3, eval_every=1), progress=False)
    assert model.predict_proba(df).shape[0] == len(df)


# ---------------------------------------------------------------------------
# the pieces
# ---------------------------------------------------------------------------

def test_column_key_and_descriptor_names():
    assert column_key("\ufeffAlloys") == "alloys"
    assert column_key("Tm (K)") == "tm" and column_key("δ [%]") == "delta"
    pairs = descriptor_columns(["k", "V_m", "T_m", "vec", "Delta", "delta_chi", "dS_mix", "ΔH_mix (kJ/mol)", "x"])
    assert [name for name, _ in pairs] == ["k", "Vm", "Tm", "VEC", "delta", "delta_chi", "dS_mix", "dH_mix"]


@pytest.mark.parametrize("value, expected", [
    ("FCC", ("FCC", 1)), ("bcc", ("BCC", 1)), (" HCP ", ("HCP", 1)), (1, (None, 1)), (0.0, ("multi", 0)),
    ("1", (None, 1)), ("0", ("multi", 0)), (True, (None, 1)), ("single", (None, 1)), ("SS", (None, 1)),
    ("multi-phase", ("multi", 0)), ("Other", ("multi", 0)), ("IM", ("multi", 0)), ("AM", ("multi", 0)),
    ("FCC+BCC", ("multi", 0)), ("BCC + Laves + Sec.", ("multi", 0)), ("B2", ("multi", 0)),
    ("BCC+BCC", ("multi", 0)), ("FCC+L12", ("multi", 0)), ("", (None, None)), ("NA", (None, None)),
    (None, (None, None)), (float("nan"), (None, None)), ("unknown", (None, None)),
])
def test_read_label(value, expected):
    assert read_label(value) == expected


# ---------------------------------------------------------------------------
# train and evaluate load a table the way pyro-hea data does
# ---------------------------------------------------------------------------

def test_train_strict_fails_before_training(tmp_path, capsys):
    path = _messy(tmp_path)
    out = tmp_path / "run"
    assert main(["train", "--dataset", str(path), "--strict", "--out", str(out), "--epochs", "1", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "with strict=True" in err and "line 12 (row 10): bad formula" in err and err.count("\n") == 1
    assert not out.exists()


def test_train_records_the_load_options_and_evaluate_reuses_them(tmp_path, capsys):
    base = load_dataset("pei2020").sample(80, random_state=1)
    table = pd.DataFrame({"Alloy ID": base["formula_raw"], "Phase (XRD)": base["phase"].astype(str)})
    table = pd.concat([table, pd.DataFrame({"Alloy ID": ["NiFe", "FeNi", "Fe$Ni"],
                                            "Phase (XRD)": ["FCC", "BCC+B2", "FCC"]})])
    path = tmp_path / "mine.csv"
    table.to_csv(path, index=False)
    out = tmp_path / "run"
    flags = ["--formula-column", "Alloy ID", "--label-column", "Phase (XRD)", "--conflicts", "drop"]
    assert main(["train", "--dataset", str(path), *flags, "--out", str(out), "--epochs", "2", "--quiet"]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["dataset_options"] == {"formula_column": "Alloy ID", "label_column": "Phase (XRD)",
                                         "strict": False, "conflicts": "drop"}
    split = pd.read_csv(out / "split.csv")
    assert "Fe50Ni50" not in set(split["formula"])  # dropped as a conflict, as the options say
    assert main(["evaluate", str(out), "--json"]) == 0
    assert set(json.loads(capsys.readouterr().out)) == {"val", "test"}


def test_excel_without_a_reader_is_a_clear_error(tmp_path):
    path = tmp_path / "sheet.xlsx"
    path.write_bytes(b"PK\x03\x04 not really a workbook")
    with pytest.raises(DatasetError, match=r"sheet\.xlsx"):
        load_dataset(path)


@pytest.mark.parametrize("bad, problem", [
    (42, "a dataset is a name .*not int"),
    (None, "not NoneType"),
    (pd.DataFrame([["FeNi", "FeNi"]], columns=["formula", "formula"]), r"\['formula'\] appear more than once"),
])
def test_bad_dataset_arguments_are_dataset_errors(bad, problem):
    with pytest.raises(DatasetError, match=problem):
        load_dataset(bad)


def test_formula_column_none_is_an_error():
    with pytest.raises(DatasetError, match="formula_column must name a column or be 'auto'"):
        load_dataset(pd.DataFrame({"formula": ["FeNi"]}), formula_column=None)


def test_binary_file_is_a_clear_error(tmp_path):
    path = tmp_path / "image.csv"
    path.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(DatasetError, match=r"image\.csv"):
        load_dataset(path)
