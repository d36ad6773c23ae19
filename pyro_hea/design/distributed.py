"""Screening a generated design space at scale: streamed in chunks, on Dask.

:func:`screen_space` scores a generated space (every equimolar k-element
alloy of a palette, or every one on an at.% grid) chunk by chunk and keeps
only the ``top`` rows and the summary counts, so memory stays bounded
whatever the size of the space. The chunks are described by index ranges
(:class:`SpaceSpec`): each worker builds its own rows, and the whole space
never exists anywhere.

- One worker and no scheduler: the chunks run in this process, one after
  the other, with no cluster to start.
- ``workers > 1``: a ``distributed.LocalCluster`` on the loopback
  interface, one single-threaded process per worker.
- ``scheduler="tcp://HOST:PORT"`` (or the ``DASK_SCHEDULER_ADDRESS``
  environment variable): an existing Dask cluster.

The workers are found by :mod:`pyro_hea.cluster`, as for the sweeps of
:mod:`pyro_hea.infer.sweep`.

The ranking is the serial :meth:`~pyro_hea.design.designer.Designer.screen`'s
(ties broken by the position in the space), so the top rows are the serial
screen's first rows. A chunk whose worker dies is run again on another
worker by the scheduler (up to ``distributed.scheduler.allowed-failures``
times, 3 by default); one that raises, ``retries`` times.

Examples
--------
>>> spec = SpaceSpec(("Co", "Cr", "Fe", "Ni", "Mn"), 4)
>>> spec.size, list(spec.ranges(2))
(5, [(0, 2), (2, 4), (4, 5)])
>>> formulas(*spec.block(4, 5))
['Cr25Fe25Mn25Ni25']
"""

from __future__ import annotations

import functools
import math
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pyro_hea.cluster import CONNECT_TIMEOUT, SchedulerUnreachable, connected, local_cluster, resolve_scheduler
from pyro_hea.design.space import (
    DEFAULT_PALETTE,
    DesignSpaceError,
    _check_palette,
    _grid_count,
    _simplex_grid,
    formulas,
)
from pyro_hea.errors import checked_indices

# SchedulerUnreachable, local_cluster and resolve_scheduler live in pyro_hea.cluster (shared with the
# sweeps of pyro_hea.infer.sweep) and are importable from here too.
__all__ = ["SpaceSpec", "merge_top", "score_chunk", "screen_space"]

COUNTS = ("rows", "unique", "scored", "valid", "novel", "in_domain", "judged_target", "model_target",
          "agree", "flagged")


