"""Candidate pools: compositions without labels that join the unlabelled training split.

A :class:`CandidatePool` holds many alloys, up to :data:`MAX_CANDIDATES`,
compactly, and builds their at.% rows on demand (:meth:`CandidatePool.take`),
so a pool of 10^6 candidates never exists as one dense
``(candidates, elements)`` array. It comes

- from a file (:meth:`CandidatePool.from_file`): a CSV, TSV or Excel table
  with a formula column, read as :func:`~pyro_hea.data.datasets.load_dataset`
  reads one; a label column is ignored. Stored as compressed sparse rows:
  an element index (int16) and an at.% amount (float32) per element of
  each alloy, and a row offset (int64) per alloy;
- from a generated design space (:meth:`CandidatePool.from_space`): a
  :class:`~pyro_hea.design.distributed.SpaceSpec`, whose rows are built by
  index; stored as the spec and the sorted rows left out.

A candidate is dropped, and counted in :meth:`CandidatePool.summary`, when
its row is malformed (by file line), it has an element outside the model's
vocabulary, it has an element pair without descriptor data, it equals a
composition of the dataset (counted per split: ``exclude`` names them) or
it repeats an earlier candidate. Two compositions are equal when their at.%
amounts agree after rounding to 0.01 at.%, the resolution at which
:func:`~pyro_hea.data.datasets.load_dataset` merges duplicates, so
``Al0.5CoCrFeNi`` and ``Al11.11Co22.22Cr22.22Fe22.22Ni22.22`` are one alloy.

Examples
--------
>>> pool = CandidatePool.from_compositions(["FeNi", "NiFe", "CoCrFeNi", "Fe2Ni2"], ["Co", "Cr", "Fe", "Ni"],
...                                        exclude={"test": ["CoCrFeNi"]})
>>> len(pool), pool.take(np.array([0])).tolist()
(1, [[0.0, 0.0, 50.0, 50.0]])
>>> s = pool.summary()
>>> s["read"], s["kept"], s["duplicate"], s["in_dataset"]
(4, 1, 2, {'test': 1})
"""

from __future__ import annotations

import hashlib
import os
from array import array
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from pyro_hea.data._pool_match import _csr_percent, _exclusion_rows, _match, _without_descriptor_data
from pyro_hea.data.composition import CompositionError, as_composition
from pyro_hea.data.report import RowIssue
from pyro_hea.errors import PyroHeaError, checked_indices

__all__ = ["MAX_CANDIDATES", "CandidateError", "CandidatePool", "split_exclusions"]

#: The most candidates a pool holds (a file's rows or a generated space's alloys).
MAX_CANDIDATES = 10_000_000

#: How many malformed rows :meth:`CandidatePool.summary` lists one by one.
LISTED_ROWS = 10



class CandidateError(PyroHeaError):
    """A candidate file or space that cannot become a candidate pool."""


def split_exclusions(df, split) -> dict[str, list[dict]]:
    """The compositions of each split, for ``exclude=``: ``{"labelled": [...], "unlabelled": ..., "val": ..., "test": ...}``.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"composition": [{"Fe": 0.5, "Ni": 0.5}, {"Ni": 1.0}]})
    >>> split_exclusions(df, pd.Series(["labelled", "test"]))["test"]
    [{'Ni': 1.0}]
    """
    from pyro_hea.data.splits import SPLITS

    names = np.asarray(split)
    compositions = list(df["composition"])
    return {name: [c for c, s in zip(compositions, names) if s == name] for name in SPLITS}


def _exclusions(exclude, vocabulary):
    try:
        return _exclusion_rows(exclude, vocabulary)
    except PyroHeaError as err:
        raise CandidateError(str(err)) from None


