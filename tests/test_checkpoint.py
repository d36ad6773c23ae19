"""Checkpoints: round trip, atomic writes, corrupt or foreign files, and resuming training."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch

from pyro_hea import PhaseModel, paper_split
from pyro_hea.infer.checkpoint import (FORMAT, FORMAT_VERSION, CheckpointError, load_checkpoint, read_checkpoint_file,
                                       write_checkpoint_file)
from pyro_hea.io import atomic_write
from pyro_hea.model.priors import AlloyFamilyMixture, EmpiricalRulesPhase

N = 10



@pytest.fixture(scope="module")
def sub(pei):
    return pei.sample(240, random_state=3).reset_index(drop=True)


@pytest.fixture(scope="module")
def split(sub):
    return paper_split(sub, seed=0)


@pytest.fixture(scope="module")
def saved(sub, split, tmp_path_factory):
    """A model trained N steps with shipped non-default priors, and its checkpoint."""
    model = PhaseModel.fit(sub, split, prior_z=AlloyFamilyMixture(radius=1.5, scale=0.6),
                           prior_y=EmpiricalRulesPhase(confidence=0.2), hidden=[16], latent_dim=2,
                           steps=N, eval_every=5, patience=100, lr=1e-2, seed=0, progress=False)
    path = tmp_path_factory.mktemp("ckpt") / "model.pt"
    model.save(path)
    return model, path


def _tree_equal(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_tree_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_tree_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, torch.Tensor):
        return torch.equal(a, b)
    return a == b or (a != a and b != b)  # NaN == NaN here


# ------------------------------------------------------------------------ round trip
def test_round_trip_gives_identical_predictions_and_metrics(saved, sub, split):
    model, path = saved
    loaded = PhaseModel.load(path)
    np.testing.assert_array_equal(loaded.predict_proba(sub), model.predict_proba(sub))
    for name in ("val", "test"):
        rows = (split == name).to_numpy()
        assert loaded.evaluate(sub, rows) == model.evaluate(sub, rows)
    assert loaded.vocabulary == model.vocabulary
    np.testing.assert_array_equal(loaded.scaler.mean, model.scaler.mean)
    np.testing.assert_array_equal(loaded.scaler.scale, model.scaler.scale)
    assert loaded.vae.config == model.vae.config and loaded.trainer.config == model.trainer.config
    assert type(loaded.vae.prior_z) is AlloyFamilyMixture and loaded.vae.prior_z.config() == {"radius": 1.5, "scale": 0.6}
    assert type(loaded.vae.prior_y) is EmpiricalRulesPhase and loaded.vae.prior_y.confidence == 0.2
    assert _tree_equal(vars(loaded.trainer.state), vars(model.trainer.state))
    assert _tree_equal(loaded.trainer.best_weights, model.trainer.best_weights)
    assert _tree_equal(loaded.trainer.optimizer_state(), model.trainer.optimizer_state())


def test_checkpoint_holds_only_plain_data_and_the_package_version(saved):
    _, path = saved
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:  # a plain safetensors file: nothing to unpickle
        assert set(handle.metadata()) == {"pyro_hea_tree"} and len(list(handle.keys())) > 10
    data = read_checkpoint_file(path)
    assert data["format"] == FORMAT and data["format_version"] == FORMAT_VERSION
    meta = json.loads(data["meta_json"])
    import pyro_hea

    assert meta["package_version"] == pyro_hea.__version__
    assert {"vocabulary", "model_config", "train_config", "prior_z", "prior_y", "scaler_mean",
            "scaler_scale", "training_state"} <= meta.keys()
    assert meta["prior_z"] == {"name": "family-mixture", "class": "AlloyFamilyMixture",
                               "config": {"radius": 1.5, "scale": 0.6}}


# ------------------------------------------------------------------------- resuming
def test_resuming_continues_the_step_counter_and_the_optimizer(saved, sub, split, tmp_path):
    _, path = saved
    loaded = PhaseModel.load(path)
    assert loaded.trainer.state.step == N
    loaded.trainer.config.steps = 2 * N
    loaded.train(sub, split, progress=False)
    st = loaded.trainer.state
    assert st.step == 2 * N
    assert st.history["step"] == [5, 10, 15, 20]
    assert all(np.isfinite(st.history["train_loss"]))
    # Adam's per-parameter step count went on from N: its moments were restored, not restarted.
    steps = {int(s["state"][0]["step"]) for s in loaded.trainer.optimizer_state().values() if s["state"]}
    assert steps == {2 * N}
    # Saved again and reloaded, it goes on from 2N.
    loaded.save(tmp_path / "again.pt")
    assert PhaseModel.load(tmp_path / "again.pt").trainer.state.step == 2 * N


def test_load_then_save_keeps_the_optimizer_state(saved, tmp_path):
    _, path = saved
    PhaseModel.load(path).save(tmp_path / "copy.pt")
    first, second = read_checkpoint_file(path), read_checkpoint_file(tmp_path / "copy.pt")
    assert first["optimizer"] and _tree_equal(first["optimizer"], second["optimizer"])


# --------------------------------------------------------------------------- atomic
def test_save_leaves_no_temporary_file(saved, tmp_path):
    model, _ = saved
    model.save(tmp_path / "model.pt")
    model.save(tmp_path / "model.pt")  # overwriting too
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]


def test_failed_write_keeps_the_old_file(saved, tmp_path, monkeypatch):
    model, path = saved
    target = tmp_path / "model.pt"
    target.write_bytes(path.read_bytes())
    old = target.read_bytes()
    import safetensors.torch

    real_save = safetensors.torch.save_file

    def half_then_fail(tensors, f, *args, **kwargs):
        real_save(tensors, f, *args, **kwargs)
        data = open(f, "rb").read()
        with open(f, "wb") as handle:
            handle.write(data[: len(data) // 2])
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.torch, "save_file", half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        model.save(target)
    assert target.read_bytes() == old
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]
    monkeypatch.undo()
    PhaseModel.load(target)  # still a good checkpoint


def test_atomic_write_replaces_only_after_a_complete_write(tmp_path):
    target = tmp_path / "a.txt"
    target.write_text("old")

    def write(tmp):
        with open(tmp, "w") as f:
            f.write("new, partly")
        assert target.read_text() == "old"  # not yet replaced while writing
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, write)
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["a.txt"]
    atomic_write(target, lambda tmp: open(tmp, "w").write("new"))
    assert target.read_text() == "new"


# ------------------------------------------------------------------------ corruption
class _Marker:
    """Unpickling this object would create a file: weights_only must refuse it."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def _corrupt_files(good: bytes, tmp_path):
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good[: len(good) // 2])
    noise = tmp_path / "noise.pt"
    noise.write_bytes(np.random.default_rng(0).bytes(4096))
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    foreign = tmp_path / "foreign.pt"
    write_checkpoint_file(foreign, {"state_dict": {"w": torch.zeros(3)}})
    a_list = tmp_path / "list.pt"
    write_checkpoint_file(a_list, [torch.zeros(2)])
    plain = tmp_path / "plain.safetensors"
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(3)}, str(plain))
    legacy = tmp_path / "legacy.pt"
    torch.save({"format": FORMAT, "format_version": 1, "weights": {"w": torch.zeros(3)}}, legacy)
    return {
        plain: "is not a pyro-hea checkpoint",
        legacy: "corrupt or not a pyro-hea checkpoint .*torch.save file",
        truncated: "corrupt or not a pyro-hea checkpoint",
        noise: "corrupt or not a pyro-hea checkpoint",
        empty: "corrupt or not a pyro-hea checkpoint",
        foreign: "is not a pyro-hea checkpoint",
        a_list: "is not a pyro-hea checkpoint",
    }


