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
    "MAX_SPACE",
    "MAX_STREAMED_SPACE",
    "RADIOACTIVE",
    "CompositionRules",
    "DesignSpaceError",
    "check_validity",
    "equimolar_space",
    "formulas",
    "grid_space",
    "principal_elements",
    "realize",
]

#: The common HEA elements: Al, the 3d transition metals Ti to Cu, and the
#: refractory metals Zr, Nb, Mo, Hf, Ta, W.
DEFAULT_PALETTE: tuple[str, ...] = ("Al", "Ti", "V", "Cr", "Mn", "Fe", "Co", "Ni", "Cu",
                                    "Zr", "Nb", "Mo", "Hf", "Ta", "W")

#: Elements without a stable isotope (Tc, Pm, and Po onwards: Th, U, Np, Pu, ...). A decoded
#: alloy never holds one unless :attr:`CompositionRules.allow_radioactive` is set.
RADIOACTIVE: tuple[str, ...] = ("Tc", "Pm") + PERIODIC_TABLE[PERIODIC_TABLE.index("Po"):]

#: Refuse to enumerate generated spaces larger than this many alloys.
MAX_SPACE = 2_000_000

#: Refuse to screen, even in chunks, generated spaces larger than this many alloys (at some
#: 10,000 alloys per second and worker, 10^9 alloys is more than a day of one worker).
MAX_STREAMED_SPACE = 1_000_000_000


class DesignSpaceError(PyroHeaError):
    """Bad settings of a design space or of the composition rules."""


