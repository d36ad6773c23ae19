"""No crash, no silent garbage, nothing lost: hostile input to every command (issue 12, section 4).

Every error from user input is one line on stderr naming the input, with exit status 2; no
traceback without ``--debug``; no NaN in an output file; nothing is replaced without ``--force``,
and a run directory appears, or is replaced, as a whole.
"""

from __future__ import annotations

import json
import math
import shutil

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pyro_hea.cli import main
from pyro_hea.commands.options import MAX_SEED, check_int, check_number
from pyro_hea.errors import PyroHeaError
from pyro_hea.infer.checkpoint import _decode, _encode, read_checkpoint_file, write_checkpoint_file
from pyro_hea.io import json_safe, write_json

TINY = ["--epochs", "3", "--latent-dim", "2", "--quiet"]


def _run(capsys, *argv):
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def _one_line_error(status, err, command, *needles):
    assert status == 2, err
    assert err.count("\n") == 1 and err.startswith(f"pyro-hea {command}: error:"), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, (needle, err)


def _strict_json(path):
    def refuse(name):
        raise AssertionError(f"{path} holds {name}, which is not JSON")

    return json.loads(path.read_text(), parse_constant=refuse)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("errors") / "run"
    assert main(["train", "--out", str(out), *TINY]) == 0
    return out


@pytest.fixture
def copy(run_dir, tmp_path):
    target = tmp_path / "run"
    shutil.copytree(run_dir, target)
    return target


# ------------------------------------------------------------------ options
@pytest.mark.parametrize("argv, option", [
    (["--epochs", "-1"], "--epochs"),
    (["--epochs", "9" * 400], "--epochs"),
    (["--seed", "-1"], "--seed"),
    (["--seed", "4294967296"], "--seed"),
    (["--alpha", "nan"], "--alpha"),
    (["--alpha", "-1"], "--alpha"),
    (["--lr", "0"], "--lr"),
    (["--lr", "inf"], "--lr"),
    (["--label-fraction", "0"], "--label-fraction"),
    (["--latent-dim", "0"], "--latent-dim"),
    (["--total-count", "0"], "--total-count"),
])
def test_bad_train_options_name_the_option_and_write_nothing(tmp_path, capsys, argv, option):
    out = tmp_path / "run"
    status, _, err = _run(capsys, "train", "--out", out, *argv, "--quiet")
    _one_line_error(status, err, "train", option)
    assert len(err) < 300  # 400 digits are not echoed back
    assert not out.exists() and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("argv, option", [
    (["inspect", "{run}", "--samples", "0"], "--samples"),
    (["inspect", "{run}", "--seed", "-5"], "--seed"),
    (["explain", "{run}", "--points", "1"], "--points"),
    (["explain", "{run}", "--seed", str(MAX_SEED + 1)], "--seed"),
])
def test_bad_options_of_other_commands(run_dir, capsys, argv, option):
    status, _, err = _run(capsys, *[a.format(run=run_dir) for a in argv])
    _one_line_error(status, err, argv[0], option)


def test_a_non_number_is_a_one_line_argparse_error(capsys):
    with pytest.raises(SystemExit) as info:
        main(["train", "--out", "x", "--epochs", "ten"])
    err = capsys.readouterr().err
    assert info.value.code == 2 and err.count("\n") == 1 and "--epochs" in err and "--help" in err


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=-(10**400), max_value=10**400))
def test_check_int_accepts_exactly_the_range(value):
    args = type("Args", (), {"epochs": value})()
    if 1 <= value <= 10**7:
        check_int(args, "epochs", 1, 10**7)
    else:
        with pytest.raises(PyroHeaError, match="^--epochs must be an integer from 1 to 10000000") as info:
            check_int(args, "epochs", 1, 10**7)
        assert len(str(info.value)) < 120


@settings(max_examples=60, deadline=None)
@given(st.floats(allow_nan=True, allow_infinity=True))
def test_check_number_refuses_every_non_finite_or_out_of_range_value(value):
    args = type("Args", (), {"alpha": value})()
    if math.isfinite(value) and 0 <= value <= 1e6:
        check_number(args, "alpha", 0.0, 1e6)
    else:
        with pytest.raises(PyroHeaError, match="^--alpha must be a finite number"):
            check_number(args, "alpha", 0.0, 1e6)


