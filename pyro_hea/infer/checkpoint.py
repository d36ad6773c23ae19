"""Checkpoint files: written atomically, read without unpickling code.

A checkpoint is one ``torch.save`` file holding only tensors, numbers,
strings, lists and dicts, so it loads with ``torch.load(weights_only=True)``,
which refuses arbitrary Python objects.
"""

from __future__ import annotations

import os
import pickle
import tempfile
import zipfile
from pathlib import Path

import torch

from pyro_hea.errors import PyroHeaError

__all__ = ["CheckpointError", "FORMAT", "FORMAT_VERSION", "save_checkpoint", "load_checkpoint", "atomic_write"]

FORMAT = "pyro-hea-checkpoint"
FORMAT_VERSION = 1


class CheckpointError(PyroHeaError):
    """A checkpoint that is corrupt, of another format, or does not fit the model."""


def atomic_write(path: str | os.PathLike, write) -> None:
    """Call ``write(tmp_path)`` then move the file into place in one step.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.txt"
    >>> atomic_write(p, lambda tmp: pathlib.Path(tmp).write_text("hi"))
    >>> p.read_text()
    'hi'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_checkpoint(path: str | os.PathLike, payload: dict) -> None:
    """Write ``payload`` (plain data and tensors) atomically to ``path``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "m.pt"
    >>> save_checkpoint(p, {"weights": {"w": torch.zeros(2)}})
    >>> load_checkpoint(p)["weights"]["w"].tolist()
    [0.0, 0.0]
    """
    data = {"format": FORMAT, "format_version": FORMAT_VERSION, **payload}
    atomic_write(path, lambda tmp: torch.save(data, tmp))


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Read a checkpoint with ``weights_only=True``.

    Raises
    ------
    FileNotFoundError
        If there is no file at ``path``.
    CheckpointError
        If the file is corrupt, truncated, not a pyro-hea checkpoint, or of
        an unknown format version.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint file at {str(path)!r}")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, zipfile.BadZipFile, EOFError, ValueError, OSError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"checkpoint {str(path)!r} is corrupt or not a pyro-hea checkpoint ({first})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{str(path)!r} is not a pyro-hea checkpoint")
    if data.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {str(path)!r} has format version {data.get('format_version')}; this pyro-hea reads "
            f"version {FORMAT_VERSION}"
        )
    return data
