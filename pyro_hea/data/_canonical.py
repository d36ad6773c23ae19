"""Rounding behind :func:`~pyro_hea.data.composition.canonical_formula`: at.% amounts that read back to themselves."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence


def _percent_text(value: float, decimals: int) -> str:
    """At.% amount as canonical text: fixed decimals, trailing zeros dropped."""
    text = f"{value:.{max(decimals, 0)}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _units_text(units: int, decimals: int) -> str:
    """An integer number of ``10**-decimals`` at.% steps as canonical text."""
    if decimals <= 0:
        return str(units)
    scale = 10**decimals
    return f"{units // scale}.{units % scale:0{decimals}d}".rstrip("0").rstrip(".")


def _read_back_error(exact: Sequence[float], amounts: Sequence[str], decimals: int) -> float | None:
    """How far parsing ``amounts`` lands from ``exact`` (both in at.%).

    Returns None unless parsing the amounts and formatting them again gives
    the same text. This repeats exactly the arithmetic of
    :func:`parse_formula` (amounts divided by their ``math.fsum``) and the
    formatting of :func:`canonical_formula`. An empty amount stands for an
    element dropped because it rounds to zero.
    """
    values = [float(a) if a else 0.0 for a in amounts]
    total = math.fsum(values)
    if total <= 0:
        return None
    back = [100.0 * (v / total) for v in values]
    if any(a and _percent_text(b, decimals) != a for a, b in zip(amounts, back)):
        return None
    return max(abs(b - e) for b, e in zip(back, exact))


def _fixed_point_amounts(exact: Sequence[float], decimals: int) -> list[str]:
    """At.% texts, each ``exact`` rounded down or up to the ``decimals`` grid,
    that read back to themselves and to within one grid step of ``exact``.

    Equal amounts are rounded alike, so an equimolar alloy keeps equal
    amounts. Of the candidates the one closest to ``exact`` wins; if none
    exists, the amounts are rounded by largest remainder to sum to exactly
    100, which always reads back.
    """
    scale = 10**decimals
    step = 1.0 / scale
    scaled = [x * scale for x in exact]
    groups: dict[float, list[int]] = {}
    for i, x in enumerate(scaled):
        groups.setdefault(round(x, 6), []).append(i)
    keys = list(groups)
    if len(keys) <= 10:
        choices = [sorted({u for u in (math.floor(k), math.ceil(k)) if u > 0}) or [1] for k in keys]
        best: tuple[float, list[str]] | None = None
        for combo in itertools.product(*choices):
            units = [0] * len(exact)
            for key, u in zip(keys, combo):
                for i in groups[key]:
                    units[i] = u
            amounts = [_units_text(u, decimals) for u in units]
            error = _read_back_error(exact, amounts, decimals)
            if error is not None and error <= step and (best is None or error < best[0]):
                best = (error, amounts)
        if best is not None:
            return best[1]
    units = [math.floor(x) for x in scaled]
    short = 100 * scale - sum(units)
    order = sorted(range(len(exact)), key=lambda i: units[i] - scaled[i])
    for i in order[: max(0, min(short, len(exact)))]:
        units[i] += 1
    return [_units_text(u, decimals) if u > 0 else "" for u in units]