# ------------------------------------------------------------ the --out folder
def test_out_that_is_a_file_or_under_a_file(tmp_path, capsys):
    a_file = tmp_path / "file"
    a_file.write_text("keep me")
    status, _, err = _run(capsys, "train", "--out", a_file, *TINY)
    _one_line_error(status, err, "train", "is not a directory")
    status, _, err = _run(capsys, "train", "--out", a_file / "run", *TINY)
    _one_line_error(status, err, "train", "cannot write the run directory")
    assert a_file.read_text() == "keep me"


def test_an_unwritable_out_is_refused_before_training(tmp_path, capsys, monkeypatch):
    import tempfile

    from pyro_hea.infer.phase_model import PhaseModel

    def no_training(*args, **kwargs):
        raise AssertionError("training started")

    def denied(*args, dir=None, **kwargs):
        raise PermissionError(13, "Permission denied", str(dir))

    monkeypatch.setattr(PhaseModel, "fit", no_training)
    monkeypatch.setattr(tempfile, "mkdtemp", denied)
    status, _, err = _run(capsys, "train", "--out", tmp_path / "locked" / "run", *TINY)
    _one_line_error(status, err, "train", "cannot write the run directory", "Permission denied")
    assert list(tmp_path.iterdir()) == []  # the parent it had to create is gone again
    status, _, err = _run(capsys, "train", "--out", "/proc/pyro-hea-run", *TINY)
    _one_line_error(status, err, "train", "cannot write the run directory")


def test_a_failed_train_leaves_nothing_behind(tmp_path, capsys, monkeypatch):
    from pyro_hea.infer.phase_model import PhaseModel
    from pyro_hea.infer.training import TrainingError

    def diverge(*args, **kwargs):
        raise TrainingError("the training loss became nan at step 3")

    monkeypatch.setattr(PhaseModel, "fit", diverge)
    status, _, err = _run(capsys, "train", "--out", tmp_path / "new" / "run", *TINY)
    _one_line_error(status, err, "train", "nan at step 3")
    assert list(tmp_path.iterdir()) == []


def test_an_interrupted_train_leaves_the_old_run_whole(copy, capsys, monkeypatch):
    from pyro_hea.infer.phase_model import PhaseModel

    before = {p.name: p.read_bytes() for p in copy.iterdir()}

    def interrupt(self, path):
        raise KeyboardInterrupt

    monkeypatch.setattr(PhaseModel, "save", interrupt)
    status, _, err = _run(capsys, "train", "--out", copy, "--force", *TINY)
    assert status == 130 and err.strip() == "pyro-hea train: interrupted"
    assert {p.name: p.read_bytes() for p in copy.iterdir()} == before
    assert sorted(p.name for p in copy.parent.iterdir()) == ["run"]  # no temporary sibling left


def test_force_replaces_the_whole_run(copy, capsys):
    (copy / "ppc.json").write_text("{}")
    (copy / "inference_data.nc").write_bytes(b"old")
    (copy / "explain").mkdir()
    (copy / "explain" / "explain.json").write_text("{}")
    status, out, err = _run(capsys, "train", "--out", copy, "--force", "--epochs", "2", "--latent-dim", "2")
    assert status == 0, err
    assert sorted(p.name for p in copy.iterdir()) == ["config.json", "metrics.json", "model.pt", "split.csv",
                                                     "training_curve.png"]
    assert "wrote" in out and "model.pt" in out
    assert sorted(p.name for p in copy.parent.iterdir()) == ["run"]


def test_force_does_not_replace_a_folder_that_holds_no_run(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("my thesis")
    status, _, err = _run(capsys, "train", "--out", tmp_path, "--force", *TINY)
    _one_line_error(status, err, "train", "holds no run")
    assert (tmp_path / "notes.txt").read_text() == "my thesis"


def test_files_get_the_usual_permissions(run_dir):
    import os

    mask = os.umask(0)
    os.umask(mask)
    assert run_dir.stat().st_mode & 0o777 == 0o777 & ~mask
    for path in run_dir.iterdir():
        assert path.stat().st_mode & 0o777 == 0o666 & ~mask, path.name


# ----------------------------------------------------------------- no NaN
def test_every_json_file_of_a_run_is_strict_json(run_dir):
    for path in run_dir.glob("*.json"):
        _strict_json(path)


def test_nan_metrics_are_written_as_null(tmp_path):
    write_json(tmp_path / "m.json", {"val": {"auc": float("nan"), "n": 3}, "inf": [float("-inf")]})
    assert _strict_json(tmp_path / "m.json") == {"val": {"auc": None, "n": 3}, "inf": [None]}


json_trees = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=4), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=100, deadline=None)
@given(json_trees)
def test_json_safe_always_gives_strict_json(tree):
    json.dumps(json_safe(tree), allow_nan=False)