def test_corrupt_or_foreign_files_get_a_clear_error(saved, tmp_path):
    _, path = saved
    for bad, message in _corrupt_files(path.read_bytes(), tmp_path).items():
        with pytest.raises(CheckpointError, match=message) as info:
            PhaseModel.load(bad)
        assert bad.name in str(info.value) and "\n" not in str(info.value)


def test_wrong_format_version(saved, tmp_path):
    _, path = saved
    data = read_checkpoint_file(path)
    data["format_version"] = FORMAT_VERSION + 98
    write_checkpoint_file(tmp_path / "future.pt", data)
    with pytest.raises(CheckpointError, match=f"format version {FORMAT_VERSION + 98}; this pyro-hea reads "
                                              f"version {FORMAT_VERSION}"):
        PhaseModel.load(tmp_path / "future.pt")


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("writer", ["torch", "pickle"])
def test_pickled_objects_are_refused_without_being_run(tmp_path, writer):
    marker = tmp_path / "was-unpickled"
    bad = tmp_path / "evil.pt"
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION, "x": _Marker(marker)}
    if writer == "torch":
        torch.save(payload, bad)
    else:
        bad.write_bytes(pickle.dumps(payload))
    with pytest.raises(CheckpointError, match="corrupt or not a pyro-hea checkpoint"):
        load_checkpoint(bad)
    with pytest.raises(CheckpointError):
        PhaseModel.load(bad)
    assert not marker.exists()


