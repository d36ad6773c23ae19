"""The load report: what :func:`~pyro_hea.data.datasets.load_dataset` read, kept and dropped, and why.

A loaded table carries its report in ``df.attrs["report"]``, a
:class:`LoadReport`. ``report.summary()`` is the text that
``pyro-hea data`` prints and ``report.to_dict()`` the JSON-ready counts, so
a script and the command line see the same thing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

__all__ = ["REASONS", "CONFLICT_POLICIES", "DESCRIPTOR_TOLERANCE", "RowIssue", "DescriptorCheck", "LoadReport"]

#: Why a row is dropped, in the order the report lists them.
REASONS: tuple[str, ...] = (
    "empty formula", "bad formula", "bad label", "uncovered element", "uncovered element pair", "label conflict",
)

#: What to do with a composition whose reports disagree on its label.
CONFLICT_POLICIES: tuple[str, ...] = ("unlabelled", "drop", "majority")

#: A user's descriptor column whose median relative difference from
#: pyro-hea's value is above this is flagged in the report.
DESCRIPTOR_TOLERANCE = 0.05

#: How many bad rows :meth:`LoadReport.summary` lists one by one.
LISTED_ISSUES = 10


@dataclass(frozen=True)
class RowIssue:
    """One input row that was not used, with where it is and why.

    Attributes
    ----------
    row : int or None
        Position of the row among the data rows, from 0 (the DataFrame
        index position); None when the input was not a table.
    line : int or None
        Line of a CSV file, counting the header as line 1; None for a
        DataFrame.
    reason : str
        One of :data:`REASONS`.
    value : str
        The offending cell, shortened if long.
    message : str
        What is wrong, in one line.

    Examples
    --------
    >>> RowIssue(3, 5, "bad formula", "Fe$Ni", "unexpected character '$'").where
    'line 5 (row 3)'
    """

    row: int | None
    line: int | None
    reason: str
    value: str
    message: str

    @property
    def where(self) -> str:
        if self.line is not None:
            return f"line {self.line} (row {self.row})"
        return f"row {self.row}" if self.row is not None else "record"

    def __str__(self) -> str:
        return f"{self.where}: {self.reason}: {self.message}"


@dataclass(frozen=True)
class DescriptorCheck:
    """A descriptor column the user supplied, compared with pyro-hea's own value.

    ``median_relative_difference`` is the median over rows of
    ``|user - pyro_hea| / |pyro_hea|`` (rows where pyro-hea's value is 0
    are left out) and ``median_ratio`` the median of ``user / pyro_hea``:
    about 0.01 for a fraction where pyro-hea uses percent, about 0.12 for
    an entropy in units of R.

    Examples
    --------
    >>> DescriptorCheck("VEC", "VEC", 10, 0.2, 1.2).differs
    True
    """

    descriptor: str
    column: str
    n: int
    median_relative_difference: float
    median_ratio: float

    @property
    def differs(self) -> bool:
        return not self.median_relative_difference <= DESCRIPTOR_TOLERANCE


def _count_text(counts: Mapping, limit: int = 12) -> str:
    items = list(counts.items())
    text = ", ".join(f"{k} {v:,}" for k, v in items[:limit])
    return text + (f", ... ({len(items) - limit} more)" if len(items) > limit else "")


@dataclass(eq=False)
class LoadReport(dict):
    """What a load read, kept, dropped and merged, and why.

    Read it by attribute (``report.n_read``). Once the load is done it is
    also a ``dict`` of :meth:`to_dict` (``report["n_read"]``), so that
    ``json.dumps(df.attrs)``, which ``DataFrame.to_parquet`` calls, works.

    The invariant ``n_read - n_dropped - n_duplicates_merged == n_alloys``
    holds: every data row read is either dropped (``dropped`` counts them
    by reason, ``issues`` lists them), merged into another row of the same
    composition, or kept.

    Attributes
    ----------
    source : str
        The dataset name, the file's name, or ``"dataframe"``.
    n_read : int
        Data rows (records) read; wholly empty rows are not counted but
        are in ``n_empty_rows``.
    n_alloys, n_labelled : int
        Distinct compositions kept, and those of them with a
        ``single_phase`` label.
    formula_column, label_column : str or None
        The columns used (None: no label column, all unlabelled).
    label_note : str or None
        How the labels were read, e.g. numeric classes.
    ignored_columns : list of str
        Columns not used for training (descriptor columns among them are
        compared in ``descriptor_checks``).
    dropped : dict of str to int
        Rows dropped, by reason (:data:`REASONS`).
    dropped_elements : dict of str to int
        Rows dropped for lack of descriptor data, by element (or element
        pair ``"Th-U"``).
    issues : list of RowIssue
        Every dropped row, with its row number and reason.
    zero_amounts : dict of str to int
        Rows naming an element with amount 0 (read as absent), by element.
    n_duplicates_merged : int
        Rows merged into an earlier row of the same composition.
    conflict_policy : str
        One of :data:`CONFLICT_POLICIES`.
    conflicts : list of dict
        Each composition whose reports disagree: ``formula``, ``reports``
        (``(formula or source, phase, single_phase)`` tuples), ``kind``
        (``"single vs multi"`` or ``"structure"``) and ``resolution``.
    descriptor_checks : list of DescriptorCheck
    element_counts, label_counts, phase_counts, source_counts : dict
        Kept alloys by number of elements, by label (``single``,
        ``multi``, ``unlabelled``), by phase and by source (a corpus row
        counts for each of its sources).
    elements : list of str
        The elements present, by atomic number.
    notes : list of str
        Anything else the load did that a user should know.

    Examples
    --------
    >>> import pandas as pd
    >>> from pyro_hea.data.datasets import load_dataset
    >>> df = load_dataset(pd.DataFrame({"alloy": ["Al0CoCrFeNi", "FeNi", "Fe$Ni"], "class": [1, 0, 1]}))
    >>> report = df.attrs["report"]
    >>> report.n_read, report.n_alloys, report.dropped, report.zero_amounts
    (3, 2, {'bad formula': 1}, {'Al': 1})
    >>> print(report.issues[0])
    row 2: bad formula: formula 'Fe$Ni': unexpected character '$' at position 2
    """

    source: str
    n_read: int = 0
    n_alloys: int = 0
    n_labelled: int = 0
    n_empty_rows: int = 0
    formula_column: str | None = None
    label_column: str | None = None
    label_note: str | None = None
    ignored_columns: list[str] = field(default_factory=list)
    dropped: dict[str, int] = field(default_factory=dict)
    dropped_elements: dict[str, int] = field(default_factory=dict)
    issues: list[RowIssue] = field(default_factory=list)
    zero_amounts: dict[str, int] = field(default_factory=dict)
    n_zero_amount_rows: int = 0
    n_duplicates_merged: int = 0
    conflict_policy: str = "unlabelled"
    conflicts: list[dict] = field(default_factory=list)
    descriptor_checks: list[DescriptorCheck] = field(default_factory=list)
    element_counts: dict[int, int] = field(default_factory=dict)
    label_counts: dict[str, int] = field(default_factory=dict)
    phase_counts: dict[str, int] = field(default_factory=dict)
    source_counts: dict[str, int] = field(default_factory=dict)
    elements: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def __deepcopy__(self, memo) -> "LoadReport":
        # pandas deep-copies ``attrs`` on every operation; the report is a
        # record of the load, never changed after it, so it is shared.
        return self

    def __eq__(self, other) -> bool:
        return self is other or (isinstance(other, LoadReport) and self.to_dict() == other.to_dict())

    __hash__ = None

    def __bool__(self) -> bool:
        return True

    def finish(self) -> "LoadReport":
        """Fill the ``dict`` view from the attributes; the loader calls this last."""
        self.clear()
        self.update(self.to_dict())
        return self

    @property
    def n_dropped(self) -> int:
        return sum(self.dropped.values())

    @property
    def n_conflicts(self) -> int:
        return len(self.conflicts)

    def drop(self, issue: RowIssue) -> None:
        """Record a dropped row."""
        self.issues.append(issue)
        self.dropped[issue.reason] = self.dropped.get(issue.reason, 0) + 1

    def to_dict(self) -> dict:
        """The report as plain JSON-ready data.

        Examples
        --------
        >>> LoadReport("me", n_read=2, n_alloys=2).to_dict()["n_alloys"]
        2
        """
        out = asdict(self)
        out["n_dropped"] = self.n_dropped
        out["n_conflicts"] = self.n_conflicts
        out["dropped"] = {r: self.dropped[r] for r in sorted(self.dropped, key=_reason_order)}
        out["element_counts"] = {str(k): v for k, v in self.element_counts.items()}
        out["conflicts"] = [{**c, "reports": [list(r) for r in c["reports"]]} for c in self.conflicts]
        for check, item in zip(self.descriptor_checks, out["descriptor_checks"]):
            item["differs"] = check.differs
        return out

    def summary(self) -> str:
        """The report as the lines ``pyro-hea data`` prints.

        Examples
        --------
        >>> print(LoadReport("me", n_read=2, n_alloys=2, n_labelled=2).summary().splitlines()[0])
        dataset       me (2 rows read)
        """
        lines = [f"dataset       {self.source} ({self.n_read:,} rows read)"]
        if self.formula_column is not None:
            label = repr(self.label_column) if self.label_column else "none (all alloys unlabelled)"
            text = f"columns       formula {self.formula_column!r}, label {label}"
            if self.label_note:
                text += f" ({self.label_note})"
            lines.append(text)
        if self.ignored_columns:
            lines.append(f"not used      {', '.join(self.ignored_columns)}")
        labels = self.label_counts
        lines.append(
            f"kept          {self.n_alloys:,} alloys: {labels.get('single', 0):,} single-phase, "
            f"{labels.get('multi', 0):,} multi-phase, {labels.get('unlabelled', 0):,} unlabelled"
        )
        if self.phase_counts:
            lines.append(f"phases        {_count_text(self.phase_counts)}")
        dropped = {r: self.dropped[r] for r in sorted(self.dropped, key=_reason_order)}
        lines.append(f"dropped       {self.n_dropped:,} rows" + (f": {_count_text(dropped)}" if dropped else ""))
        if self.dropped_elements:
            lines.append(f"  by element  {_count_text(self.dropped_elements)} (no descriptor data for them)")
        listed = [i for i in self.issues if i.row is not None][:LISTED_ISSUES]
        for issue in listed:
            lines.append(f"  {issue}")
        hidden = sum(1 for i in self.issues if i.row is not None) - len(listed)
        if hidden > 0:
            lines.append(f"  ... and {hidden:,} more (report.issues, or --json, lists every one)")
        if self.n_empty_rows:
            lines.append(f"empty rows    {self.n_empty_rows:,} skipped")
        if self.zero_amounts:
            lines.append(
                f"zero amounts  {self.n_zero_amount_rows:,} rows name an element with amount 0, read as absent: "
                f"{_count_text(self.zero_amounts)}"
            )
        kinds = {}
        for c in self.conflicts:
            kinds[c["kind"]] = kinds.get(c["kind"], 0) + 1
        conflict_text = f"{self.n_conflicts:,} compositions with conflicting labels"
        if self.conflicts:
            n_sm, n_st = kinds.get("single vs multi", 0), kinds.get("structure", 0)
            conflict_text += f", policy {self.conflict_policy!r}: " + {
                "unlabelled": f"{n_sm:,} single vs multi, left unlabelled (they join the unlabelled split); "
                              f"{n_st:,} on the structure only, which keep single_phase but not phase",
                "drop": f"{n_sm:,} single vs multi and {n_st:,} on the structure only, left out",
                "majority": f"{n_sm:,} single vs multi and {n_st:,} on the structure only, the majority label "
                            "kept (a tie leaves it missing)",
            }[self.conflict_policy]
        lines.append(f"duplicates    {self.n_duplicates_merged:,} rows merged; {conflict_text}")
        lines.append(f"elements      {len(self.elements)} distinct: {' '.join(self.elements)}")
        counts = ", ".join(f"{k}: {v:,}" for k, v in sorted(self.element_counts.items()))
        lines.append(f"per alloy     alloys by number of elements: {counts or 'none'}")
        if self.source_counts:
            lines.append(f"sources       {_count_text(self.source_counts)}")
        if self.descriptor_checks:
            lines.append("descriptors   your columns against pyro-hea's (median relative difference; not used "
                         "for training):")
            for check in self.descriptor_checks:
                flag = ""
                if check.differs:
                    flag = f"  <- differs (median ratio {check.median_ratio:.3g}: a unit or convention mismatch?)"
                lines.append(
                    f"  {check.column!r} vs {check.descriptor}: {100 * check.median_relative_difference:.2f}% "
                    f"over {check.n:,} rows{flag}"
                )
        for note in self.notes:
            lines.append(f"note          {note}")
        return "\n".join(lines)


def _reason_order(reason: str) -> int:
    return REASONS.index(reason) if reason in REASONS else len(REASONS)
