"""Alloy compositions: parse formulas, normalize, canonical strings, vectors.

A composition is a ``dict`` mapping element symbol to atomic (mole)
fraction, with fractions summing to 1. Formulas are accepted as people
write them::

    CoCrFeMnNi                 equimolar, implicit amounts of 1
    Al0.5CoCrFeNi              proportional amounts
    Fe17Ni17Cr17Co22Al17Mo8    atomic percent
    Al0.25 Co1 Fe1 Ni1         space separated (Borg et al. 2020 style)
    (CoCrFeNi)95Al5            a parenthesised group counts as one unit
    Al0CoCrFeNi                a zero amount: the element is absent (x = 0
                               of the AlxCoCrFeNi series)

A repeated element is summed (``CoCrFeNiNi`` is Co1Cr1Fe1Ni2). Full-width
forms (``ＦｅＮｉ``, as some East Asian keyboards type them) and subscript
digits (``Fe₂Ni``) are read as their ASCII counterparts. Any other non-ASCII
character is an error that names it: a Cyrillic ``С`` that looks like a
Latin ``C`` is not silently taken for carbon or cobalt, and a superscript
digit (``Fe²``, often a footnote mark) is not taken for an amount.
"""

from __future__ import annotations

from pyro_hea.errors import PyroHeaError

import math
import re
import unicodedata
from collections.abc import Mapping, Sequence

import numpy as np

from pyro_hea.data._canonical import _fixed_point_amounts, _percent_text, _read_back_error  # noqa: F401

__all__ = [
    "CompositionError",
    "PERIODIC_TABLE",
    "parse_formula",
    "formula_amounts",
    "normalize",
    "canonical_formula",
    "composition_key",
    "to_vector",
    "from_vector",
    "to_matrix",
    "as_composition",
    "sort_by_atomic_number",
]


class CompositionError(PyroHeaError):
    """A formula or composition vector that cannot be read as an alloy."""


#: The element symbols in order of atomic number (IUPAC, 118 elements).
PERIODIC_TABLE: tuple[str, ...] = tuple(
    """H He Li Be B C N O F Ne Na Mg Al Si P S Cl Ar K Ca Sc Ti V Cr Mn Fe Co Ni Cu Zn
    Ga Ge As Se Br Kr Rb Sr Y Zr Nb Mo Tc Ru Rh Pd Ag Cd In Sn Sb Te I Xe Cs Ba La Ce Pr
    Nd Pm Sm Eu Gd Tb Dy Ho Er Tm Yb Lu Hf Ta W Re Os Ir Pt Au Hg Tl Pb Bi Po At Rn Fr Ra
    Ac Th Pa U Np Pu Am Cm Bk Cf Es Fm Md No Lr Rf Db Sg Bh Hs Mt Ds Rg Cn Nh Fl Mc Lv Ts
    Og""".split()
)
_ATOMIC_NUMBER = {symbol: z for z, symbol in enumerate(PERIODIC_TABLE, start=1)}

_SYMBOL = re.compile(r"[A-Z][a-z]?")
_NUMBER = re.compile(r"\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?", re.ASCII)

# Full-width ASCII variants (U+FF01..U+FF5E), the ideographic space and
# subscript digits map to plain ASCII; nothing else is normalised.
_TO_ASCII = {code: code - 0xFEE0 for code in range(0xFF01, 0xFF5F)}
_TO_ASCII[0x3000] = ord(" ")
_TO_ASCII.update({0x2080 + d: ord(str(d)) for d in range(10)})
_SUPERSCRIPT_DIGITS = "\u00b9\u00b2\u00b3\u2070\u2074\u2075\u2076\u2077\u2078\u2079"
_MINUS_SIGNS = "\u2212\u2013\u2014\u2010\u2011\ufe63\u207b\u208b"

#: Inputs longer than this many characters are shortened in error messages.
MESSAGE_CHARS = 60


def _show(text: str, limit: int = MESSAGE_CHARS) -> str:
    """``repr`` of an input for an error message, shortened if it is long."""
    if not isinstance(text, str) or len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text):,} characters)"


def _fail(formula: str, pos: int, problem: str) -> CompositionError:
    return CompositionError(f"formula {_show(formula)}: {problem} at position {pos}")


def _non_ascii(formula: str, pos: int) -> CompositionError:
    char = formula[pos]
    name = unicodedata.name(char, f"U+{ord(char):04X}")
    if char in _SUPERSCRIPT_DIGITS:
        return _fail(formula, pos, f"superscript digit {char!r} ({name}): write amounts as plain digits, "
                                   "e.g. 'Fe2Ni'")
    if char in _MINUS_SIGNS:
        return _fail(formula, pos, f"{char!r} ({name}): negative amounts are not allowed")
    if char.isalpha():
        return _fail(formula, pos, f"non-ASCII letter {char!r} ({name}): element symbols use only the "
                                   "Latin letters A-Z and a-z")
    return _fail(formula, pos, f"unexpected non-ASCII character {char!r} ({name})")


