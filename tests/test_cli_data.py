"""The ``pyro-hea`` command line and its ``data`` command."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from pyro_hea.cli import main


def test_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "usage: pyro-hea" in out
    assert "data" in out and "load a dataset and print a summary" in out


def test_data_help(capsys):
    with pytest.raises(SystemExit):
        main(["data", "--help"])
    out = capsys.readouterr().out
    assert "--dataset" in out and "--json" in out


def test_data_summary(capsys):
    assert main(["data", "--dataset", "pei2020"]) == 0
    out = capsys.readouterr().out
    assert "dataset       pei2020 (1,208 rows read)" in out
    assert "kept          1,055 alloys: 541 single-phase, 514 multi-phase, 0 unlabelled" in out
    assert "dropped       153 rows: uncovered element 153" in out
    assert "Ba 21" in out
    assert "duplicates    0 rows merged; 0 compositions with conflicting labels" in out
    assert "elements      55 distinct:" in out
    assert "alloys by number of elements: 2: 784, 3: 4, 4: 21, 5: 120" in out


def test_data_default_is_pei2020(capsys):
    assert main(["data", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["source"] == "pei2020"


def test_data_json(capsys):
    assert main(["data", "--dataset", "pei2020", "--json"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1  # one JSON object on one line
    summary = json.loads(out)
    assert summary["n_alloys"] == 1055
    assert summary["n_single_phase"] == 541
    assert summary["n_multi_phase"] == 514
    assert summary["n_elements"] == 55
    assert summary["n_read"] == 1208
    assert summary["n_labelled"] == 1055
    assert summary["n_dropped"] == 153
    assert summary["dropped"] == {"uncovered element": 153}
    assert summary["element_counts"]["2"] == 784
    assert len(summary["issues"]) == 153 and summary["issues"][0]["reason"] == "uncovered element"
    assert summary["n_label_conflicts"] == 0
    assert len(summary["elements"]) == 55


def test_data_user_csv(tmp_path, capsys):
    path = tmp_path / "mine.csv"
    path.write_text("alloy,phase\nCoCrFeMnNi,FCC\nNiFe,\nAl2CoCrFeNi,multi\n")
    assert main(["data", "--dataset", str(path), "--formula-column", "alloy", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["source"] == "mine.csv"
    assert (summary["n_alloys"], summary["n_labelled"], summary["n_single_phase"], summary["n_multi_phase"]) == (3, 2, 1, 1)


@pytest.mark.parametrize(
    "dataset, problem",
    [
        ("pei2021", "unknown dataset 'pei2021'"),
        ("{tmp}/missing.csv", "missing.csv' does not exist"),
    ],
)
def test_bad_dataset_is_a_one_line_error(tmp_path, capsys, dataset, problem):
    status = main(["data", "--dataset", dataset.format(tmp=tmp_path)])
    assert status == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("pyro-hea data: error: ")
    assert problem in captured.err
    assert captured.err.count("\n") == 1
    assert "Traceback" not in captured.err


def test_bad_csv_content_is_a_one_line_error_when_strict(tmp_path, capsys):
    path = tmp_path / "bad.csv"
    path.write_text("formula\nFeNi\nfeni\n")
    assert main(["data", "--dataset", str(path), "--strict"]) == 2
    err = capsys.readouterr().err
    assert "line 3 (row 1)" in err and "'feni'" in err and err.count("\n") == 1
    # without --strict the good row loads and the bad one is reported
    assert main(["data", "--dataset", str(path)]) == 0
    out = capsys.readouterr().out
    assert "kept          1 alloys" in out and "line 3 (row 1): bad formula: formula 'feni'" in out


def test_console_script_entry_point(tmp_path):
    exe = shutil.which("pyro-hea")
    assert exe is not None, "the pyro-hea console script is not installed"
    ok = subprocess.run([exe, "data", "--dataset", "pei2020", "--json"], capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["n_alloys"] == 1055
