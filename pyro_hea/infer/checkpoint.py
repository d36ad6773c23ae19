"""Checkpoint files: safetensors + JSON, written atomically, read without unpickling.

A checkpoint is one `safetensors <https://huggingface.co/docs/safetensors>`_
file: the tensors are stored flat, and the structure around them (dicts,
lists, numbers, strings) is one JSON document in the file's metadata. Nothing
is ever unpickled on load, so a checkpoint cannot run code; every float tensor
is checked to be finite.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import torch

from pyro_hea.errors import PyroHeaError
from pyro_hea.io import atomic_write

__all__ = ["CheckpointError", "FORMAT", "FORMAT_VERSION", "save_checkpoint", "load_checkpoint",
           "write_checkpoint_file", "read_checkpoint_file"]

FORMAT = "pyro-hea-checkpoint"
FORMAT_VERSION = 2
_TREE_KEY = "pyro_hea_tree"


class CheckpointError(PyroHeaError):
    """A checkpoint that is corrupt, of another format, or does not fit the model."""


# ------------------------------------------------------------------ encoding
def _encode(obj, tensors: dict):
    """A JSON-able tree for ``obj``; tensors go to ``tensors`` under a generated key."""
    if isinstance(obj, torch.Tensor):
        key = f"t{len(tensors)}"
        tensors[key] = obj.detach().cpu().clone().contiguous()
        return {"__tensor__": key}
    if isinstance(obj, dict):
        if all(isinstance(k, str) for k in obj):
            return {"__dict__": {k: _encode(v, tensors) for k, v in obj.items()}}
        return {"__items__": [[_encode(k, tensors), _encode(v, tensors)] for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        return [_encode(v, tensors) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return {"__float__": repr(obj)}
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise CheckpointError(f"a checkpoint cannot hold a {type(obj).__name__}")


def _decode(tree, tensors: dict):
    if isinstance(tree, list):
        return [_decode(v, tensors) for v in tree]
    if isinstance(tree, dict):
        if "__tensor__" in tree:
            return tensors[tree["__tensor__"]]
        if "__dict__" in tree:
            return {k: _decode(v, tensors) for k, v in tree["__dict__"].items()}
        if "__items__" in tree:
            return {_decode(k, tensors): _decode(v, tensors) for k, v in tree["__items__"]}
        if "__float__" in tree:
            return float(tree["__float__"])
        raise ValueError(f"unknown node {sorted(tree)}")
    return tree


def write_checkpoint_file(path: str | os.PathLike, data: dict) -> None:
    """Write ``data`` as it is (no format header added), atomically. See :func:`save_checkpoint`."""
    from safetensors.torch import save_file

    tensors: dict = {}
    tree = json.dumps(_encode(data, tensors), allow_nan=False)
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata={_TREE_KEY: tree}))


def read_checkpoint_file(path: str | os.PathLike):
    """Read what :func:`write_checkpoint_file` wrote, checking only that it is a readable file.

    Raises
    ------
    CheckpointError
        If the file is not a safetensors file with a pyro-hea tree in it.
    """
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = handle.metadata() or {}
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        hint = "; it is a torch.save file, which pyro-hea does not unpickle" if _is_pickle(path) else ""
        raise CheckpointError(
            f"checkpoint {str(path)!r} is corrupt or not a pyro-hea checkpoint ({first[:200]}){hint}"
        ) from None
    if _TREE_KEY not in meta:
        raise CheckpointError(f"{str(path)!r} is not a pyro-hea checkpoint (a safetensors file without its metadata)")
    try:
        return _decode(json.loads(meta[_TREE_KEY]), tensors)
    except (ValueError, KeyError, TypeError) as err:
        raise CheckpointError(f"checkpoint {str(path)!r} is corrupt: its metadata cannot be read ({err})") from None


def _is_pickle(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            head = handle.read(4)
    except OSError:
        return False
    return head[:2] == b"PK" or head[:1] == b"\x80"


def _non_finite(tree, where: str = "") -> str | None:
    if isinstance(tree, torch.Tensor):
        if tree.is_floating_point() and tree.numel() and not bool(torch.isfinite(tree).all()):
            return where or "a tensor"
        return None
    items = tree.items() if isinstance(tree, dict) else enumerate(tree) if isinstance(tree, list) else ()
    for key, value in items:
        found = _non_finite(value, f"{where}.{key}" if where else str(key))
        if found:
            return found
    return None


# ------------------------------------------------------------------- public
def save_checkpoint(path: str | os.PathLike, payload: dict) -> None:
    """Write ``payload`` (dicts, lists, numbers, strings and tensors) atomically to ``path``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "m.pt"
    >>> save_checkpoint(p, {"weights": {"w": torch.zeros(2)}, "state": {0: {"step": 3}}})
    >>> data = load_checkpoint(p)
    >>> data["weights"]["w"].tolist(), data["state"][0]["step"]
    ([0.0, 0.0], 3)
    """
    write_checkpoint_file(path, {"format": FORMAT, "format_version": FORMAT_VERSION, **payload})


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Read a checkpoint written by :func:`save_checkpoint`; nothing is unpickled.

    Raises
    ------
    FileNotFoundError
        If there is no file at ``path``.
    CheckpointError
        If the file is corrupt, truncated, not a pyro-hea checkpoint, of an
        unknown format version, or holds NaN or infinite values in a tensor.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint file at {str(path)!r}")
    data = read_checkpoint_file(path)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{str(path)!r} is not a pyro-hea checkpoint")
    if data.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {str(path)!r} has format version {data.get('format_version')}; this pyro-hea reads "
            f"version {FORMAT_VERSION}"
        )
    bad = _non_finite(data)
    if bad:
        raise CheckpointError(f"checkpoint {str(path)!r} holds NaN or infinite values in {bad}; it cannot be used")
    return data