def _read_amount(formula: str, pos: int) -> tuple[float | None, int]:
    """Read an optional amount after a symbol or a closing parenthesis."""
    if formula.startswith("-", pos):
        raise _fail(formula, pos, "negative amounts are not allowed")
    low = formula[pos : pos + 3].lower()
    if low in ("nan", "inf"):
        raise _fail(formula, pos, f"amount {formula[pos:pos + 3]!r} is not a finite number")
    match = _NUMBER.match(formula, pos)
    if match is None:
        return None, pos
    value = float(match.group())
    if not math.isfinite(value):
        raise _fail(formula, pos, f"amount {_show(match.group(), 20)} is not a finite number")
    return value, match.end()


def _too_large(formula: str, pos: int) -> CompositionError:
    return _fail(formula, pos, "the amounts are too large: their sum overflows a float; scale them down")


def _add(formula: str, pos: int, into: dict[str, float], element: str, amount: float) -> None:
    total = into.get(element, 0.0) + amount
    if not math.isfinite(total):
        raise _too_large(formula, pos)
    into[element] = total


def formula_amounts(formula: str) -> dict[str, float]:
    """The amounts of a formula as written, before normalizing.

    Zero amounts are kept (as ``0.0``), so that a caller can tell
    ``Al0CoCrFeNi`` from ``CoCrFeNi``; :func:`parse_formula` drops them.

    Raises
    ------
    CompositionError
        As :func:`parse_formula`.

    Examples
    --------
    >>> formula_amounts("Al0CoCrFeNi")
    {'Al': 0.0, 'Co': 1.0, 'Cr': 1.0, 'Fe': 1.0, 'Ni': 1.0}
    """
    if not isinstance(formula, str):
        raise CompositionError(f"formula must be a string, got {type(formula).__name__}: {_show(formula)}")
    if not formula.strip():
        raise CompositionError(f"formula {_show(formula)} is empty")
    original = formula
    formula = formula.translate(_TO_ASCII)
    stack: list[dict[str, float]] = [{}]
    pos = 0
    n = len(formula)
    try:
        while pos < n:
            char = formula[pos]
            if char.isspace():
                pos += 1
            elif not char.isascii():
                raise _non_ascii(formula, pos)
            elif char == "(":
                stack.append({})
                pos += 1
            elif char == ")":
                if len(stack) == 1:
                    raise _fail(formula, pos, "unmatched ')'")
                group = stack.pop()
                if not group:
                    raise _fail(formula, pos, "empty parentheses")
                start = pos
                amount, pos = _read_amount(formula, pos + 1)
                amount = 1.0 if amount is None else amount
                total = math.fsum(group.values())
                for element, part in group.items():
                    _add(formula, start, stack[-1], element, part / total * amount if total > 0 else 0.0)
            elif char.isupper():
                symbol = _SYMBOL.match(formula, pos).group()
                if symbol not in _ATOMIC_NUMBER:
                    raise _fail(formula, pos, f"unknown element symbol {symbol!r}")
                amount, end = _read_amount(formula, pos + len(symbol))
                _add(formula, pos, stack[-1], symbol, 1.0 if amount is None else amount)
                pos = end
            elif char.islower():
                start = pos
                while start > 0 and formula[start - 1].isascii() and formula[start - 1].isalpha():
                    start -= 1
                end = pos
                while end < n and formula[end].isascii() and formula[end].isalpha():
                    end += 1
                word = formula[start:end]
                if word.lower() in ("nan", "inf", "infinity"):
                    raise _fail(formula, start, f"amount {word!r} is not a finite number")
                raise _fail(
                    formula, pos,
                    f"lower-case {char!r} does not start an element symbol (symbols begin with a capital "
                    "letter, e.g. 'Co', not 'co')",
                )
            elif char.isdigit() or char == ".":
                raise _fail(formula, pos, "an amount must follow an element symbol or ')'")
            elif char == "-":
                raise _fail(formula, pos, "negative amounts are not allowed")
            else:
                raise _fail(formula, pos, f"unexpected character {char!r}")
    except OverflowError:  # math.fsum of a group whose amounts overflow
        raise _too_large(formula, pos) from None
    except CompositionError as err:
        if formula != original:  # name the input as the user wrote it
            raise CompositionError(str(err).replace(_show(formula), _show(original), 1)) from None
        raise
    if len(stack) > 1:
        raise CompositionError(f"formula {_show(original)}: unmatched '('")
    if not stack[0]:
        raise CompositionError(f"formula {_show(original)} contains no element")
    return stack[0]


