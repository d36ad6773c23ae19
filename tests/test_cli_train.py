"""``pyro-hea train`` and ``pyro-hea evaluate``: the run directory and the error paths."""

from __future__ import annotations

import json
import shutil
import struct

import pytest
import torch

from pyro_hea.cli import main
from pyro_hea.model.priors import AlloyFamilyMixture, DescriptorAligned, EmpiricalRulesPhase
from pyro_hea.infer.run import load_run

METRIC_KEYS = {"auc", "accuracy", "f1", "brier", "ece", "recon_mae_present", "recon_set_match"}



@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """One real training run (30 full-batch epochs on Pei 2020), shared by the tests below."""
    out = tmp_path_factory.mktemp("cli") / "run"
    status = main(["train", "--dataset", "pei2020", "--seed", "0", "--out", str(out), "--epochs", "30", "--quiet"])
    assert status == 0
    return out


def _run(capsys, *argv):
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def test_train_writes_the_run_directory(run_dir):
    assert {p.name for p in run_dir.iterdir()} >= {"metrics.json", "config.json", "model.pt", "split.csv",
                                                   "training_curve.png"}
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for name in ("val", "test"):
        assert METRIC_KEYS <= metrics[name].keys()
        for key in ("auc", "accuracy", "f1", "brier", "ece", "recon_set_match"):
            assert 0.0 <= metrics[name][key] <= 1.0, (name, key)
        assert metrics[name]["recon_mae_present"] >= 0.0
    assert metrics["steps"] == 30 and metrics["val"]["n"] > 0 and metrics["test"]["n"] > 0
    config = json.loads((run_dir / "config.json").read_text())
    assert config["dataset"] == "pei2020" and config["seed"] == 0 and config["classes"] == 2
    assert config["training"]["steps"] == 30
    assert (config["prior_z"], config["prior_y"]) == ("standard-normal", "uniform")


