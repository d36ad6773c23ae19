"""Writing files safely: atomic replacement, usual permissions, strict JSON.

This is the bottom of the package (beside :mod:`pyro_hea.errors`): every
layer that writes a file goes through :func:`atomic_write`, so a crash or a
kill never leaves a half-written file in place of a good one.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path

from pyro_hea.errors import PyroHeaError

__all__ = ["atomic_write", "write_json", "write_text", "json_safe", "umask_mode"]


def umask_mode(base: int = 0o666) -> int:
    """``base`` with the process umask applied: the mode ``open()`` would give a new file.

    Examples
    --------
    >>> umask_mode() & 0o600
    384
    """
    mask = os.umask(0)
    os.umask(mask)
    return base & ~mask


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory handles
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike, write) -> None:
    """Call ``write(tmp_path)``, flush it to disk, then move it into place in one step.

    The temporary file lies beside ``path`` and is removed if ``write`` fails or
    the process is interrupted; the new file gets the usual permissions (0666
    less the umask), not the 0600 of :func:`tempfile.mkstemp`.

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
        os.chmod(tmp, umask_mode())
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def json_safe(data):
    """``data`` with every NaN or infinite float replaced by ``None`` (JSON ``null``).

    NumPy scalars and arrays become plain numbers and lists.

    Examples
    --------
    >>> json_safe({"auc": float("nan"), "n": [1.0, float("inf")]})
    {'auc': None, 'n': [1.0, None]}
    """
    if isinstance(data, dict):
        return {str(k) if not isinstance(k, str) else k: json_safe(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [json_safe(v) for v in data]
    if isinstance(data, bool) or data is None or isinstance(data, (str, int)):
        return data
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if hasattr(data, "tolist"):  # numpy scalars and arrays, torch tensors
        return json_safe(data.tolist())
    if isinstance(data, os.PathLike):
        return os.fspath(data)
    raise PyroHeaError(f"cannot write a {type(data).__name__} as JSON")


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "t.txt"
    >>> write_text(p, "x\\n"); p.read_text()
    'x\\n'
    """
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def write_json(path: str | os.PathLike, data) -> None:
    """Write ``data`` as indented, strictly valid JSON (NaN -> ``null``), atomically.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "m.json"
    >>> write_json(p, {"auc": float("nan")}); json.loads(p.read_text())
    {'auc': None}
    """
    text = json.dumps(json_safe(data), indent=2, allow_nan=False)
    write_text(path, text + "\n")
