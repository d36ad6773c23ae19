"""Run directories: what ``pyro-hea train`` writes and the other commands read.

A run directory holds

- ``model.pt``: the checkpoint (:meth:`~pyro_hea.infer.phase_model.PhaseModel.save`,
  safetensors + JSON);
- ``config.json``: dataset, split settings, model and training settings;
- ``split.csv``: the split of every alloy, by canonical formula;
- ``metrics.json``: ``val`` and ``test`` metrics (the test split is read once);
- ``training_curve.png``.

A run directory is consistent as a whole: :func:`staged_run_dir` writes it into
a temporary sibling and renames it into place only when every file is written,
so a failed or killed ``train`` leaves the old run (or nothing) behind, never a
new model beside old metrics; and :func:`load_run` checks that the checkpoint,
``config.json`` and ``split.csv`` belong together.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from pyro_hea.data.datasets import element_vocabulary, load_dataset
from pyro_hea.data.splits import SPLITS
from pyro_hea.errors import PyroHeaError
from pyro_hea.infer.phase_model import PhaseModel
from pyro_hea.io import umask_mode, write_json

__all__ = ["Run", "RunError", "prepare_run_dir", "staged_run_dir", "write_json", "load_run", "read_config",
           "MODEL_FILE", "RUN_FILES"]

MODEL_FILE = "model.pt"
#: Files every run directory has; a directory holding one of them is taken for a run.
RUN_FILES = (MODEL_FILE, "config.json", "split.csv")


class RunError(PyroHeaError):
    """A run directory that is missing, incomplete or inconsistent."""


def _check_target(path: Path, force: bool) -> None:
    if path.exists() and not path.is_dir():
        raise RunError(f"--out {str(path)!r} exists and is not a directory")
    if path.is_dir() and any(path.iterdir()):
        if not force:
            raise RunError(f"run directory {str(path)!r} is not empty; pass --force to overwrite its files")
        if not any((path / name).exists() for name in RUN_FILES):
            raise RunError(f"--out {str(path)!r} is not empty and holds no run (no {MODEL_FILE} or config.json); "
                           "pyro-hea does not replace it, even with --force")


def prepare_run_dir(path: str | os.PathLike, force: bool = False) -> Path:
    """Create ``path``; refuse an existing non-empty directory unless ``force``.

    Prefer :func:`staged_run_dir`, which also makes the run appear in one step.

    Examples
    --------
    >>> import tempfile
    >>> prepare_run_dir(tempfile.mkdtemp()).is_dir()
    True
    """
    path = Path(path)
    _check_target(path, force)
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def staged_run_dir(path: str | os.PathLike, force: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling of ``path`` to write a run into; rename it into place on success.

    Everything that can be checked before the (long) training is checked on
    entry: ``path`` is not a file, is empty or (with ``force``) an old run, and
    its parent folder is writable. On an exception the temporary folder is
    removed and ``path`` is left as it was; with ``force`` the old run is
    replaced as a whole, so no file of it (``ppc.json``, ``explain/``) is left
    beside the new model.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "run"
    >>> with staged_run_dir(target) as tmp:
    ...     _ = (tmp / "config.json").write_text("{}")
    >>> sorted(p.name for p in target.iterdir())
    ['config.json']
    """
    given = Path(path)
    path = given.absolute()
    if path.name in ("", ".", "..") or given.name in ("", ".", ".."):
        raise RunError(f"--out {str(given)!r} must name a directory to create")
    _check_target(given, force)
    created = [p for p in [path.parent, *path.parent.parents] if not p.exists()]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    except OSError as err:
        for p in created:
            _rmdir_quietly(p)
        raise RunError(f"cannot write the run directory {str(given)!r}: {err.strerror or err} "
                       f"({str(err.filename or path.parent)!r})") from None
    try:
        os.chmod(tmp, umask_mode(0o777))
        yield tmp
        old = None
        if path.exists():  # an empty folder, or an old run replaced with force
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
            os.rmdir(old)  # only its unique name is needed
            os.rename(path, old)
        os.rename(tmp, path)
        if old is not None:
            old.unlink() if old.is_symlink() else shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        for p in created:
            _rmdir_quietly(p)
        raise


def _rmdir_quietly(path: Path) -> None:
    try:
        path.rmdir()
    except OSError:
        pass


@dataclass
class Run:
    """A loaded run: the model, the dataset table, its split and the config."""

    path: Path
    model: PhaseModel
    df: pd.DataFrame
    split: pd.Series
    config: dict

    @property
    def metrics(self) -> dict:
        return _read_json(self.path / "metrics.json")


def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise RunError(f"{str(path)!r} is not a UTF-8 text file") from None
    except json.JSONDecodeError as err:
        raise RunError(f"{str(path)!r} is not valid JSON ({err.msg} at line {err.lineno}, column {err.colno})") from None


#: Keys of config.json that the other commands read, and their types.
#: load_dataset options that train records in config.json["dataset_options"].
_LOAD_OPTIONS = ("formula_column", "label_column", "strict", "conflicts")
CONFIG_KEYS = {"dataset": str, "classes": int, "seed": int, "model": dict}


