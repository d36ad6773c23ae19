"""Range checks of command-line options: each refuses a bad value in one line naming the option.

argparse parses the type (``type=int``, ``type=float``); these checks run
first thing in a command and raise :class:`~pyro_hea.errors.PyroHeaError`,
which the CLI prints as ``pyro-hea train: error: --epochs must be ...``
with exit status 2. Nothing here imports more than the standard library.
"""

from __future__ import annotations

import json
import math

from pyro_hea.errors import PyroHeaError

__all__ = ["check_int", "check_number", "check_seed", "parse_settings", "variant_name", "MAX_SEED"]

#: Seeds are 32-bit, as NumPy's and torch's generators take them.
MAX_SEED = 2**32 - 1


def _option(name: str) -> str:
    return "--" + name.replace("_", "-")


def _show(value) -> str:
    text = str(value)
    return text if len(text) <= 40 else f"{text[:12]}...{text[-6:]} ({len(text)} digits)"


def _bounds(low, high, low_open: bool = False) -> str:
    if low is not None and high is not None:
        return f" in {'(' if low_open else '['}{low:g}, {high:g}]" if isinstance(low, float) or isinstance(
            high, float) else f" from {low} to {high}"
    if low is not None:
        return f" {'above' if low_open else 'of at least'} {low:g}"
    return f" of at most {high:g}" if high is not None else ""


def check_int(args, name: str, low: int | None = 1, high: int | None = None) -> None:
    """Refuse ``args.<name>`` outside ``[low, high]`` (``None`` values are left alone).

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> check_int(SimpleNamespace(epochs=-1), "epochs", 1, 10**7)
    Traceback (most recent call last):
    pyro_hea.errors.PyroHeaError: --epochs must be an integer from 1 to 10000000, got -1
    """
    value = getattr(args, name)
    if value is None:
        return
    if (low is not None and value < low) or (high is not None and value > high):
        raise PyroHeaError(f"{_option(name)} must be an integer{_bounds(low, high)}, got {_show(value)}")


def check_number(args, name: str, low: float | None = None, high: float | None = None,
                 low_open: bool = False) -> None:
    """Refuse a NaN or infinite ``args.<name>``, or one outside ``[low, high]`` (``(low, high]`` if ``low_open``).

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> check_number(SimpleNamespace(alpha=float("nan")), "alpha", 0.0)
    Traceback (most recent call last):
    pyro_hea.errors.PyroHeaError: --alpha must be a finite number of at least 0, got nan
    """
    value = getattr(args, name)
    if value is None:
        return
    bad = not math.isfinite(value)
    bad = bad or (low is not None and (value <= low if low_open else value < low))
    bad = bad or (high is not None and value > high)
    if bad:
        raise PyroHeaError(f"{_option(name)} must be a finite number{_bounds(low, high, low_open)}, got {value}")


def check_seed(args, name: str = "seed") -> None:
    """Seeds are integers from 0 to 2**32 - 1.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> check_seed(SimpleNamespace(seed=2**32))
    Traceback (most recent call last):
    pyro_hea.errors.PyroHeaError: --seed must be an integer from 0 to 4294967295, got 4294967296
    """
    check_int(args, name, 0, MAX_SEED)


def parse_settings(texts, option: str = "--set") -> dict:
    """``KEY=VALUE`` strings as a dict of settings; values are read as JSON, else kept as strings.

    Examples
    --------
    >>> parse_settings(["descriptor_model=gaussian", "class_position=false", "alpha=10"])
    {'descriptor_model': 'gaussian', 'class_position': False, 'alpha': 10}
    """
    settings = {}
    for text in texts:
        key, sep, value = str(text).partition("=")
        if not sep or not key:
            raise PyroHeaError(f"{option} wants KEY=VALUE, got {text!r}")
        try:
            settings[key] = json.loads(value)
        except ValueError:
            settings[key] = value
    return settings


def variant_name(settings: dict, pool: str = "none") -> str:
    """A variant's name in the benchmarks' tables: ``"default"``, or its settings as ``key=value`` pairs.

    ``pool`` names an unlabelled pool other than ``"none"`` as one more pair.

    Examples
    --------
    >>> variant_name({}), variant_name({"classifier_members": 5, "alpha": 10}), variant_name({}, "corpus")
    ('default', 'alpha=10, classifier_members=5', 'pool=corpus')
    """
    parts = [f"{k}={v}" for k, v in sorted(settings.items())] + ([] if pool == "none" else [f"pool={pool}"])
    return ", ".join(parts) or "default"
