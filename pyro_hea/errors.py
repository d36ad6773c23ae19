"""The error every bad user input raises, so that callers can catch one class."""

from __future__ import annotations


class PyroHeaError(ValueError):
    """Bad input to pyro-hea: the message names the input and what is wrong.

    Examples
    --------
    >>> issubclass(PyroHeaError, ValueError)
    True
    """
