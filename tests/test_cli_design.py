"""``pyro-hea design`` on a run directory written by ``pyro-hea train``."""

from __future__ import annotations

import pandas as pd
import pytest

from pyro_hea.cli import main


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("design") / "run"
    assert main(["train", "--dataset", "pei2020", "--out", str(out), "--epochs", "10",
                 "--latent-dim", "2", "--quiet"]) == 0
    return out


def test_latent_mode_writes_candidates_and_prints_a_summary(run_dir, tmp_path, capsys):
    out = tmp_path / "candidates.csv"
    assert main(["design", str(run_dir), "--mode", "latent", "--n", "300", "--seed", "1", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    for word in ("generated 300", "unique", "valid", "novel", "judge agreement", "candidates per second"):
        assert word in text
    table = pd.read_csv(out)
    for column in ("formula", "p_model", "p_judge", "novelty_distance", "nearest_training_alloy", "valid",
                   "novel", "z_1", "z_2"):
        assert column in table.columns
    assert table["valid"].dtype == bool and table["novel"].dtype == bool
    assert table["draws"].sum() == 300


def test_screen_mode_reads_formulas_and_flags_unknown_elements(run_dir, tmp_path, capsys):
    source = tmp_path / "alloys.csv"
    pd.DataFrame({"formula": ["CoCrFeMnNi", "NbMoTaW", "CoCrFeNiB0.1"]}).to_csv(source, index=False)
    out = tmp_path / "screen.csv"
    assert main(["design", str(run_dir), "--mode", "screen", "--input", str(source), "--out", str(out),
                 "--target", "single-phase"]) == 0
    table = pd.read_csv(out).set_index("input_index").sort_index()
    assert table["scored"].tolist() == [True, True, False]
    assert "outside the model's vocabulary" in table.loc[2, "flag"] and pd.isna(table.loc[2, "p_model"])
    assert "scored 2" in capsys.readouterr().out


def test_interpolate_mode_and_input_errors(run_dir, tmp_path, capsys):
    out = tmp_path / "path.csv"
    assert main(["design", str(run_dir), "--mode", "interpolate", "--start", "NbMoTaW", "--end", "CoCrFeNi",
                 "--steps", "4", "--out", str(out), "--json"]) == 0
    assert len(pd.read_csv(out)) == 4 and '"mode": "interpolate"' in capsys.readouterr().out
    assert main(["design", str(run_dir), "--mode", "invert", "--out", str(out)]) == 2
    assert "--mode invert needs --start" in capsys.readouterr().err
    assert main(["design", str(run_dir), "--mode", "screen", "--input", str(tmp_path / "nope.csv"),
                 "--out", str(out)]) == 2
    assert "no input file" in capsys.readouterr().err
