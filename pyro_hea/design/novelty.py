"""How new a candidate is: composition novelty and descriptor extrapolation.

Composition distance
    The distance between two compositions :math:`a, b` in at.% is half their
    L1 distance, :math:`d(a, b) = \\tfrac12 \\sum_i |a_i - b_i|`, the total
    variation distance in at.%: the share of atoms that must change element
    to turn one alloy into the other. It lies in [0, 100]: 0 for the same
    alloy, 100 for alloys without a shared element. Al0.5CoCrFeNi and
    Al0.6CoCrFeNi are 1.9 at.% apart; CoCrFeNi and CoCrFeMnNi are 20.

Novelty
    A candidate is *novel* when its distance to the nearest reference alloy
    is more than a threshold (:data:`NOVELTY_THRESHOLD`, 5 at.%: a variant
    that moves fewer than 5 % of the atoms of a known alloy is not counted as
    new). :class:`NoveltyIndex` finds the nearest reference alloy exactly.

Descriptor domain
    :class:`DescriptorDomain` flags candidates whose physics descriptors lie
    outside the range spanned by the model's training alloys (widened by a
    margin), where the classifier extrapolates.

Examples
--------
>>> index = NoveltyIndex(np.array([[25.0, 25, 25, 25, 0]]), ["CoCrFeNi"])
>>> distance, name = index.query(np.array([[20.0, 20, 20, 20, 20]]))
>>> float(distance[0]), name[0]
(20.0, 'CoCrFeNi')
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pyro_hea.data.descriptors import DESCRIPTOR_NAMES
from pyro_hea.errors import PyroHeaError

__all__ = ["NOVELTY_THRESHOLD", "DescriptorDomain", "NoveltyIndex", "composition_distance"]

#: Default novelty threshold: composition distance in at.% (see the module docstring).
NOVELTY_THRESHOLD = 5.0


def composition_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Half the L1 distance between compositions in at.% (rows broadcast).

    Examples
    --------
    >>> float(composition_distance(np.array([50.0, 50, 0]), np.array([50.0, 0, 50])))
    50.0
    """
    return 0.5 * np.abs(np.asarray(a, dtype=float) - np.asarray(b, dtype=float)).sum(axis=-1)