def read_config(path: str | os.PathLike) -> dict:
    """Read and check a run's ``config.json``: a JSON object with the keys the commands read.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "config.json"
    >>> _ = p.write_text('{"dataset": "pei2020", "classes": 3, "seed": 0, "model": {}}')
    >>> read_config(p)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    pyro_hea.infer.run.RunError: '...config.json': "classes" must be 2 or 4, not 3
    """
    path = Path(path)
    config = _read_json(path)
    if not isinstance(config, dict):
        raise RunError(f"{str(path)!r} must hold a JSON object, not a {type(config).__name__}")
    for key, kind in CONFIG_KEYS.items():
        if key not in config:
            raise RunError(f"{str(path)!r} has no {key!r} key; was it written by pyro-hea train?")
        value = config[key]
        if not isinstance(value, kind) or isinstance(value, bool):
            kinds = {str: "a string", int: "an integer", dict: "a JSON object"}
            raise RunError(f"{str(path)!r}: {key!r} must be {kinds[kind]}, not {type(value).__name__} {value!r:.60}")
    if config["classes"] not in (2, 4):
        raise RunError(f"{str(path)!r}: \"classes\" must be 2 or 4, not {config['classes']}")
    return config


def _read_split(path: Path) -> dict:
    try:
        saved = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as err:
        raise RunError(f"{str(path)!r} cannot be read as CSV ({' '.join(str(err).split())[:200]})") from None
    if not {"formula", "split"} <= set(saved.columns):
        raise RunError(f"{str(path)!r} needs the columns 'formula' and 'split', has {list(saved.columns)[:10]}")
    bad = sorted(set(saved["split"]) - set(SPLITS))
    if bad:
        raise RunError(f"{str(path)!r} has unknown split name(s) {bad[:5]}; expected {list(SPLITS)}")
    return dict(zip(saved["formula"], saved["split"]))


def _check_model(path: Path, model: PhaseModel, config: dict, df: pd.DataFrame) -> None:
    ckpt = path / MODEL_FILE
    if model.n_classes != config["classes"]:
        raise RunError(f"{str(ckpt)!r} has {model.n_classes} classes but {str(path / 'config.json')!r} says "
                       f"{config['classes']}; the run directory is inconsistent")
    saved_model = json.loads(json.dumps(model.vae.config.to_dict()))
    differ = sorted(k for k in saved_model if k in config["model"] and config["model"][k] != saved_model[k])
    if differ:
        raise RunError(f"{str(ckpt)!r} does not match the model settings of config.json ({', '.join(differ)} "
                       "differ); the run directory is inconsistent")
    trained_on = model.metadata.get("dataset")
    if trained_on is not None and trained_on != config["dataset"]:
        raise RunError(f"{str(ckpt)!r} was trained on dataset {trained_on!r}, but config.json names "
                       f"{config['dataset']!r}")
    outside = sorted(set(element_vocabulary(df)) - set(model.vocabulary))
    if outside:
        raise RunError(
            f"{str(ckpt)!r} was not trained on dataset {config['dataset']!r}: {len(outside)} of the dataset's "
            f"elements ({', '.join(outside[:5])}{', ...' if len(outside) > 5 else ''}) are not in its vocabulary"
        )


def load_run(path: str | os.PathLike, prior_z=None, prior_y=None) -> Run:
    """Load a run directory written by ``pyro-hea train``, checking that its files belong together.

    Raises
    ------
    FileNotFoundError
        If there is no directory at ``path``.
    RunError
        If a file is missing, unreadable, or does not fit the others.
    CheckpointError
        If ``model.pt`` is corrupt.

    Examples
    --------
    >>> run = load_run("runs/pei2020")  # needs a run written by pyro-hea train  # doctest: +SKIP
    >>> run.model.predict_proba(run.df[run.split == "test"])  # doctest: +SKIP
    """
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"no run directory at {str(path)!r}")
    for name in RUN_FILES:
        if not (path / name).is_file():
            raise RunError(f"run directory {str(path)!r} has no {name}; was it written by pyro-hea train?")
    config = read_config(path / "config.json")
    lookup = _read_split(path / "split.csv")
    model = PhaseModel.load(path / MODEL_FILE, prior_z=prior_z, prior_y=prior_y)
    options = config.get("dataset_options")
    options = {k: v for k, v in options.items() if k in _LOAD_OPTIONS} if isinstance(options, dict) else {}
    df = load_dataset(config["dataset"], **options)  # as train loaded it
    _check_model(path, model, config, df)
    missing = [f for f in df["formula"] if f not in lookup]
    if missing:
        raise RunError(
            f"{len(missing)} alloys of dataset {config['dataset']!r} are not in {str(path / 'split.csv')!r}; "
            "the dataset changed since training"
        )
    split = pd.Series([lookup[f] for f in df["formula"]], index=df.index, name="split")
    return Run(path, model, df, split, config)
