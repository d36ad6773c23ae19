"""Checkpoints: round trip, atomic writes, corrupt or foreign files, and resuming training."""

from __future__ import annotations

import io
import json
import pickle

import numpy as np
import pytest
import torch

from pyro_hea import PhaseModel, paper_split
from pyro_hea.infer.checkpoint import FORMAT, FORMAT_VERSION, CheckpointError, atomic_write, load_checkpoint
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
    data = torch.load(path, weights_only=True)  # would raise on any pickled object
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
    first, second = torch.load(path, weights_only=True), torch.load(tmp_path / "copy.pt", weights_only=True)
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
    real_save = torch.save

    def half_then_fail(obj, f, *args, **kwargs):
        buffer = io.BytesIO()
        real_save(obj, buffer)
        with open(f, "wb") as handle:
            handle.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", half_then_fail)
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
    torch.save({"state_dict": {"w": torch.zeros(3)}}, foreign)
    a_list = tmp_path / "list.pt"
    torch.save([torch.zeros(2)], a_list)
    return {
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
    data = torch.load(path, weights_only=True)
    data["format_version"] = FORMAT_VERSION + 98
    torch.save(data, tmp_path / "future.pt")
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
    data = torch.load(path, weights_only=True)
    meta = json.loads(data["meta_json"])
    meta["model_config"]["latent_dim"] = 5  # the weights are for latent_dim 2
    torch.save({**data, "meta_json": json.dumps(meta)}, tmp_path / "mismatch.pt")
    with pytest.raises(CheckpointError, match="does not fit") as info:
        PhaseModel.load(tmp_path / "mismatch.pt")
    assert "\n" not in str(info.value)
    no_meta = {k: v for k, v in data.items() if k != "meta_json"}
    torch.save(no_meta, tmp_path / "no-meta.pt")
    with pytest.raises(CheckpointError, match="does not fit"):
        PhaseModel.load(tmp_path / "no-meta.pt")


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint file"):
        PhaseModel.load(tmp_path / "nope.pt")
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path)  # a directory is not a checkpoint file