def test_training_curve_is_a_valid_png(run_dir):
    data = (run_dir / "training_curve.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    assert width > 300 and height > 200
    from PIL import Image

    with Image.open(run_dir / "training_curve.png") as image:
        image.verify()


def test_evaluate_reprints_the_metrics_exactly(run_dir, capsys):
    status, out, err = _run(capsys, "evaluate", run_dir, "--json")
    assert status == 0, err
    again = json.loads(out)
    saved = json.loads((run_dir / "metrics.json").read_text())
    assert again == {"val": saved["val"], "test": saved["test"]}


def test_evaluate_prints_a_table(run_dir, capsys):
    status, out, _ = _run(capsys, "evaluate", run_dir)
    assert status == 0
    lines = out.strip().splitlines()
    assert lines[0].split()[:3] == ["split", "auc", "accuracy"]
    assert [line.split()[0] for line in lines[1:]] == ["val", "test"]


def test_non_empty_run_dir_needs_force(run_dir, capsys):
    before = (run_dir / "metrics.json").read_bytes()
    status, out, err = _run(capsys, "train", "--out", run_dir, "--epochs", "2", "--quiet")
    assert status == 2
    assert err.count("\n") == 1 and err.startswith("pyro-hea train: error:") and "--force" in err
    assert "Traceback" not in err
    assert (run_dir / "metrics.json").read_bytes() == before


def test_four_classes_shipped_priors_and_force(tmp_path, capsys):
    out = tmp_path / "k4"
    status, _, err = _run(capsys, "train", "--out", out, "--classes", "4", "--prior-z", "family-mixture",
                          "--prior-y", "empirical-rules", "--epochs", "4", "--latent-dim", "3", "--alpha", "5",
                          "--label-fraction", "0.5", "--seed", "1", "--quiet")
    assert status == 0, err
    metrics = json.loads((out / "metrics.json").read_text())
    assert METRIC_KEYS <= metrics["val"].keys() and metrics["steps"] == 4
    config = json.loads((out / "config.json").read_text())
    assert config["classes"] == 4 and config["model"]["n_classes"] == 4
    assert (config["prior_z"], config["prior_y"]) == ("family-mixture", "empirical-rules")
    assert config["model"]["latent_dim"] == 3 and config["model"]["alpha"] == 5.0
    assert config["label_fraction"] == 0.5
    assert config["split_counts"]["unlabelled"] > config["split_counts"]["labelled"] / 2
    run = load_run(out)
    assert run.model.n_classes == 4 and run.model.predict_proba(["NbMoTaW"]).shape == (1, 4)
    assert isinstance(run.model.vae.prior_z, AlloyFamilyMixture)
    assert isinstance(run.model.vae.prior_y, EmpiricalRulesPhase)

    status, _, err = _run(capsys, "train", "--out", out, "--epochs", "2", "--quiet")
    assert status == 2 and "--force" in err
    status, _, err = _run(capsys, "train", "--out", out, "--epochs", "2", "--prior-z", "descriptor-aligned",
                          "--force", "--quiet")
    assert status == 0, err
    config = json.loads((out / "config.json").read_text())
    assert config["classes"] == 2 and config["prior_z"] == "descriptor-aligned"
    assert isinstance(load_run(out).model.vae.prior_z, DescriptorAligned)


def test_the_generative_configuration_from_the_command_line(tmp_path, capsys):
    out = tmp_path / "gen"
    status, _, err = _run(capsys, "train", "--out", out, "--epochs", "3", "--latent-dim", "2", "--decoder", "mlp",
                          "--total-count", "100", "--quiet")
    assert status == 0, err
    config = json.loads((out / "config.json").read_text())["model"]
    assert (config["decoder"], config["total_count"], config["latent_dim"]) == ("mlp", 100, 2)
    model = load_run(out).model
    assert model.vae.decoder.net[0].in_features == 2 + 2
    status, _, err = _run(capsys, "train", "--out", tmp_path / "bad", "--epochs", "3", "--total-count", "0", "--quiet")
    assert status == 2 and "total_count" in err and "Traceback" not in err


def test_unknown_prior_is_an_argparse_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["train", "--out", str(tmp_path / "x"), "--prior-z", "gamma"])
    assert info.value.code == 2
    assert "invalid choice: 'gamma'" in capsys.readouterr().err


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_evaluate_refuses_a_corrupt_checkpoint_in_one_line(run_dir, tmp_path, capsys, damage):
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    model = copy / "model.pt"
    data = model.read_bytes()
    model.write_bytes(b"not a checkpoint" * 64 if damage == "garbage" else data[: len(data) // 3])
    status, out, err = _run(capsys, "evaluate", copy, "--json")
    assert status == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("pyro-hea evaluate: error:")
    assert str(model) in err and "corrupt" in err
    assert "Traceback" not in err


def test_evaluate_needs_a_run_directory(tmp_path, capsys):
    status, _, err = _run(capsys, "evaluate", tmp_path / "missing")
    assert status == 2 and "no run directory" in err and err.count("\n") == 1
    (tmp_path / "empty").mkdir()
    status, _, err = _run(capsys, "evaluate", tmp_path / "empty")
    assert status == 2 and "has no model.pt" in err and err.count("\n") == 1


def test_train_fits_the_contrast_position_unless_told_not_to(run_dir, tmp_path):
    """The default run records its contrast position; --no-contrast-position keeps the trained one."""
    fitted = load_run(run_dir).model
    assert fitted.metadata["contrast_position"]["contrast"] == 0
    out = tmp_path / "plain"
    assert main(["train", "--dataset", "pei2020", "--seed", "0", "--out", str(out), "--epochs", "30", "--quiet",
                 "--no-contrast-position"]) == 0
    plain = load_run(out).model
    assert "contrast_position" not in plain.metadata and plain.vae.config.contrast_position is False
    assert json.loads((out / "config.json").read_text())["model"]["contrast_position"] is False
    # the same training, so the same single-phase position; only the multi-phase one moved
    a, b = fitted.vae.decoder.class_shift.weight, plain.vae.decoder.class_shift.weight
    assert torch.equal(a[:, 1], b[:, 1]) and not torch.equal(a[:, 0], b[:, 0])
