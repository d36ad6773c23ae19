"""Candidate compositions for design: generated spaces, realistic rounding, validity.

Everything here works on whole ``(alloys, elements)`` matrices of at.% at once.

- :func:`equimolar_space` and :func:`grid_space` enumerate candidate alloys
  from an element palette (by default :data:`DEFAULT_PALETTE`, the common HEA
  elements).
- :func:`realize` turns a decoder's expected composition into one that can
  be weighed out: elements under ``min_percent`` dropped, at most
  ``max_elements`` kept, renormalized and rounded to a ``resolution`` grid
  of at.% that sums to exactly 100.
- :func:`check_validity` applies the validity rules of a candidate.
- :func:`formulas` writes the canonical formula of each row, fast.

Examples
--------
>>> x, elements = equimolar_space(["Co", "Cr", "Fe", "Ni"], 3)
>>> formulas(x, elements)[:2]
['Co33.3333Cr33.3333Fe33.3333', 'Co33.3333Cr33.3333Ni33.3333']
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from pyro_hea.data.composition import PERIODIC_TABLE, _percent_text, canonical_formula
from pyro_hea.errors import PyroHeaError

__all__ = [
    "DEFAULT_PALETTE",
    "CompositionRules",
    "DesignSpaceError",
    "check_validity",
    "equimolar_space",
    "formulas",
    "grid_space",
    "realize",
]

#: The common HEA elements: Al, the 3d transition metals Ti to Cu, and the
#: refractory metals Zr, Nb, Mo, Hf, Ta, W.
DEFAULT_PALETTE: tuple[str, ...] = ("Al", "Ti", "V", "Cr", "Mn", "Fe", "Co", "Ni", "Cu",
                                    "Zr", "Nb", "Mo", "Hf", "Ta", "W")

#: Refuse to enumerate generated spaces larger than this many alloys.
MAX_SPACE = 2_000_000


class DesignSpaceError(PyroHeaError):
    """Bad settings of a design space or of the composition rules."""


@dataclass
class CompositionRules:
    """What makes a candidate composition realistic and valid.

    Attributes
    ----------
    min_percent : float
        Elements below this at.% are dropped by :func:`realize` (5 at.% is
        the usual lower bound of a principal element of an HEA).
    resolution : float
        At.% grid that :func:`realize` rounds to; 100 / resolution must be an
        integer (1 at.% by default: what an alloy is usually specified to).
    min_elements, max_elements : int
        Bounds on the number of elements of a valid candidate. :func:`realize`
        keeps at most ``max_elements`` (the largest); set ``cap_elements``
        False to only check the bound.
    cap_elements : bool
        Whether :func:`realize` drops the smallest elements beyond
        ``max_elements``.
    exclude : tuple of str
        Elements a *decoded* alloy may not contain (e.g. the radioactive Th
        and U); the designer zeroes them before realizing. Screened alloys
        are scored as given.

    Examples
    --------
    >>> CompositionRules(resolution=0.5).units
    200
    """

    min_percent: float = 5.0
    resolution: float = 1.0
    min_elements: int = 2
    max_elements: int = 8
    cap_elements: bool = True
    exclude: tuple[str, ...] = ()

    def __post_init__(self):
        self.exclude = tuple(self.exclude)
        unknown = [el for el in self.exclude if el not in PERIODIC_TABLE]
        if unknown:
            raise DesignSpaceError(f"exclude has unknown element symbol(s) {unknown}")
        if not (0.0 <= self.min_percent < 100.0):
            raise DesignSpaceError(f"min_percent must be in [0, 100), got {self.min_percent}")
        if not (self.resolution > 0 and abs(100.0 / self.resolution - round(100.0 / self.resolution)) < 1e-9):
            raise DesignSpaceError(
                f"resolution must be a positive at.% step that divides 100 (e.g. 1, 0.5, 0.1), got {self.resolution}"
            )
        if not (1 <= int(self.min_elements) <= int(self.max_elements)):
            raise DesignSpaceError(
                f"need 1 <= min_elements <= max_elements, got {self.min_elements} and {self.max_elements}"
            )
        self.min_elements, self.max_elements = int(self.min_elements), int(self.max_elements)

    @property
    def units(self) -> int:
        """Number of resolution steps in 100 at.%."""
        return round(100.0 / self.resolution)

    def to_dict(self) -> dict:
        return asdict(self)


def _as_matrix(x, name: str = "x_percent") -> np.ndarray:
    x = np.asarray(x, dtype=float)
    if x.ndim != 2:
        raise DesignSpaceError(f"{name} must be an (alloys, elements) matrix, got shape {x.shape}")
    return x


def realize(x_percent: np.ndarray, rules: CompositionRules | None = None) -> np.ndarray:
    """Turn (decoded) compositions into realistic ones, row by row, vectorized.

    1. Renormalize to 100 at.%.
    2. Drop elements under ``rules.min_percent`` (the largest element of a
       row is always kept), then keep only the ``rules.max_elements`` largest
       when ``rules.cap_elements``.
    3. Renormalize and round to multiples of ``rules.resolution`` at.% by the
       largest-remainder method, so each row sums to exactly 100. An element
       that rounds to 0 disappears.

    Parameters
    ----------
    x_percent : ndarray, shape (alloys, elements)
        Non-negative amounts (any scale).
    rules : CompositionRules, optional

    Returns
    -------
    ndarray, shape (alloys, elements)
        At.% on the resolution grid.

    Examples
    --------
    >>> realize(np.array([[60.2, 36.9, 2.9]])).tolist()
    [[62.0, 38.0, 0.0]]
    """
    rules = rules or CompositionRules()
    x = _as_matrix(x_percent)
    if not np.all(np.isfinite(x)) or np.any(x < 0):
        raise DesignSpaceError("x_percent has negative, NaN or infinite entries; cannot realize it")
    total = x.sum(axis=1, keepdims=True)
    if np.any(total <= 0):
        raise DesignSpaceError(f"x_percent rows {np.flatnonzero(total[:, 0] <= 0)[:5].tolist()} are all zero")
    x = 100.0 * x / total
    n, n_el = x.shape
    # Work on the m largest entries of each row only: m = max_elements when
    # capping, else the most elements any row keeps.
    m = rules.max_elements if rules.cap_elements else int((x >= rules.min_percent).sum(axis=1).max(initial=1))
    m = max(1, min(m, n_el))
    idx = np.argpartition(-x, m - 1, axis=1)[:, :m] if m < n_el else np.broadcast_to(np.arange(n_el), (n, n_el))
    top = np.take_along_axis(x, idx, axis=1)
    keep = top >= rules.min_percent
    keep[np.arange(n), top.argmax(axis=1)] = True
    top = np.where(keep, top, 0.0)
    scaled = top * (rules.units / top.sum(axis=1, keepdims=True))
    units = np.floor(scaled + 1e-9)
    short = rules.units - units.sum(axis=1)
    remainder = np.where(keep, scaled - units, -1.0)
    order = np.argsort(-remainder, axis=1, kind="stable")
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.broadcast_to(np.arange(m), (n, m)), axis=1)
    units += rank < short[:, None]
    out = np.zeros_like(x)
    np.put_along_axis(out, idx, units * rules.resolution, axis=1)
    return out


def check_validity(x_percent: np.ndarray, rules: CompositionRules | None = None, tol: float = 1e-6) -> np.ndarray:
    """Whether each composition is a valid candidate.

    A row is valid when its entries are finite and non-negative, they sum to
    100 at.% (fractions sum to 1) within ``tol``, and its number of elements
    (entries > 0) is within ``[rules.min_elements, rules.max_elements]``.

    Examples
    --------
    >>> check_validity(np.array([[50.0, 50.0, 0], [100.0, 0, 0], [60.0, 50.0, -10.0]])).tolist()
    [True, False, False]
    """
    rules = rules or CompositionRules()
    x = _as_matrix(x_percent)
    finite = np.all(np.isfinite(x), axis=1)
    x = np.where(np.isfinite(x), x, 0.0)
    nonneg = np.all(x >= 0, axis=1)
    sums = np.abs(x.sum(axis=1) - 100.0) <= tol * 100.0
    count = (x > 0).sum(axis=1)
    return finite & nonneg & sums & (count >= rules.min_elements) & (count <= rules.max_elements)


def _check_palette(palette: Sequence[str], k: int) -> tuple[str, ...]:
    palette = tuple(palette)
    unknown = [el for el in palette if el not in PERIODIC_TABLE]
    if unknown:
        raise DesignSpaceError(f"palette has unknown element symbol(s) {unknown}")
    if len(set(palette)) != len(palette):
        raise DesignSpaceError(f"palette {list(palette)} repeats an element")
    if not (1 <= k <= len(palette)):
        raise DesignSpaceError(f"k must be between 1 and the palette size {len(palette)}, got {k}")
    return palette


def equimolar_space(palette: Sequence[str] = DEFAULT_PALETTE, k: int = 5) -> tuple[np.ndarray, tuple[str, ...]]:
    """All equimolar k-element alloys from a palette.

    Returns
    -------
    x : ndarray, shape (C(len(palette), k), len(palette))
        At.% (100 / k for each chosen element).
    elements : tuple of str
        The palette, the columns of ``x``.

    Examples
    --------
    >>> x, el = equimolar_space(["Nb", "Mo", "Ta", "W"], 4)
    >>> x.tolist(), el
    ([[25.0, 25.0, 25.0, 25.0]], ('Nb', 'Mo', 'Ta', 'W'))
    """
    palette = _check_palette(palette, k)
    n = math.comb(len(palette), k)
    if n > MAX_SPACE:
        raise DesignSpaceError(f"{n} equimolar {k}-element alloys is more than the limit {MAX_SPACE}")
    combos = np.array(list(itertools.combinations(range(len(palette)), k)), dtype=int).reshape(n, k)
    x = np.zeros((n, len(palette)))
    np.put_along_axis(x, combos, 100.0 / k, axis=1)
    return x, palette


def _grid_count(k: int, total: int, low: int, high: int) -> int:
    """How many integer k-vectors with entries in [low, high] sum to total (dynamic programming)."""
    if low > high:
        return 0
    ways = [1] + [0] * total
    for _ in range(k):
        ways = [sum(ways[s - u] for u in range(low, min(high, s) + 1)) for s in range(total + 1)]
    return ways[total]


def _simplex_grid(k: int, total: int, low: int, high: int) -> np.ndarray:
    """Integer k-vectors with entries in [low, high] that sum to total."""
    rows = [[]]
    for position in range(k):
        remaining = k - position - 1
        grown = []
        for row in rows:
            used = sum(row)
            lo = max(low, total - used - remaining * high)
            hi = min(high, total - used - remaining * low)
            grown.extend(row + [u] for u in range(lo, hi + 1))
        rows = grown
    return np.array(rows, dtype=int).reshape(-1, k)


def grid_space(palette: Sequence[str] = DEFAULT_PALETTE, k: int = 4, step: float = 5.0,
               min_percent: float = 5.0, max_percent: float = 35.0) -> tuple[np.ndarray, tuple[str, ...]]:
    """Non-equimolar alloys: every k-element subset of a palette on an at.% grid.

    Each chosen element gets a multiple of ``step`` at.% between
    ``min_percent`` and ``max_percent`` (5 to 35 at.% is the usual definition
    of a principal element of an HEA), and the amounts sum to 100.

    Returns
    -------
    x : ndarray, shape (alloys, len(palette))
        At.%.
    elements : tuple of str
        The palette, the columns of ``x``.

    Examples
    --------
    >>> x, el = grid_space(["Co", "Cr", "Ni"], 3, step=10, min_percent=20, max_percent=40)
    >>> formulas(x, el)
    ['Co20Cr40Ni40', 'Co30Cr30Ni40', 'Co30Cr40Ni30', 'Co40Cr20Ni40', 'Co40Cr30Ni30', 'Co40Cr40Ni20']
    """
    palette = _check_palette(palette, k)
    if not (step > 0 and abs(100.0 / step - round(100.0 / step)) < 1e-9):
        raise DesignSpaceError(f"step must be a positive at.% amount that divides 100, got {step}")
    if not (0 < min_percent <= max_percent <= 100):
        raise DesignSpaceError(f"need 0 < min_percent <= max_percent <= 100, got {min_percent} and {max_percent}")
    total = round(100.0 / step)
    low, high = math.ceil(min_percent / step - 1e-9), math.floor(max_percent / step + 1e-9)
    n = math.comb(len(palette), k) * _grid_count(k, total, low, high)
    if n == 0:
        raise DesignSpaceError(
            f"no {k}-element composition has every amount in [{min_percent}, {max_percent}] at.% "
            f"on a {step} at.% grid"
        )
    if n > MAX_SPACE:
        raise DesignSpaceError(
            f"the grid has {n} alloys, more than the limit {MAX_SPACE}: use a coarser step, a smaller "
            "palette or a narrower range"
        )
    grid = _simplex_grid(k, total, low, high)
    combos = np.array(list(itertools.combinations(range(len(palette)), k)), dtype=int)
    x = np.zeros((len(combos), len(grid), len(palette)))
    rows = np.arange(len(combos))[:, None, None]
    cells = np.arange(len(grid))[None, :, None]
    x[rows, cells, combos[:, None, :]] = grid[None, :, :] * step
    return x.reshape(-1, len(palette)), palette


def _amount_texts(values: np.ndarray, decimals: int) -> np.ndarray:
    """Canonical at.% texts (fixed decimals, trailing zeros dropped), formatted once per distinct value."""
    distinct, inverse = np.unique(np.rint(values * 10**decimals).astype(np.int64), return_inverse=True)
    texts = np.array([_percent_text(u / 10**decimals, decimals) for u in distinct.tolist()], dtype=object)
    return texts[inverse]


def formulas(x_percent: np.ndarray, vocabulary: Sequence[str], decimals: int = 4) -> list[str]:
    """Canonical formulas (see :func:`~pyro_hea.data.composition.canonical_formula`) of many rows.

    Rows on an at.% grid that sum to 100 (what :func:`realize` returns) are
    written in one vectorized pass; any other row falls back to
    :func:`~pyro_hea.data.composition.canonical_formula`, so the result is always
    the canonical formula.

    Examples
    --------
    >>> formulas(np.array([[50.0, 25.0, 25.0]]), ["Ni", "Fe", "Al"])
    ['Al25Fe25Ni50']
    """
    x = _as_matrix(x_percent)
    vocabulary = list(vocabulary)
    if x.shape[1] != len(vocabulary):
        raise DesignSpaceError(f"x_percent has {x.shape[1]} columns but the vocabulary has {len(vocabulary)}")
    if len(x) == 0:
        return []
    order = np.argsort(np.array(vocabulary, dtype=object))
    xs = x[:, order]
    symbols = np.array(vocabulary, dtype=object)[order]
    scale = 10**decimals
    on_grid = (np.all(np.abs(xs * scale - np.rint(xs * scale)) < 1e-6, axis=1)
               & (np.rint(xs * scale).sum(axis=1) == 100 * scale) & np.all(xs >= 0, axis=1))
    out = np.empty(len(x), dtype=object)
    fast = np.flatnonzero(on_grid)
    if len(fast):
        grid = xs[fast]
        rows, cols = np.nonzero(grid > 0)
        pieces = symbols[cols] + _amount_texts(grid[rows, cols], decimals)
        out[fast] = np.add.reduceat(pieces, np.searchsorted(rows, np.arange(len(fast))))
    for i in np.flatnonzero(~on_grid):
        out[i] = canonical_formula({el: v for el, v in zip(symbols, xs[i]) if v > 0}, decimals)
    return out.tolist()
