"""``pyro-hea inspect`` on a run written by ``pyro-hea train``."""

from __future__ import annotations

import json
import warnings

import arviz as az
import numpy as np
import pytest

from pyro_hea.cli import main
from pyro_hea.diagnostics.ppc_plots import REPORT_FILES

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "pei"
    assert (
        main(
            [
                "train",
                "--dataset",
                "pei2020",
                "--seed",
                "0",
                "--out",
                str(out),
                "--epochs",
                "30",
                "--quiet",
            ]
        )
        == 0
    )
    return out


def test_inspect_writes_netcdf_pngs_and_json(run_dir, capsys):
    assert main(["inspect", str(run_dir), "--samples", "60", "--seed", "2"]) == 0
    printed = capsys.readouterr().out
    assert "test" in printed and "ppc.json" in printed

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idata = az.from_netcdf(str(run_dir / "inference_data.nc"))
    assert {"posterior", "posterior_predictive", "observed_data", "constant_data", "guide"} <= set(
        idata.groups()
    )
    assert idata.posterior["z"].dims == ("chain", "draw", "alloy", "latent_dim")
    assert idata.posterior.sizes["draw"] == 60
    split = dict(zip(*np.loadtxt(run_dir / "split.csv", delimiter=",", skiprows=1, dtype=str).T))
    alloys = idata.constant_data["alloy"].values
    assert [split[a] for a in alloys] == idata.constant_data["split"].values.tolist()
    idata.close()

    for name in REPORT_FILES.values():
        blob = (run_dir / name).read_bytes()
        assert blob.startswith(PNG_MAGIC) and len(blob) > 20_000, name

    summary = json.loads((run_dir / "ppc.json").read_text())
    assert summary["num_samples"] == 60 and summary["seed"] == 2
    assert set(summary["splits"]) == {"labelled", "unlabelled", "val", "test"}
    for s in summary["splits"].values():
        assert 0.0 <= s["ece"] <= 1.0
        p = s["single_phase_rate"]["all"]["p_value"]
        assert 0.0 <= p <= 1.0
        assert set(s["single_phase_rate"]) == {"all", "2", "3", "4", "5", "6+"}
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert summary["splits"]["test"]["ece"] == pytest.approx(metrics["test"]["ece"], abs=1e-5)


def test_missing_run_dir_is_a_one_line_error(tmp_path, capsys):
    assert main(["inspect", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("pyro-hea inspect: error:") and "nowhere" in err


def test_dir_without_a_run_is_a_one_line_error(tmp_path, capsys):
    assert main(["inspect", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "model.pt" in err


def test_bad_sample_count(run_dir, capsys):
    assert main(["inspect", str(run_dir), "--samples", "0"]) == 2
    assert "--samples" in capsys.readouterr().err