def test_checkpoint_that_does_not_fit_the_model(saved, tmp_path):
    _, path = saved
    data = read_checkpoint_file(path)
    meta = json.loads(data["meta_json"])
    meta["model_config"]["latent_dim"] = 5  # the weights are for latent_dim 2
    write_checkpoint_file(tmp_path / "mismatch.pt", {**data, "meta_json": json.dumps(meta)})
    with pytest.raises(CheckpointError, match="does not fit") as info:
        PhaseModel.load(tmp_path / "mismatch.pt")
    assert "\n" not in str(info.value)
    no_meta = {k: v for k, v in data.items() if k != "meta_json"}
    write_checkpoint_file(tmp_path / "no-meta.pt", no_meta)
    with pytest.raises(CheckpointError, match="does not fit"):
        PhaseModel.load(tmp_path / "no-meta.pt")


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint file"):
        PhaseModel.load(tmp_path / "nope.pt")
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path)  # a directory is not a checkpoint file


# ------------------------------------------------------------- hostile contents
def test_nan_weights_are_refused(saved, tmp_path):
    _, path = saved
    data = read_checkpoint_file(path)
    name = next(iter(data["weights"]))
    data["weights"][name] = torch.full_like(data["weights"][name], float("nan"))
    write_checkpoint_file(tmp_path / "nan.pt", data)
    with pytest.raises(CheckpointError, match=f"NaN or infinite values in weights.{name}") as info:
        PhaseModel.load(tmp_path / "nan.pt")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("scale", [0.0, -1.0, float("nan")])
def test_a_degenerate_scaler_is_refused(saved, tmp_path, scale):
    _, path = saved
    data = read_checkpoint_file(path)
    meta = json.loads(data["meta_json"])
    meta["scaler_scale"][3] = scale
    write_checkpoint_file(tmp_path / "scaler.pt", {**data, "meta_json": json.dumps(meta)})
    with pytest.raises(CheckpointError, match="descriptor scaler with a zero, negative or non-finite scale"):
        PhaseModel.load(tmp_path / "scaler.pt")


def test_the_corrupt_message_passes_on_no_torch_hint(saved, tmp_path):
    bad = tmp_path / "legacy.pt"
    torch.save({"x": _Marker(tmp_path / "m")}, bad)
    with pytest.raises(CheckpointError) as info:
        PhaseModel.load(bad)
    assert "weights_only" not in str(info.value) and "\n" not in str(info.value)
    assert not (tmp_path / "m").exists()


def test_a_wrong_training_state_does_not_fit(saved, tmp_path):
    _, path = saved
    data = read_checkpoint_file(path)
    meta = json.loads(data["meta_json"])
    meta["training_state"] = ["not", "a", "dict"]
    write_checkpoint_file(tmp_path / "state.pt", {**data, "meta_json": json.dumps(meta)})
    with pytest.raises(CheckpointError, match="does not fit"):
        PhaseModel.load(tmp_path / "state.pt")
    data["best_weights"] = {"w": torch.zeros(2)}
    write_checkpoint_file(tmp_path / "best.pt", data)
    with pytest.raises(CheckpointError, match="best weights do not match"):
        PhaseModel.load(tmp_path / "best.pt")


# ---------------------------------------------------------- atomic writes, again
def test_atomic_write_calls_fsync_and_respects_the_umask(tmp_path, monkeypatch):
    import os

    synced = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real(fd))[1])
    old = os.umask(0o022)
    try:
        atomic_write(tmp_path / "a.txt", lambda tmp: open(tmp, "w").write("x"))
        os.umask(0o077)
        atomic_write(tmp_path / "b.txt", lambda tmp: open(tmp, "w").write("x"))
    finally:
        os.umask(old)
    assert len(synced) >= 2
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "b.txt").stat().st_mode & 0o777 == 0o600