class CandidatePool:
    """Unlabelled candidate alloys over a model's element vocabulary, stored compactly.

    Build one with :meth:`from_file`, :meth:`from_space`,
    :meth:`from_compositions` or :meth:`from_sparse`. ``len(pool)`` is the
    number of kept candidates, :meth:`take` builds rows of them,
    :meth:`summary` counts what was read, kept and dropped, and
    :meth:`to_dict` describes the source for a run's ``config.json``.

    ``exclude``, in every constructor, maps a split name (``"labelled"``,
    ``"unlabelled"``, ``"val"``, ``"test"``; see :func:`split_exclusions`)
    to compositions: a sequence of formulas or element-to-amount mappings,
    or an ``(alloys, len(vocabulary))`` array of amounts. A candidate equal
    to one of them is dropped and counted under that split's name (under
    the first, if it is in several).
    """

    def __init__(self, vocabulary: Sequence[str], summary: dict, description: dict, *, offsets=None,
                 elements=None, amounts=None, spec=None, columns=None, skipped=None):
        self._vocabulary = tuple(vocabulary)
        self._summary = summary
        self._description = description
        self._offsets, self._elements, self._amounts = offsets, elements, amounts
        self._spec, self._columns = spec, columns
        if spec is not None:
            skipped = np.asarray(skipped if skipped is not None else [], dtype=np.int64)
            self._shift = skipped - np.arange(len(skipped), dtype=np.int64)  # kept rows before each skipped row
            self._n = int(spec.size) - len(skipped)
        else:
            self._n = len(offsets) - 1

    # ---------------------------------------------------------------- access
    def __len__(self) -> int:
        return self._n

    def __repr__(self) -> str:
        return f"CandidatePool({self._n:,} candidates from {self._summary['kind']} {self._summary['source']!r})"

    @property
    def vocabulary(self) -> tuple[str, ...]:
        """The element symbols of the columns of :meth:`take`."""
        return self._vocabulary

    @property
    def nbytes(self) -> int:
        """Bytes held by the pool's arrays."""
        arrays = (self._offsets, self._elements, self._amounts, self._columns, getattr(self, "_shift", None))
        return sum(a.nbytes for a in arrays if a is not None)

    def take(self, indices) -> np.ndarray:
        """Candidates ``indices`` (in that order; repeats allowed) as at.% rows over :attr:`vocabulary`.

        Returns a float64 array of shape ``(len(indices), len(vocabulary))``
        whose rows sum to 100.

        Raises
        ------
        IndexError
            If an index is outside ``[0, len(pool))``.
        """
        idx = checked_indices(indices, self._n, "candidate indices", IndexError)
        out = np.zeros((len(idx), len(self._vocabulary)))
        if not idx.size:
            return out
        if self._spec is not None:
            rows = idx + np.searchsorted(self._shift, idx, side="right")
            out[:, self._columns] = self._spec.take(rows)
        else:
            starts = self._offsets[idx]
            lengths = self._offsets[idx + 1] - starts
            where = np.repeat(np.arange(len(idx)), lengths)
            before = np.cumsum(lengths) - lengths
            pos = np.repeat(starts - before, lengths) + np.arange(int(lengths.sum()))
            out[where, self._elements[pos]] = self._amounts[pos]
        out *= 100.0 / out.sum(axis=1, keepdims=True)
        return out

    def summary(self) -> dict:
        """What was read, kept and dropped, and why, as JSON-ready counts.

        Keys: ``kind`` (``"file"``, ``"space"`` or ``"arrays"``), ``source``,
        ``read``, ``kept``, ``dropped``; the reasons ``malformed`` (with the
        first rows in ``malformed_rows``: line, row, reason, value, message),
        ``outside_vocabulary`` (by element in ``outside_elements``),
        ``no_descriptor_data``, ``duplicate`` and ``in_dataset`` (a count
        per split name); ``empty_rows`` (skipped, not read), and for a file
        ``formula_column``, ``ignored_columns`` and ``notes``. ``read`` is
        ``kept`` plus every reason.
        """
        return {k: (dict(v) if isinstance(v, dict) else list(v) if isinstance(v, list) else v)
                for k, v in self._summary.items()}

    def to_dict(self) -> dict:
        """Where the candidates came from (the file and its checksum, or the space), JSON-ready."""
        return dict(self._description)

    def summary_text(self) -> str:
        """:meth:`summary` as the lines ``pyro-hea train`` prints.

        Examples
        --------
        >>> print(CandidatePool.from_compositions(["FeNi", "FeNi"], ["Fe", "Ni"]).summary_text())
        candidates    2 read from arrays 'compositions'
        kept          1 unlabelled candidates (storage 0.0 MB)
        dropped       1: 1 duplicate
        """
        s = self._summary
        where = f"{s['kind']} {s['source']!r}" + (f", formula column {s['formula_column']!r}"
                                                  if s.get("formula_column") else "")
        lines = [f"candidates    {s['read']:,} read from {where}",
                 f"kept          {s['kept']:,} unlabelled candidates (storage {self.nbytes / 1e6:.1f} MB)"]
        parts = []
        if s["malformed"]:
            parts.append(f"{s['malformed']:,} malformed")
        if s["outside_vocabulary"]:
            by = ", ".join(f"{el} {n:,}" for el, n in list(s["outside_elements"].items())[:8])
            parts.append(f"{s['outside_vocabulary']:,} with an element outside the model's vocabulary ({by})")
        if s["no_descriptor_data"]:
            parts.append(f"{s['no_descriptor_data']:,} with an element pair without descriptor data")
        if s["duplicate"]:
            parts.append(f"{s['duplicate']:,} duplicate")
        if any(s["in_dataset"].values()):
            by = ", ".join(f"{name} {n:,}" for name, n in s["in_dataset"].items())
            parts.append(f"{sum(s['in_dataset'].values()):,} equal to a dataset alloy ({by})")
        lines.append(f"dropped       {s['dropped']:,}" + (f": {'; '.join(parts)}" if parts else ""))
        for row in s.get("malformed_rows", []):
            where = f"line {row['line']}" if row.get("line") is not None else f"row {row['row']}"
            lines.append(f"  {where}: {row['reason']}: {row['message']}")
        if s["malformed"] > len(s.get("malformed_rows", [])):
            lines.append(f"  ... and {s['malformed'] - len(s['malformed_rows']):,} more malformed rows")
        if s.get("empty_rows"):
            lines.append(f"empty rows    {s['empty_rows']:,} skipped")
        if s.get("ignored_columns"):
            lines.append(f"not used      {', '.join(repr(c) for c in s['ignored_columns'])}")
        for note in s.get("notes", []):
            lines.append(f"note          {note}")
        return "\n".join(lines)

    # --------------------------------------------------------- constructors
    @classmethod
    def from_sparse(cls, offsets, elements, amounts, vocabulary: Sequence[str], exclude: Mapping | None = None,
                    source: str = "arrays", _report: dict | None = None) -> "CandidatePool":
        """A pool from compressed sparse rows: alloy ``i`` has ``elements[offsets[i]:offsets[i + 1]]``
        (indices into ``vocabulary``) with positive ``amounts`` there (any scale; each row is normalized).

        Examples
        --------
        >>> pool = CandidatePool.from_sparse([0, 2, 3], [0, 1, 1], [1.0, 3.0, 2.0], ["Fe", "Ni"])
        >>> pool.take(np.array([1, 0])).tolist()
        [[0.0, 100.0], [25.0, 75.0]]
        """
        offsets = np.asarray(offsets, dtype=np.int64)
        elements = np.asarray(elements)
        amounts = np.asarray(amounts, dtype=np.float64)
        if elements.size and not np.issubdtype(elements.dtype, np.integer):
            raise CandidateError(f"element indices must be integers, not {elements.dtype}")
        n, vocabulary = len(offsets) - 1, tuple(vocabulary)
        lengths = np.diff(offsets)
        if (n < 0 or offsets[0] != 0 or offsets[-1] != len(elements) or len(amounts) != len(elements)
                or np.any(lengths < 1)):
            raise CandidateError("sparse rows need offsets from 0 to len(elements), at least one element per alloy, "
                                 "and one amount per element")
        if n > MAX_CANDIDATES:
            raise CandidateError(f"{n:,} candidates is more than the limit of {MAX_CANDIDATES:,}")
        if len(elements) and (elements.min() < 0 or elements.max() >= len(vocabulary)):
            raise CandidateError(f"element indices must be in [0, {len(vocabulary)}) (the vocabulary)")
        if not (np.all(np.isfinite(amounts)) and np.all(amounts > 0)):
            raise CandidateError("amounts must be positive and finite")
        elements = elements.astype(np.int16)
        inner = np.ones(len(elements), dtype=bool)  # entry i + 1 is in the same alloy as entry i
        inner[offsets[1:-1] - 1] = False
        inner = inner[:-1]
        if np.any(inner & (elements[1:] < elements[:-1])):  # put each alloy's elements in vocabulary order
            order = np.lexsort((elements, np.repeat(np.arange(n, dtype=np.int32), lengths)))
            elements, amounts = elements[order], amounts[order]
            del order
        if np.any(inner & (elements[1:] == elements[:-1])):
            raise CandidateError("an alloy names an element twice; sum its amounts first")
        del inner
        percent = _csr_percent(offsets, amounts)
        del amounts
        report = dict(_report or {})
        no_data = _without_descriptor_data(offsets, elements, vocabulary)
        split_of, first = _match(offsets, elements, percent, _exclusions(exclude, vocabulary), no_data)
        names = list((exclude or {}).keys())
        keep = (split_of < 0) & first & ~no_data
        report["no_descriptor_data"] = int(no_data.sum())
        counts = {"duplicate": int(((split_of < 0) & ~first & ~no_data).sum()),
                  "in_dataset": {str(name): int((split_of == j).sum()) for j, name in enumerate(names)}}
        kept_lengths = lengths[keep]
        entry_keep = np.repeat(keep, lengths)
        new_offsets = np.zeros(len(kept_lengths) + 1, dtype=np.int64)
        np.cumsum(kept_lengths, out=new_offsets[1:])
        summary = _summary(report.pop("kind", "arrays"), source, n + report.get("bad", 0), int(keep.sum()),
                           counts, report)
        if summary["kept"] == 0:
            raise CandidateError(f"{source}: no usable candidate: {_reasons(summary)}")
        return cls(vocabulary, summary, report.get("description", {"kind": "arrays", "source": source}),
                   offsets=new_offsets, elements=elements[entry_keep],
                   amounts=percent[entry_keep].astype(np.float32))

    @classmethod
    def from_compositions(cls, alloys: Iterable, vocabulary: Sequence[str], exclude: Mapping | None = None,
                          source: str = "compositions") -> "CandidatePool":
        """A pool from formulas or element-to-amount mappings (which must be valid; see :meth:`from_file`
        for a tolerant reader).

        Raises
        ------
        CandidateError
            On a formula that cannot be read or an element outside ``vocabulary``.
        """
        index = {el: i for i, el in enumerate(vocabulary)}
        offsets, elements, amounts = array("q", [0]), array("h"), array("d")
        for alloy in alloys:
            try:
                composition = as_composition(alloy)
                elements.extend(index[el] for el in composition)
            except CompositionError as err:
                raise CandidateError(f"{source}: {err}") from None
            except KeyError as err:
                raise CandidateError(f"{source}: {alloy!r} has element {err.args[0]!r} outside the vocabulary") from None
            amounts.extend(composition.values())
            offsets.append(len(elements))
        return cls.from_sparse(np.frombuffer(offsets, np.int64), np.frombuffer(elements, np.int16),
                               np.frombuffer(amounts, np.float64), vocabulary, exclude, source)

    @classmethod
    def from_file(cls, path: str | os.PathLike, vocabulary: Sequence[str], exclude: Mapping | None = None,
                  formula_column: str = "auto") -> "CandidatePool":
        """A pool from a CSV, TSV or Excel table with a formula column.

        The formula column is found as :func:`~pyro_hea.data.datasets.load_dataset`
        finds it (``formula``, ``alloy``, ``composition``, ... in any case)
        unless ``formula_column`` names it. A label column, and every other
        column, is ignored (the summary says so). A malformed row (empty or
        unreadable formula) is left out and reported by its file line; a
        wholly empty line is skipped.

        Raises
        ------
        CandidateError
            If the file is missing or unreadable, has no (or two) formula
            columns, more than :data:`MAX_CANDIDATES` rows, or no usable row.

        Examples
        --------
        >>> CandidatePool.from_file("candidates.csv", model.vocabulary)  # needs a file and a model  # doctest: +SKIP
        """
        from pyro_hea.data.tables import LABEL_COLUMNS, FORMULA_COLUMNS, column_key, find_column, read_table, \
            table_records

        path = Path(path)
        if not path.exists():
            raise CandidateError(f"candidate file {str(path)!r} does not exist")
        if not path.is_file():
            raise CandidateError(f"candidate file {str(path)!r} is not a file")
        try:
            table, notes = read_table(path)
            column = find_column(list(table.columns), formula_column, FORMULA_COLUMNS, "formula", path.name,
                                 required=True)
        except PyroHeaError as err:
            raise CandidateError(str(err).replace("(--formula-column)", "(--unlabelled-formula-column)")) from None
        if len(table) == 0:
            raise CandidateError(f"candidate file {str(path)!r} has no data rows")
        if len(table) > MAX_CANDIDATES:
            raise CandidateError(f"candidate file {str(path)!r} has {len(table):,} rows, more than the limit of "
                                 f"{MAX_CANDIDATES:,} candidates")
        ignored = [str(c) for c in table.columns if c != column]
        labels = [c for c in ignored if column_key(c) in LABEL_COLUMNS]
        if labels:
            notes.append(f"label column {', '.join(map(repr, labels))} ignored: candidates join the unlabelled split")
        index = {el: i for i, el in enumerate(vocabulary)}
        offsets, elements, amounts = array("q", [0]), array("h"), array("d")
        issues: list[RowIssue] = []
        outside: Counter = Counter()
        counts = Counter()
        for rec in table_records(table, column, None, path.name, (), first_line=2):
            if rec is None:
                counts["empty_rows"] += 1
                continue
            if isinstance(rec, RowIssue):
                counts["malformed"] += 1
                if len(issues) < LISTED_ROWS:
                    issues.append(rec)
                continue
            composition = rec["composition"]
            missing = [el for el in composition if el not in index]
            if missing:
                counts["outside_vocabulary"] += 1
                outside.update(missing)
                continue
            elements.extend(index[el] for el in composition)
            amounts.extend(composition.values())
            offsets.append(len(elements))
        del table
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        report = {
            "kind": "file", "bad": counts["malformed"] + counts["outside_vocabulary"],
            "malformed": counts["malformed"], "malformed_rows": [_issue(i) for i in issues],
            "outside_vocabulary": counts["outside_vocabulary"], "outside_elements": dict(outside.most_common()),
            "empty_rows": counts["empty_rows"],
            "formula_column": str(column), "ignored_columns": ignored, "notes": notes,
            "description": {"kind": "file", "path": str(path.resolve()), "formula_column": str(column),
                            "bytes": path.stat().st_size, "sha256": digest},
        }
        if len(offsets) == 1:
            summary = _summary("file", path.name, report["bad"], 0, {"duplicate": 0, "in_dataset": {}}, report)
            raise CandidateError(f"candidate file {str(path)!r}: no usable candidate: {_reasons(summary)}")
        return cls.from_sparse(np.frombuffer(offsets, np.int64), np.frombuffer(elements, np.int16),
                               np.frombuffer(amounts, np.float64), vocabulary, exclude, path.name, report)

    @classmethod
    def from_space(cls, spec, vocabulary: Sequence[str], exclude: Mapping | None = None) -> "CandidatePool":
        """A pool of a generated design space, built row by row on demand.

        ``spec`` is a :class:`~pyro_hea.design.distributed.SpaceSpec` (or
        any object with its ``palette``, ``size``, ``take`` and
        ``index_of``). Dataset alloys that lie in the space are left out.

        Raises
        ------
        CandidateError
            If a palette element is outside ``vocabulary`` (the palette is
            not trimmed: choose one within it), a palette pair has no
            descriptor data, or the space has more than
            :data:`MAX_CANDIDATES` alloys.

        Examples
        --------
        >>> from pyro_hea.design.distributed import SpaceSpec
        >>> pool = CandidatePool.from_space(SpaceSpec(("Co", "Cr", "Fe", "Ni"), 3), ("Co", "Cr", "Fe", "Ni", "Al"),
        ...                                 exclude={"test": ["CoCrFe"]})
        >>> len(pool), pool.take(np.array([0])).round(2).tolist()
        (3, [[33.33, 33.33, 0.0, 33.33, 0.0]])
        """
        from pyro_hea.data.descriptors import _missing_pairs

        if not all(hasattr(spec, name) for name in ("palette", "size", "take", "index_of")):
            raise CandidateError(f"from_space needs a SpaceSpec (pyro_hea.design.distributed), not {type(spec).__name__}")
        palette, index = tuple(spec.palette), {el: i for i, el in enumerate(vocabulary)}
        outside = [el for el in palette if el not in index]
        if outside:
            raise CandidateError(
                f"palette element(s) {', '.join(outside)} are outside the model's vocabulary of {len(index)} "
                f"elements (the dataset's); choose a palette among {', '.join(vocabulary)}")
        pairs = ["-".join(sorted(pair)) for pair in _missing_pairs() if pair <= set(palette)]
        if pairs:
            raise CandidateError(f"the palette holds element pair(s) {', '.join(pairs)} without descriptor data; "
                                 "leave one of each out")
        size = int(spec.size)
        if size > MAX_CANDIDATES:
            raise CandidateError(
                f"the generated space has {size:,} alloys, more than the limit of {MAX_CANDIDATES:,} candidates: "
                "use a coarser --grid-step, a smaller --palette or --k, or a narrower --grid-min/--grid-max")
        column = {el: j for j, el in enumerate(palette)}
        taken: dict[int, int] = {}
        names = list((exclude or {}).keys())
        for j, (name, rows) in enumerate(_exclusions(exclude, vocabulary).items()):
            inside = [(e, p) for e, p in rows if all(vocabulary[i] in column for i in e)]
            x = np.zeros((len(inside), len(palette)))
            for r, (e, p) in enumerate(inside):
                x[r, [column[vocabulary[i]] for i in e]] = p
            for row in spec.index_of(x).tolist() if len(inside) else []:
                if row >= 0:
                    taken.setdefault(row, j)
        skipped = np.array(sorted(taken), dtype=np.int64)
        counts = {"duplicate": 0, "in_dataset": {str(n): sum(1 for v in taken.values() if v == j)
                                                 for j, n in enumerate(names)}}
        settings = spec.to_dict() if hasattr(spec, "to_dict") else {"palette": list(palette), "size": size}
        text = f"{len(palette)} elements, k = {getattr(spec, 'k', '?')}, " + (
            "equimolar" if getattr(spec, "grid_step", None) is None else f"{spec.grid_step:g} at.% grid")
        summary = _summary("space", text, size, size - len(skipped), counts, {"space": settings})
        if summary["kept"] == 0:
            raise CandidateError(f"the generated space: no usable candidate: {_reasons(summary)}")
        return cls(vocabulary, summary, {"kind": "space", **settings}, spec=spec,
                   columns=np.array([index[el] for el in palette], dtype=np.int64), skipped=skipped)