@settings(max_examples=50, deadline=None)
@given(st.recursive(
    st.none() | st.booleans() | st.integers(-2**60, 2**60) | st.floats(allow_nan=False) | st.text(max_size=5)
    | st.builds(lambda n: torch.arange(float(n)), st.integers(0, 4)),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=4) | st.integers(0, 9), children, max_size=3),
    max_leaves=15,
))
def test_checkpoint_trees_round_trip(tree):
    tensors: dict = {}
    encoded = json.loads(json.dumps(_encode(tree, tensors), allow_nan=False))
    back = _decode(encoded, tensors)

    def same(a, b):
        if isinstance(a, torch.Tensor):
            return torch.equal(a, b)
        if isinstance(a, dict):
            return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
        if isinstance(a, (list, tuple)):
            return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
        return a == b and type(a) is type(b)

    assert same(tree, back)


def test_a_one_class_dataset_is_refused_before_training(pei, tmp_path, capsys):
    csv = tmp_path / "single.csv"
    pei[pei["single_phase"] == 1][["formula", "phase"]].head(200).to_csv(csv, index=False)
    status, _, err = _run(capsys, "train", "--dataset", csv, "--out", tmp_path / "run", *TINY)
    _one_line_error(status, err, "train", "only class 'single-phase'", "at least two")
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------- corrupt run dirs
def _nan_weights(run):
    data = read_checkpoint_file(run / "model.pt")
    name = next(iter(data["weights"]))
    data["weights"][name] = data["weights"][name] * float("nan")
    write_checkpoint_file(run / "model.pt", data)


def _zero_scale(run):
    data = read_checkpoint_file(run / "model.pt")
    meta = json.loads(data["meta_json"])
    meta["scaler_scale"][0] = 0.0
    write_checkpoint_file(run / "model.pt", {**data, "meta_json": json.dumps(meta)})


def _config(edit):
    def damage(run):
        config = json.loads((run / "config.json").read_text())
        (run / "config.json").write_text(json.dumps(edit(config)))
    return damage


CORRUPTIONS = {
    "config not JSON": (lambda run: (run / "config.json").write_text("{'dataset': pei2020"), "config.json"),
    "config a list": (lambda run: (run / "config.json").write_text("[1, 2]"), "JSON object"),
    "config wrong type": (_config(lambda c: {**c, "classes": "two"}), "'classes' must be an integer"),
    "config missing key": (_config(lambda c: {k: v for k, v in c.items() if k != "dataset"}), "no 'dataset' key"),
    "config says 4 classes": (_config(lambda c: {**c, "classes": 4}), "has 2 classes but"),
    "config another dataset": (_config(lambda c: {**c, "dataset": "borg2020"}), "trained on dataset 'pei2020'"),
    "config binary": (lambda run: (run / "config.json").write_bytes(b"\xff\xfe\x00garbage"), "UTF-8"),
    "split garbage": (lambda run: (run / "split.csv").write_text("a,b\n1,2\n"), "split.csv"),
    "split unknown name": (lambda run: (run / "split.csv").write_text("formula,split\nFe,training\n"), "training"),
    "model truncated": (lambda run: (run / "model.pt").write_bytes((run / "model.pt").read_bytes()[:999]),
                        "corrupt"),
    "model missing": (lambda run: (run / "model.pt").unlink(), "has no model.pt"),
    "model NaN weights": (_nan_weights, "NaN or infinite"),
    "model zero scaler": (_zero_scale, "descriptor scaler"),
    "model a pickle": (lambda run: torch.save({"w": torch.zeros(2)}, run / "model.pt"), "torch.save file"),
}
COMMANDS = {
    "evaluate": ["evaluate", "{run}"],
    "inspect": ["inspect", "{run}", "--samples", "5", "--quiet"],
    "explain": ["explain", "{run}", "--quiet"],
    "design": ["design", "{run}", "--mode", "latent", "--n", "5", "--out", "{run}/design.csv"],
}


@pytest.mark.parametrize("damage", sorted(CORRUPTIONS))
def test_every_command_refuses_a_corrupt_run_directory(copy, capsys, damage):
    corrupt, needle = CORRUPTIONS[damage]
    corrupt(copy)
    before = {p.name: p.read_bytes() for p in copy.iterdir()}
    for command, argv in COMMANDS.items():
        status, out, err = _run(capsys, *[a.format(run=copy) for a in argv])
        _one_line_error(status, err, command, needle)
        assert "weights_only" not in err and len(err) < 700
    assert {p.name: p.read_bytes() for p in copy.iterdir()} == before  # nothing written, nothing lost


