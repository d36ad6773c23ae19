"""Matching candidate alloys against each other and the dataset: exact, vectorized, at 0.01 at.%.

Each element of an alloy becomes one int64 code (the element's vocabulary
index and its amount in 0.01 at.%); alloys with the same number of elements
are compared as rows of codes, sorted with :func:`numpy.lexsort`, so memory
grows with the number of entries, never with alloys times the vocabulary.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from pyro_hea.data.composition import CompositionError, as_composition
from pyro_hea.errors import PyroHeaError

_UNITS = 100  # equality at 0.01 at.%: amounts are compared as integers of 1/100 at.%


def _codes(elements: np.ndarray, percent: np.ndarray) -> np.ndarray:
    """One int64 per (element, amount) entry: the element and the amount in 0.01 at.%."""
    return (elements.astype(np.int64) << 24) | np.rint(percent * _UNITS).astype(np.int64)


def _group_ids(codes: np.ndarray) -> np.ndarray:
    """An id per row of ``codes`` (m, L): equal rows share it, and ids grow with the first row of each."""
    if len(codes) == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.lexsort(codes.T[::-1])  # stable: equal rows keep their order
    new = np.zeros(len(codes), dtype=bool)  # where a new group starts, in sorted order
    new[0] = True
    for column in codes.T:
        ordered = column[order]
        new[1:] |= ordered[1:] != ordered[:-1]
    ids = np.empty(len(codes), dtype=np.int64)
    ids[order] = np.cumsum(new) - 1
    return ids


def _csr_percent(offsets: np.ndarray, amounts: np.ndarray) -> np.ndarray:
    totals = np.add.reduceat(amounts.astype(np.float64), offsets[:-1]) if len(amounts) else np.zeros(0)
    return 100.0 * amounts / np.repeat(totals, np.diff(offsets))


def _exclusion_rows(exclude: Mapping | None, vocabulary: Sequence[str]):
    """Each split's compositions as sorted (vocabulary index, at.%) pairs; those outside the vocabulary left out."""
    index = {el: i for i, el in enumerate(vocabulary)}
    out: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    for name, alloys in (exclude or {}).items():
        rows = []
        if isinstance(alloys, np.ndarray) and alloys.ndim == 2:
            if alloys.shape[1] != len(vocabulary):
                raise PyroHeaError(f"exclude[{name!r}] has {alloys.shape[1]} columns, not one per element of the "
                                     f"vocabulary ({len(vocabulary)})")
            for row in alloys:
                present = np.flatnonzero(row > 0)
                if len(present):
                    rows.append((present, 100.0 * row[present] / row[present].sum()))
        else:
            for alloy in alloys:
                try:
                    composition = as_composition(alloy)
                except CompositionError as err:
                    raise PyroHeaError(f"exclude[{name!r}]: {err}") from None
                if set(composition) <= set(index):
                    items = sorted((index[el], 100.0 * v) for el, v in composition.items())
                    rows.append((np.array([i for i, _ in items]), np.array([v for _, v in items])))
        out[str(name)] = rows
    return out


def _without_descriptor_data(offsets, elements, vocabulary) -> np.ndarray:
    """Which alloys hold an element pair without descriptor data (Th-U: no Miedema enthalpy)."""
    from pyro_hea.data.descriptors import _missing_pairs

    out = np.zeros(len(offsets) - 1, dtype=bool)
    index = {el: i for i, el in enumerate(vocabulary)}
    for pair in _missing_pairs():
        if pair <= index.keys():
            hits = np.isin(elements, [index[el] for el in pair]).astype(np.int32)
            out |= np.add.reduceat(hits, offsets[:-1]) == 2
    return out


def _match(offsets, elements, percent, exclusions, skip):
    """For each alloy not in ``skip``: the split (position in ``exclusions``) it equals or -1, and whether it
    is the first of its composition."""
    n = len(offsets) - 1
    lengths = np.diff(offsets)
    split_of = np.full(n, -1, dtype=np.int64)
    first = np.ones(n, dtype=bool)
    for length in np.unique(lengths[~skip]):
        rows = np.flatnonzero((lengths == length) & ~skip)
        ex_codes, ex_split = [], []
        for j, pairs in enumerate(exclusions.values()):
            for e, p in pairs:
                if len(e) == length:
                    ex_codes.append(_codes(np.asarray(e), np.asarray(p)))
                    ex_split.append(j)
        n_ex = len(ex_codes)
        codes = np.empty((n_ex + len(rows), length), dtype=np.int64)  # the dataset's alloys first
        codes[:n_ex] = np.array(ex_codes, dtype=np.int64).reshape(n_ex, length)
        for j in range(length):
            pos = offsets[rows] + j
            codes[n_ex:, j] = _codes(elements[pos], percent[pos])
        ids = _group_ids(codes)
        del codes
        if n_ex:
            owner = np.full(int(ids.max()) + 1, -1, dtype=np.int64)
            for j, g in sorted(zip(ex_split, ids[:n_ex].tolist()), reverse=True):  # the first split wins
                owner[g] = j
            split_of[rows] = owner[ids[n_ex:]]
        ids = ids[n_ex:]
        _, first_pos = np.unique(ids, return_index=True)  # rows are in file order: the first of each id
        is_first = np.zeros(len(rows), dtype=bool)
        is_first[first_pos] = True
        first[rows] = is_first
    return split_of, first
