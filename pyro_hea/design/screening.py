"""Screening: score a list of alloys, or a generated design space, by q(target | x).

:class:`ScreeningMixin` gives :class:`~pyro_hea.design.designer.Designer`
its :meth:`~ScreeningMixin.screen` method.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from pyro_hea.data.composition import CompositionError, as_composition, canonical_formula
from pyro_hea.design.result import DesignError, DesignResult, one_thread
from pyro_hea.design.space import (
    DEFAULT_PALETTE,
    check_validity,
    equimolar_space,
    formulas,
    grid_space,
    principal_elements,
)

__all__ = ["ScreeningMixin"]


class ScreeningMixin:
    """High-throughput screening (a mixin of :class:`~pyro_hea.design.designer.Designer`)."""

    @one_thread
    def screen(self, alloys: Sequence | None = None, target=1, palette: Sequence[str] = DEFAULT_PALETTE,
               k: int = 5, grid_step: float | None = None, min_percent: float = 5.0,
               max_percent: float = 35.0) -> DesignResult:
        """Score a list of alloys, or a generated space, by q(target | x).

        Parameters
        ----------
        alloys : sequence of formulas or compositions, optional
            What to score. If None, a space generated from ``palette``:
            every equimolar ``k``-element alloy, or with ``grid_step`` every
            k-element alloy on that at.% grid with amounts in
            ``[min_percent, max_percent]``.
        target : int or str
            The target class.

        Returns
        -------
        DesignResult
            Rows sorted by ``p_model``, highest first; invalid, out-of-domain
            and unscored rows come last. ``input_index`` gives the input order.

        Examples
        --------
        >>> designer.screen(["CoCrFeMnNi", "CoCrFeMnNiB"]).table["scored"].tolist()  # needs a Designer on a trained model  # doctest: +SKIP
        [True, False]
        """
        started = time.perf_counter()
        target = self.class_index(target)
        if alloys is None:
            if grid_step is None:
                space, elements = equimolar_space(palette, k)
            else:
                space, elements = grid_space(palette, k, grid_step, min_percent, max_percent)
            names = None
        else:
            if isinstance(alloys, (str, dict)):
                alloys = [alloys]
            if len(alloys) == 0:
                raise DesignError("no alloys to screen")
            comps = []
            for i, alloy in enumerate(alloys):
                try:
                    comps.append(as_composition(alloy))
                except (CompositionError, ValueError, TypeError, OverflowError) as err:
                    # the error names the (shortened) formula; do not echo it twice
                    raise DesignError(f"alloy {i} cannot be read: {err}") from None
            elements = sorted({el for c in comps for el in c})
            space = np.array([[100.0 * c.get(el, 0.0) for el in elements] for c in comps])
            names = [canonical_formula(c) for c in comps]
        table, x, good, key = self._score_space(space, elements, target, names)
        order = np.argsort(-key, kind="stable")
        attrs = dict(table.attrs)
        table = table.iloc[order].reset_index(drop=True)
        table.attrs.update({k: v[order] for k, v in attrs.items()})
        seconds = time.perf_counter() - started
        summary = self.summarize(table, "screen", target, len(table), seconds)
        summary["flagged"] = int((~good[order]).sum())
        return DesignResult("screen", table, x[order], self.vocabulary, summary)

    def _score_space(self, space: np.ndarray, elements: Sequence[str], target: int,
                     names: Sequence[str] | None = None) -> tuple:
        """Score rows of at.% over ``elements``, unsorted: ``(table, x, good, key)``.

        ``key`` is the screen's ranking (highest first; sort stably by it, ties
        in input order), ``good`` the rows that are scored, in domain and valid.
        :meth:`screen` and the chunked screen of :mod:`pyro_hea.design.distributed`
        share it, so both rank alike.
        """
        x, outside = self._onto_vocabulary(space, elements)
        table = self.score(x, target, scorable=~outside.any(axis=1), names=names)
        if outside.any():
            oov = np.flatnonzero(outside.any(axis=1))
            extra = [e for e in elements if e not in self.vocabulary]
            for row in oov:
                missing = [extra[j] for j in np.flatnonzero(outside[row])]
                valid = bool(check_validity(space[row:row + 1], self.rules)[0])
                table.loc[row, "flag"] = "; ".join(filter(None, [
                    f"element(s) {missing} outside the model's vocabulary",
                    "" if valid else self._invalid_reason(space[row])]))
                table.loc[row, "valid"] = valid
                table.loc[row, "n_elements"] = int(principal_elements(space[row:row + 1], self.rules)[0])
            if names is None:
                table.loc[oov, "formula"] = formulas(space[oov], elements)
        x = np.where(outside.any(axis=1, keepdims=True), np.nan, x)
        table.insert(0, "input_index", np.arange(len(table)))
        good = (table["scored"] & table["in_domain"] & table["valid"]).to_numpy()
        key = np.where(good, table["p_model"].fillna(-1), -2.0 + table["p_model"].fillna(-1) / 10)
        return table, x, good, key

    def _onto_vocabulary(self, space: np.ndarray, elements: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Columns of ``space`` over ``elements`` moved onto the vocabulary, and the outside ones."""
        index = {el: i for i, el in enumerate(self.vocabulary)}
        inside = [j for j, el in enumerate(elements) if el in index]
        outside_cols = [j for j, el in enumerate(elements) if el not in index]
        x = np.zeros((len(space), len(self.vocabulary)))
        x[:, [index[elements[j]] for j in inside]] = space[:, inside]
        return x, space[:, outside_cols] > 0
