"""The error every bad user input raises, so that callers can catch one class."""

from __future__ import annotations


class PyroHeaError(ValueError):
    """Bad input to pyro-hea: the message names the input and what is wrong.

    Examples
    --------
    >>> issubclass(PyroHeaError, ValueError)
    True
    """


def checked_indices(indices, n: int, what: str, error: type[Exception] = PyroHeaError):
    """``indices`` as an int64 array, checked to be 1-D integers in ``[0, n)``; else ``error`` in one line.

    Examples
    --------
    >>> checked_indices([2, 0], 3, "rows").tolist()
    [2, 0]
    >>> checked_indices([3], 3, "rows")
    Traceback (most recent call last):
    ...
    pyro_hea.errors.PyroHeaError: rows must be in [0, 3), got 3 to 3
    """
    import numpy as np

    idx = np.asarray(indices)
    if idx.ndim != 1 or (idx.size and not np.issubdtype(idx.dtype, np.integer)):
        raise error(f"{what} must be a 1-D array of integers, got {idx.dtype} of shape {idx.shape}")
    idx = idx.astype(np.int64)
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise error(f"{what} must be in [0, {n}), got {int(idx.min())} to {int(idx.max())}")
    return idx
