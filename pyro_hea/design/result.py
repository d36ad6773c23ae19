"""What a design workflow returns: :class:`DesignResult`, its summary text, and the errors.

Examples
--------
>>> print(format_summary({"mode": "screen", "target": "single-phase", "generated": 1, "unique": 1,
...     "candidates": 1, "scored": 1, "valid": 1, "novel": 1, "judged_target": 1.0,
...     "judge_agreement": 1.0, "seconds": 0.5, "candidates_per_second": 2.0}).splitlines()[0])
screen, target single-phase
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from pyro_hea.errors import PyroHeaError
from pyro_hea.io import atomic_write

__all__ = ["DesignError", "DesignResult", "format_summary", "one_thread"]


def one_thread(method):
    """Run a workflow with one torch thread.

    The networks are small: on a small shared CPU, intra-op threads that
    wait on each other cost more than they bring (decoding 10,000 points is
    about 4 times faster on one thread here).
    """

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return method(*args, **kwargs)
        finally:
            torch.set_num_threads(threads)

    return wrapper


class DesignError(PyroHeaError):
    """Bad input to a design workflow."""


@dataclass
class DesignResult:
    """What a design workflow returns.

    Attributes
    ----------
    mode : str
        ``screen``, ``latent``, ``invert`` or ``interpolate``.
    table : DataFrame
        One row per candidate (or per step of a trajectory); see
        :meth:`Designer.score` for the columns.
    compositions : ndarray, shape (rows, elements)
        At.% of each row over ``vocabulary`` (NaN rows for unscored alloys
        outside it).
    vocabulary : tuple of str
        Elements of the columns of ``compositions``.
    summary : dict
        Counts and rates (see :func:`format_summary`).
    contrast : ndarray or None
        Latent mode: the compositions decoded at the same z with the contrast class.
    """

    mode: str
    table: pd.DataFrame
    compositions: np.ndarray
    vocabulary: tuple[str, ...]
    summary: dict = field(default_factory=dict)
    contrast: np.ndarray | None = None

    def composition_frame(self, contrast: bool = False) -> pd.DataFrame:
        """At.% by element (only elements that occur), one row per table row.

        Examples
        --------
        >>> result.composition_frame().columns.tolist()  # needs a design result from a trained model  # doctest: +SKIP
        ['Al', 'Cr', 'Fe', 'Ni']
        """
        x = self.contrast if contrast else self.compositions
        if x is None:
            raise DesignError(f"{self.mode} results have no contrast compositions")
        used = np.flatnonzero(np.nan_to_num(x).sum(axis=0) > 0)
        return pd.DataFrame(x[:, used], columns=[self.vocabulary[i] for i in used], index=self.table.index)

    def to_csv(self, path: str | os.PathLike) -> None:
        """Write the table as CSV, atomically."""
        atomic_write(path, lambda tmp: self.table.to_csv(tmp, index=False))


def format_summary(summary: dict) -> str:
    """The summary of a design run as a few readable lines.

    Examples
    --------
    >>> print(format_summary({"mode": "screen", "target": "single-phase", "generated": 2, "unique": 2,
    ...     "candidates": 2, "scored": 2, "valid": 2, "novel": 1, "judged_target": 1.0,
    ...     "judge_agreement": 0.5, "seconds": 0.01, "candidates_per_second": 200.0}))
    screen, target single-phase
    generated 2, unique 2, candidates 2, scored 2
    candidates: valid 2 (100.0%), novel 1 (50.0%), judged single-phase 100.0%, judge agreement 50.0%
    0.01 s, 200 candidates per second (generated)
    """
    n = max(summary["candidates"], 1)
    head = summary["mode"] + (f" ({summary['source']})" if "source" in summary else "")
    accepted = ""
    if "accept_rate" in summary:
        rule = f"p_model >= {summary['accept']:g}, " if summary.get("accept") is not None else ""
        accepted = f" (accepted: {rule}valid, novel, in domain; {_percent(summary['accept_rate'])} of unique)"
    lines = [
        f"{head}, target {summary['target']}",
        (f"generated {summary['generated']}, unique {summary['unique']}, "
         f"candidates {summary['candidates']}{accepted}, scored {summary['scored']}"),
        (f"candidates: valid {summary['valid']} ({100 * summary['valid'] / n:.1f}%), "
         f"novel {summary['novel']} ({100 * summary['novel'] / n:.1f}%), "
         f"judged {summary['target']} {_percent(summary['judged_target'])}, "
         f"judge agreement {_percent(summary['judge_agreement'])}"),
    ]
    if "pool" in summary:
        lines.insert(1, f"z drawn at {summary['pool']}"
                     + (f", spread x{summary['spread']:g}" if "spread" in summary else ""))
    if "all_decodes" in summary:
        a = summary["all_decodes"]
        lines.append(
            f"all {a['rows']} unique decodes: model says {summary['target']} {_percent(a['model_target'])}, "
            f"judged {summary['target']} {_percent(a['judged_target'])}, "
            f"judge agreement {_percent(a['judge_agreement'])}"
        )
    if "rejected" in summary:
        lines.append("rejected: " + ", ".join(f"{k} {v}" for k, v in summary["rejected"].items())
                     + (f" (in {summary['rounds']} rounds of draws)" if summary.get("rounds", 1) > 1 else ""))
    if "contrast" in summary:
        c = summary["contrast"]
        lines.append(
            f"same z, y={summary['target']} vs y={c['class']}: mean p_model {c['p_model_target']:.3f} vs "
            f"{c['p_model_contrast']:.3f}, mean p_judge {c['p_judge_target']:.3f} vs {c['p_judge_contrast']:.3f}, "
            f"compositions {c['mean_distance']:.1f} at.% apart"
        )
        if "judge_prefers_target" in c:
            lines.append(f"same z: the judge prefers the y={summary['target']} decode at "
                         f"{_percent(c['judge_prefers_target'])} of {c.get('compared', 'the')} points")
        if "contrast_valid" in c:
            lines.append(f"same z: the y={c['class']} decode meets the composition rules at "
                         f"{_percent(c['contrast_valid'])} of them; where both do, the judge prefers "
                         f"y={summary['target']} at {_percent(c['judge_prefers_target_valid'])}")
    if "stopped" in summary:
        lines.append(f"stopped: {summary['stopped']} after {summary['steps']} step(s)")
    if "end" in summary:
        e = summary["end"]
        lines.append(f"end: {e['formula']} ({'meets the rules' if e['valid'] else 'does not meet the rules'}), "
                     f"p_model {e['p_model']:.3f}, p_judge {e['p_judge']:.3f}")
    lines.append(f"{summary['seconds']:.2f} s, "
                 f"{summary['candidates_per_second']:,.0f} candidates per second (generated)")
    return "\n".join(lines)


def _percent(value) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.1f}%"