class NoveltyIndex:
    r"""Exact nearest reference alloy of many candidates by composition distance.

    Parameters
    ----------
    reference : ndarray, shape (alloys, elements)
        Reference compositions in at.% (rows sum to 100), e.g. every alloy of
        the training data.
    names : sequence of str
        A name per reference alloy (its canonical formula).
    chunk : int
        Candidates compared at once (memory: chunk x elements-per-candidate x
        reference alloys floats).

    Notes
    -----
    For compositions that sum to 100, :math:`\tfrac12 \sum_i |a_i - b_i| =
    100 - \sum_i \min(a_i, b_i)`, and the minimum is zero outside the
    support of the candidate. Candidates have few elements, so only those
    columns are compared: exact, and much faster than a dense distance matrix.

    Examples
    --------
    >>> index = NoveltyIndex(np.array([[50.0, 50, 0], [0, 50, 50]]), ["AB", "BC"])
    >>> index.query(np.array([[40.0, 60, 0]]))[1]
    ['AB']
    """

    def __init__(self, reference: np.ndarray, names: Sequence[str], chunk: int = 64):
        reference = np.asarray(reference, dtype=float)
        if reference.ndim != 2 or len(reference) == 0:
            raise PyroHeaError(f"the novelty reference must be a non-empty (alloys, elements) matrix, got {reference.shape}")
        if len(names) != len(reference):
            raise PyroHeaError(f"{len(names)} names for {len(reference)} reference alloys")
        if not np.allclose(reference.sum(axis=1), 100.0, atol=1e-4):
            raise PyroHeaError("the novelty reference rows must be compositions in at.% summing to 100")
        self.reference_t = np.ascontiguousarray(reference.T, dtype=np.float32)  # (elements, alloys)
        self.names = np.asarray(list(names), dtype=object)
        self.chunk = int(chunk)

    def query(self, x_percent: np.ndarray) -> tuple[np.ndarray, list[str]]:
        """Distance (at.%) to, and name of, the nearest reference alloy of each row.

        Rows need not sum to 100: they are renormalized first.
        """
        x = np.asarray(x_percent, dtype=float)
        if x.ndim != 2 or x.shape[1] != self.reference_t.shape[0]:
            raise PyroHeaError(
                f"candidates have shape {x.shape}; expected (alloys, {self.reference_t.shape[0]}) over the reference's elements"
            )
        if len(x) == 0:
            return np.zeros(0), []
        x = 100.0 * x / x.sum(axis=1, keepdims=True)
        m = max(1, int((x > 0).sum(axis=1).max()))
        n_el = x.shape[1]
        idx = np.argpartition(-x, m - 1, axis=1)[:, :m] if m < n_el else np.broadcast_to(np.arange(n_el), x.shape)
        vals = np.take_along_axis(x, idx, axis=1).astype(np.float32)
        distance = np.empty(len(x))
        nearest = np.empty(len(x), dtype=np.int64)
        for start in range(0, len(x), self.chunk):
            stop = start + self.chunk
            shared = np.minimum(vals[start:stop, :, None], self.reference_t[idx[start:stop]]).sum(axis=1)
            best = shared.argmax(axis=1)
            nearest[start:stop] = best
            distance[start:stop] = 100.0 - np.take_along_axis(shared, best[:, None], axis=1)[:, 0]
        return np.clip(distance, 0.0, 100.0), self.names[nearest].tolist()


class DescriptorDomain:
    """The descriptor range of the training alloys, to flag extrapolation.

    A candidate is *in domain* when each of its 8 descriptors lies within
    ``[min - margin * range, max + margin * range]`` of the training rows.

    Parameters
    ----------
    descriptors : ndarray, shape (alloys, 8)
        Raw descriptors of the training alloys.
    margin : float
        Widening of each range, as a fraction of its width (default 0.05).

    Examples
    --------
    >>> dom = DescriptorDomain(np.array([[0.0] * 8, [1.0] * 8]), margin=0.0)
    >>> ok, why = dom.check(np.array([[0.5] * 8, [0.5] * 7 + [2.0]]))
    >>> ok.tolist(), why
    ([True, False], ['', 'dH_mix above the training range'])
    """

    def __init__(self, descriptors: np.ndarray, margin: float = 0.05):
        d = np.asarray(descriptors, dtype=float)
        if d.ndim != 2 or d.shape[1] != len(DESCRIPTOR_NAMES) or len(d) < 2:
            raise PyroHeaError(f"the descriptor domain needs (alloys >= 2, 8) descriptors, got {d.shape}")
        if margin < 0:
            raise PyroHeaError(f"the domain margin must be non-negative, got {margin}")
        low, high = d.min(axis=0), d.max(axis=0)
        width = high - low
        self.margin = float(margin)
        self.low, self.high = low - margin * width, high + margin * width

    def check(self, descriptors: np.ndarray) -> tuple[np.ndarray, list[str]]:
        """``(in_domain, reason)``: a bool per row, and which descriptors left the range."""
        d = np.asarray(descriptors, dtype=float)
        below, above = d < self.low, d > self.high
        outside = below | above | ~np.isfinite(d)
        ok = ~outside.any(axis=1)
        reasons = [""] * len(d)
        for row in np.flatnonzero(~ok):
            where = np.where(below[row], "below", np.where(above[row], "above", "undefined in"))
            parts = [f"{name} {where[j]} the training range"
                     for j, name in enumerate(DESCRIPTOR_NAMES) if outside[row, j]]
            reasons[row] = "; ".join(parts)
        return ok, reasons