def _issue(issue: RowIssue) -> dict:
    return {"line": issue.line, "row": issue.row, "reason": issue.reason, "value": issue.value,
            "message": issue.message}


def _summary(kind: str, source: str, read: int, kept: int, counts: dict, report: dict) -> dict:
    summary = {"kind": kind, "source": source, "read": int(read), "kept": int(kept), "dropped": int(read - kept),
               "malformed": report.get("malformed", 0), "malformed_rows": report.get("malformed_rows", []),
               "outside_vocabulary": report.get("outside_vocabulary", 0),
               "outside_elements": report.get("outside_elements", {}),
               "no_descriptor_data": report.get("no_descriptor_data", 0), "duplicate": counts["duplicate"],
               "in_dataset": counts["in_dataset"], "empty_rows": report.get("empty_rows", 0)}
    for key in ("formula_column", "ignored_columns", "notes", "space"):
        if key in report:
            summary[key] = report[key]
    return summary


def _reasons(summary: dict) -> str:
    parts = [f"{summary[k]:,} {k.replace('_', ' ')}" for k in ("malformed", "outside_vocabulary",
                                                                "no_descriptor_data", "duplicate") if summary[k]]
    parts += [f"{n:,} equal to an alloy of split {name!r}" for name, n in summary["in_dataset"].items() if n]
    first = summary.get("malformed_rows") or []
    hint = f" (line {first[0]['line']}: {first[0]['message']})" if first and first[0].get("line") else ""
    return f"all {summary['read']:,} rows were dropped: {', '.join(parts) or 'none read'}{hint}"