def parse_formula(formula: str) -> dict[str, float]:
    """Parse an alloy formula into atomic fractions.

    Parameters
    ----------
    formula : str
        The formula, e.g. ``"Al0.5CoCrFeNi"``. Element symbols must be
        capitalised as in the periodic table. A zero amount
        (``"Al0CoCrFeNi"``) means the element is absent.

    Returns
    -------
    dict of str to float
        Atomic fractions summing to 1, in order of first appearance;
        elements with a zero amount are left out.

    Raises
    ------
    CompositionError
        If the formula is empty, has an unknown or lower-case symbol, a
        negative or non-finite amount, amounts whose sum overflows, only
        zero amounts, an unmatched parenthesis, a non-ASCII letter or
        superscript digit, or any stray character. The message names the
        formula (shortened if it is long) and the problem.

    Examples
    --------
    >>> parse_formula("Al0.5CoCrFeNi")["Al"]
    0.1111111111111111
    >>> parse_formula("Al0.25 Co1 Fe1 Ni1") == parse_formula("AlCo4Fe4Ni4")
    True
    >>> parse_formula("Al0CoCrFeNi") == parse_formula("CoCrFeNi")
    True
    """
    return normalize(formula_amounts(formula), name=formula)


def normalize(amounts: Mapping[str, float], name: str | None = None) -> dict[str, float]:
    """Scale positive amounts to atomic fractions that sum to 1.

    Parameters
    ----------
    amounts : mapping of str to float
        Amounts of each element in any proportional unit.
    name : str, optional
        How to name the input in an error message.

    Examples
    --------
    >>> normalize({"Fe": 1, "Ni": 3})
    {'Fe': 0.25, 'Ni': 0.75}
    """
    if name is not None:
        label = _show(name)
    else:
        label = repr(dict(amounts))
        if len(label) > 2 * MESSAGE_CHARS:
            label = f"{label[:2 * MESSAGE_CHARS]}... ({len(amounts):,} elements)"
    for element, value in amounts.items():
        if element not in _ATOMIC_NUMBER:
            raise CompositionError(f"composition {label}: unknown element symbol {element!r}")
        if not isinstance(value, (int, float, np.integer, np.floating)) or not math.isfinite(value):
            raise CompositionError(f"composition {label}: amount of {element} is {value!r}, not a finite number")
        if value < 0:
            raise CompositionError(f"composition {label}: amount of {element} is negative ({value})")
    try:
        total = math.fsum(float(v) for v in amounts.values())
    except OverflowError:
        total = math.inf
    if not math.isfinite(total):
        raise CompositionError(
            f"composition {label}: the amounts are too large: their sum overflows a float; scale them down"
        )
    if total <= 0:
        raise CompositionError(f"composition {label}: all amounts are zero")
    return {el: float(v) / total for el, v in amounts.items() if v > 0}


def as_composition(alloy: str | Mapping[str, float]) -> dict[str, float]:
    """Return atomic fractions for a formula string or an amount mapping.

    Examples
    --------
    >>> as_composition({"Fe": 2, "Ni": 2})
    {'Fe': 0.5, 'Ni': 0.5}
    """
    if isinstance(alloy, str):
        return parse_formula(alloy)
    if isinstance(alloy, Mapping):
        return normalize(alloy)
    raise CompositionError(f"an alloy must be a formula string or a mapping, got {type(alloy).__name__}")


def sort_by_atomic_number(elements) -> list[str]:
    """Element symbols ordered by atomic number.

    Examples
    --------
    >>> sort_by_atomic_number(["Ni", "Al", "Fe"])
    ['Al', 'Fe', 'Ni']
    """
    return sorted(elements, key=lambda el: _ATOMIC_NUMBER[el])