@dataclass
class CompositionRules:
    """What makes a candidate composition realistic and valid.

    The defaults are a **high-entropy target**: at least 4 principal elements,
    each at 5 at.% or more, drawn (in decoded alloys) from the common HEA
    elements of :data:`DEFAULT_PALETTE`, never a radioactive one.

    Attributes
    ----------
    min_percent : float
        The smallest amount of a *principal* element, in at.% (5 at.%, the
        usual lower bound of a principal element of an HEA). :func:`realize`
        drops elements below it, and :func:`check_validity` does not count
        them (a minor addition, e.g. the 1 ppm of Ni in Fe100000000Ni1).
    resolution : float
        At.% grid that :func:`realize` rounds to; 100 / resolution must be an
        integer (1 at.% by default: what an alloy is usually specified to).
    max_percent : float
        The largest amount of any one element in a valid candidate, in at.%
        (100 by default: no bound; 35 is the usual upper share of an HEA's
        principal element, after Yeh et al. 2004).
    min_elements, max_elements : int
        Bounds on the number of principal elements of a valid candidate
        (4 to 8 by default). :func:`realize` keeps at most ``max_elements``
        (the largest); set ``cap_elements`` False to only check the bound.
    cap_elements : bool
        Whether :func:`realize` drops the smallest elements beyond
        ``max_elements``.
    palette : tuple of str or None
        The elements a *decoded* alloy may contain (:data:`DEFAULT_PALETTE`
        by default); None allows the model's whole vocabulary. The designer
        restricts the decoder's element probabilities to them.
    exclude : tuple of str
        Elements a decoded alloy may not contain, on top of the palette.
    allow_radioactive : bool
        Allow the :data:`RADIOACTIVE` elements in decoded alloys (False by
        default, whatever the palette). Screened alloys are scored as given.

    Examples
    --------
    >>> CompositionRules(resolution=0.5).units
    200
    >>> CompositionRules(palette=None).allowed(["Fe", "Th", "U", "Ni"]).tolist()
    [True, False, False, True]
    """

    min_percent: float = 5.0
    max_percent: float = 100.0
    resolution: float = 1.0
    min_elements: int = 4
    max_elements: int = 8
    cap_elements: bool = True
    palette: tuple[str, ...] | None = DEFAULT_PALETTE
    exclude: tuple[str, ...] = ()
    allow_radioactive: bool = False

    def __post_init__(self):
        self.exclude = tuple(self.exclude)
        if self.palette is not None:
            if isinstance(self.palette, str):
                raise DesignSpaceError(f"palette must be a sequence of element symbols, got the string {self.palette!r}")
            self.palette = tuple(self.palette)
            if not self.palette:
                raise DesignSpaceError("the palette is empty; give at least one element, or None for every element")
        for name, elements in (("exclude", self.exclude), ("palette", self.palette or ())):
            unknown = [el for el in elements if el not in PERIODIC_TABLE]
            if unknown:
                raise DesignSpaceError(f"{name} has unknown element symbol(s) {unknown}")
        for name in ("min_percent", "max_percent", "resolution"):
            if not isinstance(getattr(self, name), (int, float)) or not math.isfinite(getattr(self, name)):
                raise DesignSpaceError(f"{name} must be a finite number of at.%, got {getattr(self, name)!r}")
        if not (0.0 <= self.min_percent < 100.0):
            raise DesignSpaceError(f"min_percent must be in [0, 100), got {self.min_percent}")
        if not (self.min_percent < self.max_percent <= 100.0):
            raise DesignSpaceError(f"max_percent must be above min_percent ({self.min_percent:g}) and at most 100, "
                                   f"got {self.max_percent}")
        if not (self.resolution > 0 and abs(100.0 / self.resolution - round(100.0 / self.resolution)) < 1e-9):
            raise DesignSpaceError(
                f"resolution must be a positive at.% step that divides 100 (e.g. 1, 0.5, 0.1), got {self.resolution}"
            )
        if not (1 <= int(self.min_elements) <= int(self.max_elements)):
            raise DesignSpaceError(
                f"need 1 <= min_elements <= max_elements, got {self.min_elements} and {self.max_elements}"
            )
        self.min_elements, self.max_elements = int(self.min_elements), int(self.max_elements)
        if self.max_elements * self.max_percent < 100.0 - 1e-9:
            raise DesignSpaceError(
                f"no alloy of at most {self.max_elements} elements has every element at {self.max_percent:g} at.% "
                "or less: raise max_elements or max_percent"
            )
        if self.min_elements * self.min_percent > 100.0 + 1e-9:
            raise DesignSpaceError(
                f"no alloy has {self.min_elements} elements of at least {self.min_percent:g} at.% each: "
                "lower min_elements or min_percent"
            )

    @property
    def units(self) -> int:
        """Number of resolution steps in 100 at.%."""
        return round(100.0 / self.resolution)

    def allowed(self, vocabulary: Sequence[str]) -> np.ndarray:
        """Which elements of ``vocabulary`` a decoded alloy may contain (a bool array)."""
        return np.array([(self.palette is None or el in self.palette) and el not in self.exclude
                         and (self.allow_radioactive or el not in RADIOACTIVE) for el in vocabulary], dtype=bool)

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


def principal_elements(x_percent: np.ndarray, rules: CompositionRules | None = None) -> np.ndarray:
    """Number of principal elements of each row: amounts of at least ``rules.min_percent`` at.%.

    Rows are renormalized to 100 first; an element below ``min_percent`` (a
    minor addition) does not count.

    Examples
    --------
    >>> principal_elements(np.array([[1e8, 1.0, 0.0], [50.0, 45.0, 5.0]])).tolist()
    [1, 3]
    """
    rules = rules or CompositionRules()
    x = np.nan_to_num(_as_matrix(x_percent), nan=0.0, posinf=0.0, neginf=0.0)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        total = x.sum(axis=1, keepdims=True)
        x = np.where(total > 0, 100.0 * x / np.where(total > 0, total, 1.0), 0.0)
    return ((x > 0) & (x >= rules.min_percent * (1 - 1e-6))).sum(axis=1)


