"""Run directories: what ``pyro-hea train`` writes and the other commands read.

A run directory holds

- ``model.pt``: the checkpoint (:meth:`~pyro_hea.infer.phase_model.PhaseModel.save`);
- ``config.json``: dataset, split settings, model and training settings;
- ``split.csv``: the split of every alloy, by canonical formula;
- ``metrics.json``: ``val`` and ``test`` metrics (the test split is read once);
- ``training_curve.png``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from pyro_hea.infer.phase_model import PhaseModel
from pyro_hea.infer.checkpoint import atomic_write
from pyro_hea.data.datasets import load_dataset
from pyro_hea.errors import PyroHeaError

__all__ = ["Run", "prepare_run_dir", "write_json", "load_run", "MODEL_FILE"]

MODEL_FILE = "model.pt"


def prepare_run_dir(path: str | os.PathLike, force: bool = False) -> Path:
    """Create ``path``; refuse an existing non-empty directory unless ``force``.

    Examples
    --------
    >>> import tempfile
    >>> prepare_run_dir(tempfile.mkdtemp()).is_dir()
    True
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise PyroHeaError(f"{str(path)!r} exists and is not a directory")
    if path.is_dir() and any(path.iterdir()) and not force:
        raise PyroHeaError(f"run directory {str(path)!r} is not empty; pass --force to overwrite its files")
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_json(path: str | os.PathLike, data: dict) -> None:
    """Write ``data`` as indented JSON, atomically."""
    text = json.dumps(data, indent=2, sort_keys=False, default=float)
    atomic_write(path, lambda tmp: Path(tmp).write_text(text + "\n"))


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
        return json.loads((self.path / "metrics.json").read_text())


def load_run(path: str | os.PathLike, prior_z=None, prior_y=None) -> Run:
    """Load a run directory written by ``pyro-hea train``.

    Examples
    --------
    >>> run = load_run("runs/pei2020")  # doctest: +SKIP
    >>> run.model.predict_proba(run.df[run.split == "test"])  # doctest: +SKIP
    """
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"no run directory at {str(path)!r}")
    for name in (MODEL_FILE, "config.json", "split.csv"):
        if not (path / name).is_file():
            raise PyroHeaError(f"run directory {str(path)!r} has no {name}; was it written by pyro-hea train?")
    config = json.loads((path / "config.json").read_text())
    model = PhaseModel.load(path / MODEL_FILE, prior_z=prior_z, prior_y=prior_y)
    df = load_dataset(config["dataset"])
    saved = pd.read_csv(path / "split.csv")
    lookup = dict(zip(saved["formula"], saved["split"]))
    missing = [f for f in df["formula"] if f not in lookup]
    if missing:
        raise PyroHeaError(
            f"{len(missing)} alloys of dataset {config['dataset']!r} are not in {path / 'split.csv'}; "
            "the dataset changed since training"
        )
    split = pd.Series([lookup[f] for f in df["formula"]], index=df.index, name="split")
    return Run(path, model, df, split, config)