def canonical_formula(alloy: str | Mapping[str, float], decimals: int = 4) -> str:
    """A unique string for a composition: elements alphabetical, amounts in at.%.

    The amounts are rounded to ``decimals`` places. The string is a fixed
    point, ``canonical_formula(canonical_formula(x)) == canonical_formula(x)``,
    and parsing it gives back every at.% amount to within one step of
    ``10**-decimals`` (so every atomic fraction to within 1e-6 at the
    default 4 places). Plain rounding gives both in almost every case; where
    it does not (the rounded amounts sum too far from 100 for the
    renormalization on parsing to reproduce them), each amount is rounded
    up or down instead, equal amounts alike, to the nearest choice that does.

    Parameters
    ----------
    alloy : str or mapping
        A formula or a composition.
    decimals : int
        Decimal places kept in the at.% amounts.

    Examples
    --------
    >>> canonical_formula("Al0.5CoCrFeNi")
    'Al11.1111Co22.2222Cr22.2222Fe22.2222Ni22.2222'
    >>> canonical_formula("NiFe")
    'Fe50Ni50'
    >>> canonical_formula("Al0.5CoCrCuFeNiV0.4")
    'Al8.4746Co16.9491Cr16.9491Cu16.9491Fe16.9491Ni16.9491V6.7797'
    """
    composition = as_composition(alloy)
    elements = sorted(composition)
    exact = [100.0 * composition[el] for el in elements]
    amounts = [_percent_text(x, decimals) for x in exact]
    amounts = ["" if a in ("", "0") else a for a in amounts]
    error = _read_back_error(exact, amounts, decimals)
    if error is None or error > 10.0**-decimals:
        amounts = _fixed_point_amounts(exact, decimals)
    return "".join(f"{el}{a}" for el, a in zip(elements, amounts) if a)


def composition_key(alloy: str | Mapping[str, float]) -> str:
    """Key used to deduplicate alloys: the canonical formula at 0.01 at.%.

    Examples
    --------
    >>> composition_key("Al0.5Cr0.5") == composition_key("CrAl")
    True
    """
    return canonical_formula(alloy, decimals=2)


def to_vector(alloy: str | Mapping[str, float], vocabulary: Sequence[str]) -> np.ndarray:
    """Composition as a vector of at.% over an element vocabulary (sums to 100).

    Raises
    ------
    CompositionError
        If the alloy has an element outside ``vocabulary``.

    Examples
    --------
    >>> to_vector("FeNi3", ["Fe", "Co", "Ni"]).tolist()
    [25.0, 0.0, 75.0]
    """
    composition = as_composition(alloy)
    index = {el: i for i, el in enumerate(vocabulary)}
    outside = sorted(set(composition) - set(index))
    if outside:
        raise CompositionError(
            f"alloy {canonical_formula(composition)} has element(s) {outside} outside the "
            f"vocabulary of {len(vocabulary)} elements"
        )
    vector = np.zeros(len(vocabulary))
    for element, fraction in composition.items():
        vector[index[element]] = 100.0 * fraction
    return vector


def to_matrix(alloys: Sequence[str | Mapping[str, float]], vocabulary: Sequence[str]) -> np.ndarray:
    """Stack :func:`to_vector` over many alloys into an (alloys, elements) array.

    Examples
    --------
    >>> to_matrix(["Fe", "FeNi"], ["Fe", "Ni"]).tolist()
    [[100.0, 0.0], [50.0, 50.0]]
    """
    if len(alloys) == 0:
        return np.zeros((0, len(vocabulary)))
    return np.stack([to_vector(a, vocabulary) for a in alloys])


def from_vector(
    vector: Sequence[float], vocabulary: Sequence[str], min_percent: float = 0.0
) -> dict[str, float]:
    """Composition from a vector of amounts over a vocabulary.

    Parameters
    ----------
    vector : sequence of float
        Non-negative amounts, one per element of ``vocabulary`` (any scale).
    vocabulary : sequence of str
        Element symbols.
    min_percent : float
        Elements below this at.% are dropped before renormalizing.

    Raises
    ------
    CompositionError
        If the vector has the wrong length, a negative or NaN entry, or
        nothing left above ``min_percent``.

    Examples
    --------
    >>> from_vector([25.0, 0.0, 75.0], ["Fe", "Co", "Ni"])
    {'Fe': 0.25, 'Ni': 0.75}
    """
    values = np.asarray(vector, dtype=float)
    if values.ndim != 1 or len(values) != len(vocabulary):
        raise CompositionError(
            f"composition vector has shape {values.shape}, expected ({len(vocabulary)},) "
            "to match the vocabulary"
        )
    if not np.all(np.isfinite(values)):
        bad = [vocabulary[i] for i in np.flatnonzero(~np.isfinite(values))]
        raise CompositionError(f"composition vector has NaN or infinite amounts for {bad}")
    if np.any(values < 0):
        bad = [vocabulary[i] for i in np.flatnonzero(values < 0)]
        raise CompositionError(f"composition vector has negative amounts for {bad}")
    with np.errstate(over="ignore"):
        total = values.sum()
    if not np.isfinite(total):
        raise CompositionError("composition vector amounts are too large: their sum overflows a float; scale them down")
    if total <= 0:
        raise CompositionError("composition vector is all zero")
    percent = 100.0 * values / total
    keep = {vocabulary[i]: float(percent[i]) for i in range(len(values)) if percent[i] > max(min_percent, 0.0)}
    if not keep:
        raise CompositionError(f"no element of the composition vector is above {min_percent} at.%")
    return normalize(keep)