def check_validity(x_percent: np.ndarray, rules: CompositionRules | None = None, tol: float = 1e-6) -> np.ndarray:
    """Whether each composition is a valid candidate.

    A row is valid when its entries are finite and non-negative, they sum to
    100 at.% (fractions sum to 1) within ``tol``, and its number of
    principal elements (:func:`principal_elements`: at least
    ``rules.min_percent`` at.%) is within ``[rules.min_elements,
    rules.max_elements]``, and no element exceeds ``rules.max_percent``.
    The same rule applies to a pure element and to Fe100000000Ni1: both
    have one principal element.

    Examples
    --------
    >>> rules = CompositionRules(min_elements=2)
    >>> check_validity(np.array([[50.0, 50.0, 0], [100.0, 0, 0], [60.0, 50.0, -10.0], [99.0, 1.0, 0]]),
    ...                rules).tolist()
    [True, False, False, False]
    """
    rules = rules or CompositionRules()
    x = _as_matrix(x_percent)
    finite = np.all(np.isfinite(x), axis=1)
    x = np.where(np.isfinite(x), x, 0.0)
    nonneg = np.all(x >= 0, axis=1)
    with np.errstate(over="ignore", invalid="ignore"):
        sums = np.abs(x.sum(axis=1) - 100.0) <= tol * 100.0
    count = principal_elements(x, rules)
    with np.errstate(over="ignore", invalid="ignore"):
        share = x.max(axis=1, initial=0.0) <= rules.max_percent * (1 + tol)
    return finite & nonneg & sums & (count >= rules.min_elements) & (count <= rules.max_elements) & share


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


def _count_text(n: int) -> str:
    """A count for a message: digits up to 10**12, else a power of ten."""
    return f"{n:,}" if n < 10**12 else f"about 10^{len(str(n)) - 1}"


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
        raise DesignSpaceError(f"{_count_text(n)} equimolar {k}-element alloys is more than the limit {MAX_SPACE:,}")
    combos = np.array(list(itertools.combinations(range(len(palette)), k)), dtype=int).reshape(n, k)
    x = np.zeros((n, len(palette)))
    np.put_along_axis(x, combos, 100.0 / k, axis=1)
    return x, palette


def _grid_count(k: int, total: int, low: int, high: int) -> int:
    """How many integer k-vectors with entries in [low, high] sum to total.

    Inclusion-exclusion over the entries that exceed ``high`` (stars and
    bars): k + 1 terms of exact integer arithmetic, whatever the grid size.

    Examples
    --------
    >>> _grid_count(3, 10, 2, 5)
    12
    """
    if low > high or k < 1:
        return 0
    free, width = total - k * low, high - low + 1
    if free < 0:
        return 0
    return sum((-1) ** j * math.comb(k, j) * math.comb(free - j * width + k - 1, k - 1)
               for j in range(k + 1) if free - j * width >= 0)


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
    if not (math.isfinite(step) and step > 0 and abs(100.0 / step - round(100.0 / step)) < 1e-9):
        raise DesignSpaceError(f"step must be a positive at.% amount that divides 100, got {step}")
    if not (0 < min_percent <= max_percent <= 100):
        raise DesignSpaceError(f"need 0 < min_percent <= max_percent <= 100, got {min_percent} and {max_percent}")
    total = round(100.0 / step)
    low, high = math.ceil(min_percent / step - 1e-9), math.floor(max_percent / step + 1e-9)
    n = math.comb(len(palette), k) * _grid_count(k, total, low, high)  # counted, not enumerated
    if n == 0:
        raise DesignSpaceError(
            f"no {k}-element composition has every amount in [{min_percent}, {max_percent}] at.% "
            f"on a {step} at.% grid"
        )
    if n > MAX_SPACE:
        raise DesignSpaceError(
            f"a {step:g} at.% grid of {k}-element alloys from {len(palette)} elements has {_count_text(n)} "
            f"alloys, more than the limit {MAX_SPACE:,}: use a coarser step, a smaller palette or a narrower range"
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
