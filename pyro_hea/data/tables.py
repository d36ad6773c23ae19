"""User tables: read a file, recognize its columns, read each row's formula and label.

A table from a paper's supplement loads as it is. The formula column may be
called ``formula``, ``alloy``, ``alloys``, ``composition`` or ``name`` and
the label column ``single_phase``, ``phase``, ``class``, ``label``,
``structure`` or ``microstructure``, in any case, with spaces or hyphens for
underscores, units in brackets and a ``PROPERTY:`` prefix ignored (Borg et
al.'s ``PROPERTY: Microstructure``). Columns holding one of the 8
descriptors under a common name (``K``, ``Vm``, ``Tm``, ``VEC``, ``delta``,
``Δχ``, ``Smix``, ``Hmix``, ...) are recognized so that the load can compare
them with pyro-hea's own values; they are never used for training.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from pyro_hea.data.composition import CompositionError, _show, formula_amounts, normalize
from pyro_hea.data.report import RowIssue
from pyro_hea.errors import PyroHeaError

__all__ = [
    "FORMULA_COLUMNS",
    "LABEL_COLUMNS",
    "DESCRIPTOR_ALIASES",
    "LabelError",
    "column_key",
    "find_column",
    "descriptor_columns",
    "read_label",
    "read_table",
    "table_records",
]

#: Recognized names of the formula column (compared by :func:`column_key`).
FORMULA_COLUMNS: tuple[str, ...] = ("formula", "alloy", "alloys", "composition", "name")
#: Recognized names of the label column.
LABEL_COLUMNS: tuple[str, ...] = ("single_phase", "phase", "class", "label", "structure", "microstructure")

#: pyro-hea descriptor -> column names that hold it in published tables,
#: compared after :func:`column_key` and with ``_`` removed.
DESCRIPTOR_ALIASES: dict[str, tuple[str, ...]] = {
    "k": ("k", "bulkmodulus", "kavg"),
    "Vm": ("vm", "molarvolume"),
    "Tm": ("tm", "meltingpoint", "meltingtemperature", "tmelt"),
    "VEC": ("vec", "valenceelectronconcentration"),
    "delta": ("delta", "deltar", "sizemismatch", "atomicsizemismatch", "atomicsizedifference"),
    "delta_chi": ("deltachi", "dchi", "chidiff", "electronegativitydifference", "electronegativitymismatch"),
    "dS_mix": ("dsmix", "smix", "deltasmix", "deltas", "mixingentropy", "sconf"),
    "dH_mix": ("dhmix", "hmix", "deltahmix", "deltah", "mixingenthalpy"),
}

_GREEK = str.maketrans({"Δ": "d", "∆": "d", "δ": "delta", "χ": "chi", "Χ": "chi", "△": "d"})
_UNITS = re.compile(r"\s*[\(\[][^\)\]]*[\)\]]\s*")
_PREFIX = re.compile(r"^\s*(property|properties|target)\s*:\s*", re.IGNORECASE)


class LabelError(PyroHeaError):
    """A label cell that cannot be read as a phase."""


def column_key(name) -> str:
    """A column name as it is compared: lower case, units and prefixes dropped.

    Examples
    --------
    >>> column_key("PROPERTY: Microstructure"), column_key("Single-Phase"), column_key("ΔS_mix (J/mol K)")
    ('microstructure', 'single_phase', 'ds_mix')
    """
    text = _PREFIX.sub("", str(name).replace("\ufeff", ""))
    text = _UNITS.sub(" ", text).translate(_GREEK).strip().lower()
    return re.sub(r"[\s\-]+", "_", text)


def find_column(columns: Sequence, wanted, candidates: Sequence[str], what: str, source: str,
                required: bool) -> str | None:
    """The column to use for ``what``: ``wanted`` itself, or the one recognized one.

    ``wanted`` is a column name (matched exactly, else by
    :func:`column_key`), ``"auto"`` (the one column whose key is in
    ``candidates``) or None (no such column).

    Raises
    ------
    DatasetError
        If ``wanted`` is not a column, if ``"auto"`` finds two or more
        candidates (listing them), or none where one is ``required``.
    """
    from pyro_hea.data.datasets import DatasetError

    option = "formula_column (--formula-column)" if what == "formula" else "label_column (--label-column)"
    if wanted is None and required:
        raise DatasetError(f"{source}: {option.split()[0]} must name a column or be 'auto', not None")
    if wanted is None:
        return None
    if wanted != "auto":
        if wanted in columns:
            return wanted
        matches = [c for c in columns if column_key(c) == column_key(wanted)]
        if len(matches) == 1:
            return matches[0]
        raise DatasetError(f"{source}: no {what} column {wanted!r}; the columns are {_names(columns)}")
    matches = [c for c in columns if column_key(c) in candidates]
    if len(matches) > 1:
        raise DatasetError(
            f"{source}: {len(matches)} columns could hold the {what}s: {_names(matches)}; "
            f"choose one with {option}"
        )
    if not matches and required:
        raise DatasetError(
            f"{source}: no {what} column; expected one named {' / '.join(candidates)} (any case), "
            f"or choose one with {option}; the columns are {_names(columns)}"
        )
    return matches[0] if matches else None


def _names(columns: Iterable) -> str:
    names = [str(c) for c in columns]
    return repr(names) if len(names) <= 30 else f"{names[:30]!r} and {len(names) - 30} more"


def descriptor_columns(columns: Sequence, exclude: Iterable = ()) -> list[tuple[str, str]]:
    """``(descriptor, column)`` pairs for the columns that hold one of the 8 descriptors.

    Examples
    --------
    >>> descriptor_columns(["Alloys", "K", "Vm", "Tm", "VEC", "δ", "Δχ", "Smix", "Hmix", "Class"])[-3:]
    [('delta_chi', 'Δχ'), ('dS_mix', 'Smix'), ('dH_mix', 'Hmix')]
    """
    skip = set(exclude)
    lookup = {alias: name for name, aliases in DESCRIPTOR_ALIASES.items() for alias in aliases}
    out = []
    for column in columns:
        if column in skip:
            continue
        name = lookup.get(column_key(column).replace("_", ""))
        if name is not None:
            out.append((name, column))
    return out


_EMPTY_LABELS = {"", "nan", "na", "n/a", "none", "null", "unknown", "not specified", "?", "-", "<na>"}
_SINGLE_WORDS = {"1", "1.0", "true", "yes", "y", "single", "single-phase", "single_phase", "single phase",
                 "ss", "solid solution", "singlephase", "sp"}
_MULTI_WORDS = {"0", "0.0", "false", "no", "n", "multi", "multi-phase", "multi_phase", "multi phase",
                "multiphase", "mp", "other", "others", "im", "am", "intermetallic", "amorphous", "dual phase",
                "dual-phase"}
_STRUCTURES = {"bcc": "BCC", "fcc": "FCC", "hcp": "HCP", "a2": "BCC", "a1": "FCC", "a3": "HCP"}
# phases that are not a disordered solid solution: any of them makes the alloy multi-phase
_NOT_SOLID_SOLUTION = {"b2", "l12", "l1_2", "l21", "laves", "sigma", "σ", "mu", "im", "am", "sec", "sec.",
                       "c14", "c15", "c36", "d019", "intermetallic", "amorphous", "other", "bcc1", "bcc2",
                       "fcc1", "fcc2", "ordered bcc", "ordered fcc", "eta", "chi", "heusler"}
_SPLIT = re.compile(r"\s*(?:\+|&|/|,|;|\band\b)\s*")


def read_label(value) -> tuple[str | None, int | None]:
    """A label cell as ``(phase, single_phase)``; empty means unlabelled ``(None, None)``.

    Read: numbers ``1`` (single-phase) and ``0`` (multi-phase);
    ``true``/``false``; words such as ``single``, ``multi``, ``SS``,
    ``other``, ``IM``, ``AM``; crystal structures ``BCC``, ``FCC``, ``HCP``
    (single-phase, and the phase is set); and microstructures with several
    phases joined by ``+`` (``FCC+BCC``, ``BCC+Laves``, ``BCC+Sec.``),
    which are multi-phase, as is any one ordered or amorphous phase
    (``B2``, ``L12``, ``Laves``, ``sigma``). Case does not matter.

    Raises
    ------
    LabelError
        For anything else, e.g. ``2``, ``maybe`` or ``hcp martensite``.

    Examples
    --------
    >>> read_label("FCC"), read_label(1), read_label("BCC+Laves"), read_label("")
    (('FCC', 1), (None, 1), ('multi', 0), (None, None))

    A multi-phase label sets the phase too (``multi`` is one of the K = 4
    classes); a single-phase one without a structure leaves it unknown.
    """
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return None, None
    if isinstance(value, (bool, np.bool_)):
        return (None, 1) if value else ("multi", 0)
    if isinstance(value, (int, float, np.integer, np.floating)):
        if value == 1:
            return None, 1
        if value == 0:
            return "multi", 0
        raise LabelError(f"label {value!r} is not understood: a number must be 1 (single-phase) or 0 (multi-phase)")
    text = " ".join(str(value).split())
    low = text.lower()
    if low in _EMPTY_LABELS:
        return None, None
    if low in _STRUCTURES:
        return _STRUCTURES[low], 1
    if low in _SINGLE_WORDS:
        return None, 1
    if low in _MULTI_WORDS:
        return "multi", 0
    tokens = [t for t in _SPLIT.split(low) if t]
    known = [t in _STRUCTURES or t in _NOT_SOLID_SOLUTION for t in tokens]
    if len(tokens) >= 2 and all(known):
        return "multi", 0
    if len(tokens) == 1 and tokens[0] in _NOT_SOLID_SOLUTION:
        return "multi", 0
    raise LabelError(
        f"label {_show(text, 40)} is not understood; use 1/0, single/multi, BCC/FCC/HCP, or a "
        "microstructure such as FCC+BCC, and leave it empty for an unlabelled alloy"
    )


def read_table(path: Path) -> tuple[pd.DataFrame, list[str]]:
    """Read a CSV (comma, semicolon or tab separated), TSV or Excel file as text cells.

    Every cell is read as a string and only empty cells are missing, so
    that a formula such as ``Na`` or a label ``NA`` is not turned into NaN
    by pandas. Blank lines are kept (as empty rows) so that line numbers
    in the report match the file. Returns the table and notes.

    Raises
    ------
    DatasetError
        If the file cannot be read.
    """
    from pyro_hea.data.datasets import DatasetError

    notes: list[str] = []
    suffix = path.suffix.lower()
    if suffix in (".xlsx", ".xlsm", ".xls", ".ods"):
        try:
            table = pd.read_excel(path, dtype=str, keep_default_na=False, na_values=[""])
        except ImportError as err:
            raise DatasetError(
                f"reading {str(path)!r} needs an Excel reader ({err}); pip install openpyxl, "
                "or save the sheet as CSV"
            ) from None
        except Exception as err:  # the readers raise many kinds  # noqa: BLE001
            raise DatasetError(f"cannot read {str(path)!r} as a spreadsheet: {err}") from None
        return table, notes
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")  # every byte decodes; Excel's Windows-1252 agrees on the letters
        notes.append("the file is not UTF-8; it was read as Latin-1")
    first = next((line for line in text.splitlines() if line.strip()), "")
    if suffix in (".tsv", ".tab"):
        sep = "\t"
    else:
        sep = max((",", ";", "\t"), key=first.count) if first else ","
        if sep != ",":
            notes.append(f"columns separated by {'tabs' if sep == chr(9) else repr(sep)}")
    try:
        import io

        table = pd.read_csv(io.StringIO(text), sep=sep, dtype=str, keep_default_na=False, na_values=[""],
                            skip_blank_lines=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise DatasetError(f"cannot read {str(path)!r} as CSV: {' '.join(str(err).split())}") from None
    return table, notes


def _empty(value) -> bool:
    if value is None or value is pd.NA:
        return True
    if isinstance(value, float) and np.isnan(value):
        return True
    return isinstance(value, str) and not value.strip()


def table_records(table: pd.DataFrame, formula_column: str, label_column: str | None, source: str,
                  descriptors: Sequence[tuple[str, str]] = (), first_line: int | None = None):
    """Yield a record for each usable row and a :class:`RowIssue` for each bad one.

    A record has ``formula_raw``, ``composition``, ``phase``,
    ``single_phase``, ``source``, ``row``, ``line``, ``zeros`` (elements
    written with amount 0) and ``user`` (the user's descriptor values, by
    column).
    A wholly empty row yields None. ``first_line`` is the file line of
    data row 0 (2 for a CSV with a header), or None for a DataFrame.
    """
    formulas = table[formula_column].tolist()
    labels = table[label_column].tolist() if label_column is not None else [None] * len(table)
    user = {column: pd.to_numeric(table[column], errors="coerce").to_numpy(dtype=float)
            for _, column in descriptors}
    empty_rows = table.isna().all(axis=1).to_numpy() if len(table.columns) else np.ones(len(table), bool)
    for row, (formula, label) in enumerate(zip(formulas, labels)):
        line = None if first_line is None else first_line + row
        if empty_rows[row]:
            yield None
            continue
        if _empty(formula):
            yield RowIssue(row, line, "empty formula", "", f"the {formula_column!r} cell is empty")
            continue
        try:
            amounts = formula_amounts(formula)
            composition = normalize(amounts, name=formula)
        except CompositionError as err:
            yield RowIssue(row, line, "bad formula", _show(str(formula))[1:-1] if isinstance(formula, str)
                           else repr(formula), str(err))
            continue
        try:
            phase, single = read_label(label)
        except LabelError as err:
            yield RowIssue(row, line, "bad label", " ".join(str(label).split())[:60],
                           f"{str(err)} (column {label_column!r})")
            continue
        yield {
            "formula_raw": formula,
            "composition": composition,
            "phase": phase,
            "single_phase": single,
            "source": source,
            "row": row,
            "line": line,
            "zeros": [el for el, v in amounts.items() if v == 0 and el not in composition],
            "user": {column: user[column][row] for _, column in descriptors},
        }
