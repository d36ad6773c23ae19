"""Train / validation / test splits and the descriptor scaler.

The paper protocol (Zeng, Khan & Post 2024) splits the labelled alloys so:

1. 10% of them are the **test** split;
2. 30% of the rest lose their labels and become the unlabelled pool;
3. 20% of that pool is held out, with labels, as the **validation** split.

The remaining labelled alloys are the **labelled** training split, and the
rest of the pool the **unlabelled** training split. Alloys without a label
in the source always go to the unlabelled split. Rows are distinct
compositions (the loaders deduplicate), so the parts are disjoint by
composition.
"""

from __future__ import annotations

from pyro_hea.errors import PyroHeaError

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

__all__ = ["SPLITS", "SplitError", "paper_split", "DescriptorScaler"]

#: Split names, in the order they are reported.
SPLITS: tuple[str, ...] = ("labelled", "unlabelled", "val", "test")


class SplitError(PyroHeaError):
    """Split settings that cannot be met."""


def _check_fraction(name: str, value: float, allow_one: bool = False) -> None:
    upper_ok = value <= 1.0 if allow_one else value < 1.0
    if not (np.isfinite(value) and value > 0.0 and upper_ok):
        bound = "(0, 1]" if allow_one else "(0, 1)"
        raise SplitError(f"{name} must be in {bound}, got {value!r}")


def paper_split(
    df: pd.DataFrame,
    seed: int = 42,
    test_size: float = 0.1,
    unlabelled_size: float = 0.3,
    val_size: float = 0.2,
    label_fraction: float = 1.0,
    stratify: bool = False,
    label: str = "single_phase",
) -> pd.Series:
    """Assign each alloy to ``labelled``, ``unlabelled``, ``val`` or ``test``.

    Parameters
    ----------
    df : DataFrame
        A table from :func:`~pyro_hea.data.datasets.load_dataset`.
    seed : int
        Seed of the random split.
    test_size, unlabelled_size, val_size : float
        The protocol's fractions (see the module docstring).
    label_fraction : float
        Fraction of the labelled training split whose labels are kept,
        stratified by label; the others join the unlabelled split. For
        data-efficiency studies.
    stratify : bool
        Stratify the test, pool and validation draws by label.
    label : str
        Column holding the label (``single_phase`` or ``phase``).

    Returns
    -------
    pandas.Series
        Split names indexed like ``df``.

    Examples
    --------
    >>> from pyro_hea.data.datasets import load_dataset
    >>> split = paper_split(load_dataset("pei2020"), seed=0)
    >>> split.value_counts().to_dict()
    {'labelled': 664, 'unlabelled': 228, 'test': 106, 'val': 57}
    """
    for name, value in (("test_size", test_size), ("unlabelled_size", unlabelled_size), ("val_size", val_size)):
        _check_fraction(name, value)
    _check_fraction("label_fraction", label_fraction, allow_one=True)
    if label not in df.columns:
        raise SplitError(f"no label column {label!r} in the table")
    labels = df[label]
    known = np.flatnonzero(labels.notna().to_numpy())
    if len(known) < 10:
        raise SplitError(f"only {len(known)} labelled alloys; the protocol needs at least 10{_why(df, label)}")
    y = labels.iloc[known].astype(str).to_numpy()

    def draw(idx: np.ndarray, size: float, salt: int, strat: bool) -> tuple[np.ndarray, np.ndarray]:
        target = y[np.searchsorted(known, idx)] if strat else None
        if strat and np.min(np.unique(target, return_counts=True)[1]) < 2:
            target = None  # a class too rare to stratify on
        return train_test_split(idx, test_size=size, random_state=seed + salt, stratify=target)

    rest, test = draw(known, test_size, 0, stratify)
    labelled, pool = draw(rest, unlabelled_size, 1, stratify)
    unlabelled, val = draw(pool, val_size, 2, stratify)
    if label_fraction < 1.0:
        target = y[np.searchsorted(known, labelled)]
        classes, counts = np.unique(target, return_counts=True)
        n_keep = max(2, len(classes), int(round(label_fraction * len(labelled))))
        if n_keep < len(labelled):
            if np.min(counts) < 2 or len(labelled) - n_keep < len(classes):
                target = None  # a class too rare, or too few left over, to stratify on
            keep, hidden = train_test_split(
                labelled, train_size=n_keep, random_state=seed + 3, stratify=target,
            )
            labelled, unlabelled = keep, np.concatenate([unlabelled, hidden])
    out = np.full(len(df), "unlabelled", dtype=object)
    out[labelled] = "labelled"
    out[val] = "val"
    out[test] = "test"
    return pd.Series(out, index=df.index, name="split")


def _why(df: pd.DataFrame, label: str) -> str:
    """Where the labels went, from the load report: `` (source: ...)`` or nothing."""
    report = df.attrs.get("report")
    if report is None or not hasattr(report, "dropped"):
        return ""
    labels = df[label] if label in df.columns else pd.Series(dtype=float)
    conflicts = int((df["label_conflict"] & labels.isna()).sum()) if "label_conflict" in df.columns else 0
    parts = [f"{len(df):,} alloys kept"]
    if conflicts:
        parts.append(f"{conflicts:,} with conflicting labels left unlabelled")
    unlabelled = int(labels.isna().sum()) - conflicts
    if unlabelled:
        parts.append(f"{unlabelled:,} without a label" + ("" if report.label_column or report.formula_column is None
                                                         else " (no label column was found)"))
    text = ", ".join(parts)
    if report.n_dropped:
        reasons = ", ".join(f"{n:,} {r}" for r, n in report.dropped.items())
        elements = ", ".join(f"{e} {n:,}" for e, n in list(report.dropped_elements.items())[:8])
        text += f"; {report.n_dropped:,} rows dropped on loading: {reasons}" + (f" ({elements})" if elements else "")
    return f" ({report.source}: {text})"


@dataclass
class DescriptorScaler:
    """Standardize descriptors with a mean and scale fit on training rows only.

    Examples
    --------
    >>> scaler = DescriptorScaler.fit(np.array([[1.0, 10.0], [3.0, 30.0]]))
    >>> scaler.transform(np.array([[2.0, 20.0]])).tolist()
    [[0.0, 0.0]]
    """

    mean: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, features: np.ndarray) -> "DescriptorScaler":
        features = np.asarray(features, dtype=float)
        if features.ndim != 2 or len(features) < 2:
            raise SplitError(f"the scaler needs at least 2 rows of features, got shape {features.shape}")
        if not np.all(np.isfinite(features)):
            raise SplitError("the descriptors to fit the scaler on contain NaN or infinite values")
        scale = features.std(axis=0)
        return cls(mean=features.mean(axis=0), scale=np.where(scale > 0, scale, 1.0))

    def transform(self, features: np.ndarray) -> np.ndarray:
        features = np.asarray(features, dtype=float)
        if features.shape[-1] != len(self.mean):
            raise SplitError(f"expected {len(self.mean)} descriptors, got {features.shape[-1]}")
        if not np.all(np.isfinite(features)):
            raise SplitError("the descriptors to scale contain NaN or infinite values")
        return (features - self.mean) / self.scale

    def inverse_transform(self, scaled: np.ndarray) -> np.ndarray:
        return np.asarray(scaled) * self.scale + self.mean
