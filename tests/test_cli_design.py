"""``pyro-hea design`` on a run directory written by ``pyro-hea train``."""

from __future__ import annotations

import time

import pandas as pd
import pytest

from pyro_hea.cli import main


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


def test_design_help_works(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["design", "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert "at.% step" in text and "--n-accepted" in text and "--allow-radioactive" in text


def test_the_cli_pool_choices_are_the_designers():
    from pyro_hea.commands.design import POOLS as CLI_POOLS
    from pyro_hea.design.latent import POOLS

    assert CLI_POOLS == POOLS


def _fails(argv, capsys, *words):
    started = time.perf_counter()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for word in words:
        assert word in err, err
    return time.perf_counter() - started


def test_bad_design_input_gets_one_line(run_dir, tmp_path, capsys):
    out = str(tmp_path / "x.csv")
    base = ["design", str(run_dir), "--out", out]
    seconds = _fails(base + ["--mode", "screen", "--grid-step", "0.001"], capsys, "more than the limit")
    assert seconds < 30   # counted, not enumerated (loading the run is most of it)
    _fails(base + ["--mode", "latent", "--n", "1000000000"], capsys, "n = 1,000,000,000", "limit")
    source = tmp_path / "overflow.csv"
    pd.DataFrame({"formula": ["CoCrFeNi", "Fe1e308Ni1e308"]}).to_csv(source, index=False)
    _fails(base + ["--mode", "screen", "--input", str(source)], capsys, "overflows")
    blank = tmp_path / "blank.csv"
    blank.write_text("formula\nCoCrFeNi\n\"\"\nNbMoTaW\n")
    _fails(base + ["--mode", "screen", "--input", str(blank)], capsys, "empty formula", "line 3")
    _fails(base + ["--mode", "latent", "--palette", "Fe,Ni,Co"], capsys, "fewer than min_elements")


def test_design_does_not_overwrite_without_force(run_dir, tmp_path, capsys):
    out = tmp_path / "kept.csv"
    out.write_text("mine\n")
    argv = ["design", str(run_dir), "--mode", "screen", "--k", "4", "--palette", "Co,Cr,Fe,Ni,Mn", "--out", str(out)]
    _fails(argv, capsys, "exists", "--force")
    assert out.read_text() == "mine\n"
    assert main(argv + ["--force"]) == 0 and len(pd.read_csv(out)) == 5


def test_latent_mode_keeps_to_the_palette(run_dir, tmp_path, capsys):
    out = tmp_path / "palette.csv"
    palette = ["Al", "Co", "Cr", "Fe", "Ni", "Ti", "Mn"]
    assert main(["design", str(run_dir), "--mode", "latent", "--n", "200", "--pool", "rules", "--accept", "0",
                 "--palette", ",".join(palette), "--exclude", "Mn", "--out", str(out)]) == 0
    assert "z drawn at" in capsys.readouterr().out
    import re

    elements = {el for f in pd.read_csv(out)["formula"].dropna() for el in re.findall(r"[A-Z][a-z]?", f)}
    assert elements and elements <= set(palette) - {"Mn"}


@pytest.mark.parametrize("options, words", [
    (["--mode", "latent", "--seed", "-1"], ["seed"]),
    (["--mode", "latent", "--seed", "99999999999999999999"], ["seed"]),
    (["--mode", "latent", "--n", "0"], ["positive"]),
    (["--mode", "latent", "--n-accepted", "0"], ["n_accepted"]),
    (["--mode", "latent", "--accept", "nan"], ["accept"]),
    (["--mode", "latent", "--spread", "-1"], ["spread"]),
    (["--mode", "latent", "--family", "noble"], ["unknown family"]),
    (["--mode", "latent", "--target", "bcc"], ["unknown class"]),
    (["--mode", "screen", "--palette", "Fe,Xx,Co,Cr,Ni"], ["unknown element"]),
    (["--mode", "screen", "--k", "40"], ["k must be"]),
    (["--mode", "screen", "--grid-step", "5", "--grid-min", "nan"], ["min_percent"]),
    (["--mode", "screen", "--resolution", "nan"], ["resolution"]),
    (["--mode", "screen", "--min-percent", "30"], ["no alloy has 4 elements"]),
    (["--mode", "screen", "--novelty-threshold", "nan"], ["novelty_threshold"]),
    (["--mode", "invert", "--start", "CoCrFeNi", "--max-steps", "-1"], ["max_steps"]),
    (["--mode", "invert", "--start", "CoCrFeNi", "--refine-steps", "-1"], ["refine_steps"]),
    (["--mode", "invert", "--start", "CoCrFeNi", "--proposals", "-1"], ["proposals"]),
    (["--mode", "invert", "--start", "CoCrFeNi", "--max-percent", "3"], ["max_percent"]),
    (["--mode", "invert", "--start", "CoCrFeNi", "--spread", "nan"], ["spread"]),
    (["--mode", "invert", "--start", "CoCrFeNi", "--threshold", "nan"], ["threshold"]),
    (["--mode", "invert", "--start", "Fe1e308Ni1e308"], ["overflows"]),
    (["--mode", "interpolate", "--start", "NbMoTaW", "--end", "CoCrFeNi", "--steps", "1"], ["at least 2"]),
])
def test_hostile_design_options_get_one_line_and_exit_2(run_dir, tmp_path, capsys, options, words):
    out = tmp_path / "never.csv"
    _fails(["design", str(run_dir), "--out", str(out)] + options, capsys, *words)
    assert not out.exists()
