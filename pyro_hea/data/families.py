"""Alloy families assigned from composition by documented rules.

Each element belongs to at most one group:

==============  ======================================================
family          elements
==============  ======================================================
3d-transition   Cr Mn Fe Co Ni Cu (the Cantor-alloy family)
refractory      Ti V Zr Nb Mo Hf Ta W Re
precious        Ru Rh Pd Ag Os Ir Pt Au
light           Li Be Mg Al Si Ca Sc Zn
other           every other element (rare earths, Y, Sn, Ga, ...)
==============  ======================================================

An alloy's family is the group with the largest summed atomic fraction
(ties go to the earlier row). Cr is counted with the 3d metals and Ti
and V with the refractories, as in the usual HEA literature split between
Cantor-type and Senkov-type alloys.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

__all__ = ["FAMILIES", "FAMILY_ELEMENTS", "family_of", "family_matrix", "families_from_fractions"]

FAMILY_ELEMENTS: dict[str, frozenset[str]] = {
    "3d-transition": frozenset("Cr Mn Fe Co Ni Cu".split()),
    "refractory": frozenset("Ti V Zr Nb Mo Hf Ta W Re".split()),
    "precious": frozenset("Ru Rh Pd Ag Os Ir Pt Au".split()),
    "light": frozenset("Li Be Mg Al Si Ca Sc Zn".split()),
}
#: Family names, in the order of their index.
FAMILIES: tuple[str, ...] = (*FAMILY_ELEMENTS, "other")


def family_matrix(vocabulary: Sequence[str]) -> np.ndarray:
    """(elements, families) 0/1 matrix assigning each element to its group.

    Examples
    --------
    >>> family_matrix(["Fe", "W"]).argmax(axis=1).tolist()
    [0, 1]
    """
    out = np.zeros((len(vocabulary), len(FAMILIES)))
    for i, element in enumerate(vocabulary):
        j = next((k for k, group in enumerate(FAMILY_ELEMENTS.values()) if element in group), len(FAMILIES) - 1)
        out[i, j] = 1.0
    return out


def families_from_fractions(x: torch.Tensor, membership: torch.Tensor) -> torch.Tensor:
    """Family index of each alloy from compositions ``x`` (alloys, elements).

    Examples
    --------
    >>> m = torch.tensor(family_matrix(["Fe", "W"]), dtype=torch.float)
    >>> families_from_fractions(torch.tensor([[80.0, 20.0], [10.0, 90.0]]), m).tolist()
    [0, 1]
    """
    return (x @ membership).argmax(dim=-1)


def family_of(composition: Mapping[str, float]) -> str:
    """Family name of one composition.

    Examples
    --------
    >>> family_of({"Nb": 0.25, "Mo": 0.25, "Ta": 0.25, "W": 0.25})
    'refractory'
    >>> family_of({"Co": 0.2, "Cr": 0.2, "Fe": 0.2, "Mn": 0.2, "Ni": 0.2})
    '3d-transition'
    """
    vocabulary = list(composition)
    shares = np.array([composition[el] for el in vocabulary]) @ family_matrix(vocabulary)
    return FAMILIES[int(np.argmax(shares))]