@dataclass(frozen=True)
class SpaceSpec:
    """A generated design space that can be cut into chunks without being built.

    Row ``i`` of the space is element set ``i // cells`` (the k-subsets of
    the palette in lexicographic order, as ``itertools.combinations``)
    with amounts ``i % cells`` of the grid, the order of
    :func:`~pyro_hea.design.space.equimolar_space` and
    :func:`~pyro_hea.design.space.grid_space` (which build it all at once).
    With ``limit``, only the first ``limit`` rows.

    Examples
    --------
    >>> SpaceSpec(DEFAULT_PALETTE, 5, grid_step=5.0).size
    4357353
    """

    palette: tuple[str, ...] = DEFAULT_PALETTE
    k: int = 5
    grid_step: float | None = None
    min_percent: float = 5.0
    max_percent: float = 35.0
    limit: int | None = None

    def __post_init__(self):
        object.__setattr__(self, "palette", _check_palette(self.palette, self.k))
        if self.limit is not None and not (isinstance(self.limit, int) and self.limit >= 1):
            raise DesignSpaceError(f"limit must be a positive number of alloys, got {self.limit!r}")
        if self.grid_step is not None:
            step = self.grid_step
            if not (isinstance(step, (int, float)) and math.isfinite(step) and step > 0
                    and abs(100.0 / step - round(100.0 / step)) < 1e-9):
                raise DesignSpaceError(f"step must be a positive at.% amount that divides 100, got {step}")
            if not (0 < self.min_percent <= self.max_percent <= 100):
                raise DesignSpaceError(f"need 0 < min_percent <= max_percent <= 100, got {self.min_percent} "
                                       f"and {self.max_percent}")
            if self.cells == 0:
                raise DesignSpaceError(f"no {self.k}-element composition has every amount in [{self.min_percent}, "
                                       f"{self.max_percent}] at.% on a {step} at.% grid")

    def _grid_args(self) -> tuple[int, int, int]:
        total = round(100.0 / self.grid_step)
        return (total, math.ceil(self.min_percent / self.grid_step - 1e-9),
                math.floor(self.max_percent / self.grid_step + 1e-9))

    @property
    def cells(self) -> int:
        """Compositions per element set (1 when equimolar)."""
        return 1 if self.grid_step is None else _grid_count(self.k, *self._grid_args())

    @property
    def size(self) -> int:
        """Number of alloys in the space (counted, not enumerated), at most ``limit``."""
        size = math.comb(len(self.palette), self.k) * self.cells
        return size if self.limit is None else min(size, self.limit)

    def ranges(self, chunk_size: int) -> Iterator[tuple[int, int]]:
        """``(start, stop)`` row ranges of at most ``chunk_size`` rows that cover the space."""
        for start in range(0, self.size, chunk_size):
            yield start, min(start + chunk_size, self.size)

    def block(self, start: int, stop: int) -> tuple[np.ndarray, tuple[str, ...]]:
        """Rows ``start`` to ``stop - 1`` as at.% over the palette, and the palette."""
        cells = self.cells
        first, last = start // cells, (stop - 1) // cells
        combos = _combinations(len(self.palette), self.k, first, last + 1 - first)
        if self.grid_step is None:
            grid = np.full((1, self.k), 100.0 / self.k)
        else:
            grid = _grid(self.k, *self._grid_args()) * self.grid_step
        rows = np.arange(start, stop)
        x = np.zeros((stop - start, len(self.palette)))
        x[np.arange(len(rows))[:, None], combos[rows // cells - first]] = grid[rows % cells]
        return x, self.palette

    def _cell_grid(self) -> np.ndarray:
        if self.grid_step is None:
            return np.full((1, self.k), 100.0 / self.k)
        return _grid(self.k, *self._grid_args()) * self.grid_step

    def take(self, rows) -> np.ndarray:
        """Rows ``rows`` (any order, repeats allowed) as at.% over the palette, built on demand.

        Row ``i`` is :meth:`block`'s row ``i``: element set ``i // cells``
        (the k-subset unranked in lexicographic order) with grid cell
        ``i % cells``. Vectorized: 1,000 random rows take about a millisecond.

        Examples
        --------
        >>> spec = SpaceSpec(("Co", "Cr", "Fe", "Ni", "Mn"), 4)
        >>> formulas(spec.take([4, 0]), spec.palette)
        ['Cr25Fe25Mn25Ni25', 'Co25Cr25Fe25Ni25']
        """
        rows = checked_indices(rows, self.size, "rows", DesignSpaceError)
        cells = self.cells
        combos = _unrank_combinations(len(self.palette), self.k, rows // cells)
        x = np.zeros((len(rows), len(self.palette)))
        x[np.arange(len(rows))[:, None], combos] = self._cell_grid()[rows % cells]
        return x

    def index_of(self, x_percent, tol: float = 0.005) -> np.ndarray:
        """The row of the space that each composition is (within ``tol`` at.%), or -1 where none is.

        ``x_percent`` holds at.% over the palette, one row per composition
        (rows are renormalized to 100 first).

        Examples
        --------
        >>> spec = SpaceSpec(("Co", "Cr", "Fe", "Ni", "Mn"), 4)
        >>> spec.index_of(np.array([[0, 1, 1, 1, 1], [1, 1, 1, 1, 1.0]])).tolist()
        [4, -1]
        """
        x = np.asarray(x_percent, dtype=float)
        if x.ndim != 2 or x.shape[1] != len(self.palette):
            raise DesignSpaceError(f"x_percent must be (alloys, {len(self.palette)}) over the palette, got {x.shape}")
        out = np.full(len(x), -1, dtype=np.int64)
        n, k = len(self.palette), self.k
        for i, row in enumerate(x):
            total = row.sum()
            if not (np.isfinite(total) and total > 0):
                continue
            row = 100.0 * row / total
            present = np.flatnonzero(row > tol)
            if len(present) != k:
                continue
            amounts = row[present]
            if self.grid_step is None:
                if np.all(np.abs(amounts - 100.0 / k) <= tol):
                    index = _rank_combination(n, k, present.tolist())
                    out[i] = index if index < self.size else -1
                continue
            units = np.rint(amounts / self.grid_step)
            total_units, low, high = self._grid_args()
            if (np.all(np.abs(amounts - units * self.grid_step) <= tol) and units.min() >= low
                    and units.max() <= high and int(units.sum()) == total_units):
                cell = _rank_cell([int(u) for u in units], total_units, low, high)
                index = _rank_combination(n, k, present.tolist()) * self.cells + cell
                out[i] = index if index < self.size else -1
        return out

    def to_dict(self) -> dict:
        """The settings and the size, as JSON-ready data.

        Examples
        --------
        >>> SpaceSpec(("Co", "Cr", "Fe"), 2).to_dict()["size"]
        3
        """
        return {"palette": list(self.palette), "k": self.k, "grid_step": self.grid_step,
                "min_percent": self.min_percent, "max_percent": self.max_percent, "limit": self.limit,
                "size": self.size}


def _unrank_combinations(n: int, k: int, ranks: np.ndarray) -> np.ndarray:
    """The k-subsets of range(n) of lexicographic ranks ``ranks``, vectorized (the combinatorial number system)."""
    table = np.array([[math.comb(a, b) for b in range(k + 1)] for a in range(n + 1)], dtype=np.int64)
    rank = np.array(ranks, dtype=np.int64)
    out = np.empty((len(rank), k), dtype=np.int64)
    x = np.zeros(len(rank), dtype=np.int64)
    for i in range(k):
        for _ in range(n):
            ok = x < n - (k - i) + 1
            step = table[np.clip(n - x - 1, 0, n), k - i - 1]
            move = ok & (step <= rank)
            if not move.any():
                break
            rank -= np.where(move, step, 0)
            x += move
        out[:, i] = x
        x = x + 1
    return out


def _rank_combination(n: int, k: int, combo: Sequence[int]) -> int:
    """The lexicographic rank of the sorted k-subset ``combo`` of range(n) (the inverse of the unranking)."""
    rank, x = 0, 0
    for i, c in enumerate(combo):
        while x < c:
            rank += math.comb(n - x - 1, k - i - 1)
            x += 1
        x = c + 1
    return rank


def _rank_cell(units: Sequence[int], total: int, low: int, high: int) -> int:
    """The position of the integer vector ``units`` in :func:`~pyro_hea.design.space._simplex_grid`'s order."""
    k, rank, used = len(units), 0, 0
    for position, u in enumerate(units):
        remaining = k - position - 1
        lo = max(low, total - used - remaining * high)
        for v in range(lo, u):
            rest = total - used - v
            rank += (rest == 0) if remaining == 0 else _grid_count(remaining, rest, low, high)
        used += u
    return rank


@functools.lru_cache(maxsize=8)
def _grid(k: int, total: int, low: int, high: int) -> np.ndarray:
    """The grid cells of one element set (built once per process)."""
    grid = _simplex_grid(k, total, low, high)
    grid.flags.writeable = False
    return grid


def _combinations(n: int, k: int, rank: int, count: int) -> np.ndarray:
    """``count`` k-subsets of range(n) in lexicographic order, from the ``rank``-th on."""
    combo, x = [], 0
    for i in range(k):  # unrank: the combinatorial number system
        while math.comb(n - x - 1, k - i - 1) <= rank:
            rank -= math.comb(n - x - 1, k - i - 1)
            x += 1
        combo.append(x)
        x += 1
    out = np.empty((count, k), dtype=int)
    for row in range(count):
        out[row] = combo
        i = k - 1
        while i >= 0 and combo[i] == n - k + i:
            i -= 1
        if i < 0:
            break
        combo[i] += 1
        for j in range(i + 1, k):
            combo[j] = combo[j - 1] + 1
    return out


def _top_rows(table: pd.DataFrame, x: np.ndarray, key: np.ndarray, top: int) -> dict:
    """The ``top`` rows by ``key`` (highest first, ties by input_index), as a mergeable part."""
    order = np.lexsort((table["input_index"].to_numpy(), -key))[:top]
    attrs = dict(table.attrs)
    rows = table.iloc[order].reset_index(drop=True)
    rows.attrs = {}
    return {"table": rows, "x": x[order], "key": key[order],
            "attrs": {name: value[order] for name, value in attrs.items()}}


def merge_top(parts: Sequence[dict], top: int) -> dict:
    """Merge top-row parts (of :func:`score_chunk`) into the ``top`` rows of them all.

    The result is what one sort of every row would give: key highest first,
    ties in input order.

    Examples
    --------
    >>> part = lambda keys, index: {"table": pd.DataFrame({"input_index": index}), "x": np.zeros((len(index), 1)),
    ...                              "key": np.array(keys, dtype=float), "attrs": {}}
    >>> merge_top([part([0.9, 0.1], [0, 1]), part([0.9, 0.5], [2, 3])], 3)["table"]["input_index"].tolist()
    [0, 2, 3]
    """
    parts = [p for p in parts if p is not None]
    if len(parts) == 1:
        return parts[0]
    table = pd.concat([p["table"] for p in parts], ignore_index=True)
    whole = {"table": table, "x": np.concatenate([p["x"] for p in parts]),
             "key": np.concatenate([p["key"] for p in parts])}
    table.attrs = {name: np.concatenate([p["attrs"][name] for p in parts]) for name in parts[0]["attrs"]}
    return _top_rows(whole["table"], whole["x"], whole["key"], top)


def score_chunk(designer, spec: SpaceSpec, start: int, stop: int, target: int, top: int) -> dict:
    """Score rows ``start:stop`` of ``spec``: the summary counts and the top rows.

    This is the task each worker runs; ``input_index`` is the row's position
    in the whole space.
    """
    space, elements = spec.block(start, stop)
    table, x, good, key = designer._score_space(space, elements, target)
    table["input_index"] = np.arange(start, stop)
    scored = table["scored"].to_numpy(bool)
    p_model, p_judge = table.attrs["p_model_all"], table.attrs["p_judge_all"]
    counts = {
        "rows": len(table), "unique": int(table["formula"].nunique()), "scored": int(scored.sum()),
        "valid": int(table["valid"].sum()), "novel": int(table["novel"].sum()),
        "in_domain": int(table["in_domain"].sum()),
        "judged_target": int((np.nan_to_num(p_judge[scored]).argmax(axis=1) == target).sum()),
        "model_target": int((np.nan_to_num(p_model[scored]).argmax(axis=1) == target).sum()),
        "agree": int(table["agree"].to_numpy(bool)[scored].sum()), "flagged": int((~good).sum()),
    }
    return {"counts": counts, "top": _top_rows(table, x, key, top)}


def screen_space(designer, spec: SpaceSpec, target=1, top: int = 1000, chunk_size: int = 20_000,
                 workers: int = 1, scheduler: str | None = None, retries: int = 2, progress: bool = True,
                 client=None, timeout: float = CONNECT_TIMEOUT):
    """Screen a generated space in chunks, keeping the ``top`` rows and the summary counts.

    Parameters
    ----------
    designer : Designer
        A designer on a trained model (sent once to each worker).
    spec : SpaceSpec
        The space.
    target : int or str
        The target class.
    top : int
        Rows to keep, ranked as :meth:`~pyro_hea.design.designer.Designer.screen` ranks them.
    chunk_size : int
        Rows per task; memory per worker grows with it.
    workers : int
        Local worker processes when no scheduler is given (1: in this process).
    scheduler : str, optional
        Address of an existing Dask scheduler (default: ``DASK_SCHEDULER_ADDRESS`` if set).
    retries : int
        Times a chunk that raised is run again (one whose worker died is always
        run again, up to Dask's ``distributed.scheduler.allowed-failures``).
    progress : bool
        A progress bar with an ETA on stderr.
    client : distributed.Client, optional
        Use this client (and its cluster) instead.
    timeout : float
        Seconds to wait for the scheduler.

    Returns
    -------
    DesignResult
        The ``top`` rows and a summary over the whole space (``generated``,
        ``scored``, ``valid``, ... as for the serial screen, plus ``workers``,
        ``chunks`` and ``scheduler``).

    Examples
    --------
    >>> screen_space(designer, SpaceSpec(k=4), top=10).table["input_index"].size  # needs a Designer on a trained model  # doctest: +SKIP
    10
    """
    from tqdm.auto import tqdm

    from pyro_hea.design.result import DesignError, DesignResult

    for name, value, low in (("top", top, 1), ("chunk_size", chunk_size, 1), ("workers", workers, 1),
                             ("retries", retries, 0)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
            raise DesignError(f"{name} must be an integer >= {low}, got {value!r}")
    started = time.perf_counter()
    target = designer.class_index(target)
    scheduler = None if client is not None else resolve_scheduler(scheduler)
    counts = dict.fromkeys(COUNTS, 0)
    best, chunks = None, 0
    bar = tqdm(total=spec.size, unit="alloy", unit_scale=True, disable=not progress, file=sys.stderr,
               desc="screen", dynamic_ncols=True)

    def take(result):
        nonlocal best, chunks
        for name in COUNTS:
            counts[name] += result["counts"][name]
        best = merge_top([best, result["top"]], top)
        chunks += 1
        bar.update(result["counts"]["rows"])

    try:
        if client is None and scheduler is None and workers == 1:
            where = "in-process"
            for start, stop in spec.ranges(chunk_size):
                take(score_chunk(designer, spec, start, stop, target, top))
        else:
            with connected(client, scheduler, workers, timeout) as (client, where):
                workers = len(client.scheduler_info().get("workers", {})) or workers
                shared = client.scatter(designer, broadcast=True, hash=False)
                _run_tasks(client, shared, spec, target, top, chunk_size, retries,
                           max(2, 2 * sum(client.nthreads().values())), take)
    finally:
        bar.close()
    if counts["rows"] != spec.size:  # pragma: no cover - a lost chunk is a bug, never a silent gap
        raise DesignError(f"the chunks scored {counts['rows']:,} of the space's {spec.size:,} alloys")
    seconds = time.perf_counter() - started
    table, x = best["table"], best["x"]
    table.attrs = dict(best["attrs"])
    scored = max(counts["scored"], 1)
    share = (lambda n: n / scored) if counts["scored"] else (lambda n: float("nan"))
    summary = {
        "mode": "screen", "target": designer.class_names[target], "generated": spec.size,
        "unique": counts["unique"], "candidates": counts["rows"], "scored": counts["scored"],
        "valid": counts["valid"], "novel": counts["novel"], "in_domain": counts["in_domain"],
        "judged_target": share(counts["judged_target"]), "model_target": share(counts["model_target"]),
        "judge_agreement": share(counts["agree"]), "seconds": float(seconds),
        "candidates_per_second": float(spec.size / seconds) if seconds > 0 else float("inf"),
        "flagged": counts["flagged"], "top": int(min(top, spec.size)), "chunks": chunks,
        "workers": int(workers), "scheduler": where,
    }
    return DesignResult("screen", table, x, designer.vocabulary, summary)


def _run_tasks(client, shared, spec, target, top, chunk_size, retries, in_flight, take) -> None:
    """Submit the chunks with at most ``in_flight`` pending, feeding each result to ``take``."""
    from distributed import as_completed

    ranges = spec.ranges(chunk_size)

    def submit(start: int, stop: int):
        return client.submit(score_chunk, shared, spec, start, stop, target, top, retries=retries, pure=False,
                             key=f"screen-chunk-{start}-{time.time_ns()}")

    first = [submit(*r) for _, r in zip(range(in_flight), ranges)]  # range first: zip drops no chunk
    pending = as_completed(first, loop=client.loop)  # the client need not be the default one
    del first

    def submit_next() -> None:
        nxt = next(ranges, None)
        if nxt is not None:
            pending.add(submit(*nxt))

    for future in pending:
        take(future.result())
        future.release()
        submit_next()