def test_a_terminated_save_leaves_no_temporary_file(tmp_path):
    """SIGTERM during a write (the CLI turns it into an exception) removes the temporary file."""
    import signal
    import subprocess
    import sys
    import time

    target = tmp_path / "model.pt"
    script = (
        "import signal, sys, time, pathlib\n"
        "from pyro_hea.cli import _terminate_on_sigterm\n"
        "from pyro_hea.io import atomic_write\n"
        "_terminate_on_sigterm()\n"
        "def slow(tmp):\n"
        "    pathlib.Path(tmp).write_text('partial')\n"
        "    print('writing', flush=True)\n"
        "    time.sleep(30)\n"
        f"atomic_write({str(target)!r}, slow)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    time.sleep(0.1)
    assert proc.returncode != 0
    assert list(tmp_path.iterdir()) == []


def test_a_resumed_run_keeps_the_learning_rate_at_its_floor(saved, sub, split):
    _, path = saved
    loaded = PhaseModel.load(path)
    cfg = loaded.trainer.config
    loaded.trainer.config.steps = 6 * N  # without the floor, the fixed per-step decay would go on past it
    loaded.train(sub, split, progress=False)
    floor = cfg.lr * cfg.final_lr_fraction
    position = loaded.vae.decoder.class_shift.weight
    rates = [g["lr"] for p, o in loaded.trainer.optim.optim_objs.items() if p is not position for g in o.param_groups]
    assert rates and min(rates) == pytest.approx(floor, rel=1e-9) and max(rates) == pytest.approx(floor, rel=1e-9)
    # the class positions mu_y keep their own floor, class_position_lr_factor times higher
    (rate,) = [g["lr"] for p, o in loaded.trainer.optim.optim_objs.items() if p is position for g in o.param_groups]
    assert rate == pytest.approx(cfg.class_position_lr_factor * floor, rel=1e-9)
    assert loaded.trainer.state.step == 6 * N


def test_a_model_with_class_spreads_round_trips_and_resumes_with_both_at_the_fast_floor(sub, split, tmp_path):
    model = PhaseModel.fit(sub, split, class_scale=True, hidden=[16], latent_dim=2, steps=N, eval_every=5,
                           lr=1e-2, seed=0, progress=False)
    with torch.no_grad():  # a spread that differs from 1, so that a load which dropped it would show
        model.vae.decoder.class_log_scale.add_(0.3)
    model.save(tmp_path / "model.pt")
    loaded = PhaseModel.load(tmp_path / "model.pt")
    assert loaded.vae.config.class_scale
    torch.testing.assert_close(loaded.vae.decoder.class_log_scale, model.vae.decoder.class_log_scale)
    np.testing.assert_array_equal(loaded.predict_proba(sub), model.predict_proba(sub))
    loaded.trainer.config.steps = 4 * N
    loaded.train(sub, split, progress=False)
    cfg, decoder = loaded.trainer.config, loaded.vae.decoder
    fast = {id(decoder.class_shift.weight), id(decoder.class_log_scale)}
    floor = cfg.lr * cfg.final_lr_fraction
    rates = {p: g["lr"] for p, o in loaded.trainer.optim.optim_objs.items() for g in o.param_groups}
    assert sorted(r for p, r in rates.items() if id(p) in fast) == pytest.approx([cfg.class_position_lr_factor * floor] * 2)
    assert {round(r / floor, 9) for p, r in rates.items() if id(p) not in fast} == {1.0}


def test_a_model_with_a_random_partition_round_trips_with_its_splits(sub, split, tmp_path):
    model = PhaseModel.fit(sub, split, classifier_trees=16, classifier_tree_depth=3, hidden=[16], latent_dim=2,
                           steps=N, eval_every=5, lr=1e-2, seed=0, progress=False)
    assert model.vae.classifier.leaf_logits.weight.abs().sum() > 0  # trained
    model.save(tmp_path / "model.pt")
    loaded = PhaseModel.load(tmp_path / "model.pt")
    for name in ("split_feature", "split_level", "thresholds"):
        torch.testing.assert_close(getattr(loaded.vae.classifier.partition, name),
                                   getattr(model.vae.classifier.partition, name))
    np.testing.assert_array_equal(loaded.predict_proba(sub), model.predict_proba(sub))