def test_a_model_of_another_run_is_refused(run_dir, tmp_path, capsys):
    four = tmp_path / "four"
    assert main(["train", "--out", str(four), "--classes", "4", *TINY]) == 0
    mixed = tmp_path / "mixed"
    shutil.copytree(run_dir, mixed)
    shutil.copy(four / "model.pt", mixed / "model.pt")
    status, _, err = _run(capsys, "evaluate", mixed)
    _one_line_error(status, err, "evaluate", "has 4 classes but", "says 2")


def test_a_model_trained_on_another_dataset_says_so(pei, run_dir, tmp_path, capsys):
    csv = tmp_path / "cantor.csv"
    few = pei[pei["formula"].str.fullmatch(r"(?:(?:Co|Cr|Fe|Ni|Mn|Al)[0-9.]*)+")][["formula", "phase"]]
    few.to_csv(csv, index=False)
    other = tmp_path / "other"
    assert main(["train", "--dataset", str(csv), "--out", str(other), *TINY]) == 0
    mixed = tmp_path / "mixed"
    shutil.copytree(run_dir, mixed)
    shutil.copy(other / "model.pt", mixed / "model.pt")
    status, _, err = _run(capsys, "evaluate", mixed)
    _one_line_error(status, err, "evaluate", "was trained on dataset", "cantor.csv")
    # Without the dataset in its metadata, the vocabulary gives it away, in one short line.
    data = read_checkpoint_file(mixed / "model.pt")
    meta = json.loads(data["meta_json"])
    meta["metadata"].pop("dataset")
    write_checkpoint_file(mixed / "model.pt", {**data, "meta_json": json.dumps(meta)})
    status, _, err = _run(capsys, "evaluate", mixed)
    _one_line_error(status, err, "evaluate", "was not trained on dataset 'pei2020'", "not in its vocabulary")
    assert len(err) < 400


# ------------------------------------------------------------- the catch-all
def test_an_unexpected_error_is_one_line_with_a_debug_hint(run_dir, capsys, monkeypatch):
    from pyro_hea.commands import train

    def bug(args):
        raise ZeroDivisionError("division by zero\nsecond line")

    monkeypatch.setattr(train, "run_evaluate", bug)
    status, _, err = _run(capsys, "evaluate", run_dir)
    assert status == 1 and err.count("\n") == 1 and "Traceback" not in err
    assert "ZeroDivisionError: division by zero second line" in err and "--debug" in err
    with pytest.raises(ZeroDivisionError):
        main(["evaluate", str(run_dir), "--debug"])
    with pytest.raises(ZeroDivisionError):
        main(["--debug", "evaluate", str(run_dir)])


def test_os_errors_are_one_line(run_dir, capsys, monkeypatch):
    from pyro_hea.commands import train

    def full(args):
        raise OSError(28, "No space left on device", "/runs/x/metrics.json")

    monkeypatch.setattr(train, "run_evaluate", full)
    status, _, err = _run(capsys, "evaluate", run_dir)
    _one_line_error(status, err, "evaluate", "No space left on device", "metrics.json")


# ------------------------------------------------------------ what is printed
def test_quiet_commands_print_nothing_and_others_say_what_they_wrote(run_dir, tmp_path, capsys):
    status, out, err = _run(capsys, "train", "--out", tmp_path / "q", *TINY)
    assert status == 0 and out == "" and err == ""
    copy = tmp_path / "inspected"
    shutil.copytree(run_dir, copy)
    status, out, err = _run(capsys, "inspect", copy, "--samples", "5", "--quiet")
    assert status == 0 and out == "" and err == ""
    status, out, err = _run(capsys, "inspect", copy, "--samples", "5")
    assert status == 0 and "wrote" in out and "inference_data.nc" in out and "ppc.json" in out


@pytest.mark.parametrize("make", [
    lambda: __import__("pyro_hea").ModelConfig(alpha=float("nan")),
    lambda: __import__("pyro_hea").ModelConfig(alpha=float("inf")),
    lambda: __import__("pyro_hea").TrainConfig(lr=float("nan")),
    lambda: __import__("pyro_hea").TrainConfig(lr=float("inf")),
])
def test_non_finite_settings_are_refused_in_the_api_too(make):
    with pytest.raises(PyroHeaError, match="alpha|lr"):
        make()
