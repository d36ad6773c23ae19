"""The eight physics descriptors f(x) of an alloy, vectorized.

Over atomic fractions :math:`c_i` of the elements in an alloy:

=========  =====================================================  ===========
name       definition                                             unit
=========  =====================================================  ===========
k          :math:`\\sum_i c_i K_i`, bulk modulus                   GPa
Vm         :math:`\\sum_i c_i V_i`, molar volume                   cm^3/mol
Tm         :math:`\\sum_i c_i T_{m,i}`, melting point              K
VEC        :math:`\\sum_i c_i VEC_i`, valence electrons            e/atom
delta      :math:`100\\sqrt{\\sum_i c_i (1 - r_i/\\bar r)^2}`        %
delta_chi  :math:`\\sqrt{\\sum_i c_i (\\chi_i - \\bar\\chi)^2}`        Pauling
dS_mix     :math:`-R \\sum_i c_i \\ln c_i`                          J/(mol K)
dH_mix     :math:`\\sum_{i<j} 4 c_i c_j \\Delta H_{ij}`             kJ/mol
=========  =====================================================  ===========

Every per-element number comes from hea-bench's curated tables
(:func:`hea_bench.descriptors.elements.element_data`: CN12 metallic radii,
CRC melting points, Pauling electronegativities, s+d valence electrons with
the HEA convention Hf 4, Ta 5, W 6, Au 11, and matminer's Miedema molar
volumes and bulk moduli) and its Miedema / Takeuchi-Inoue pair enthalpies.
Nothing is copied by hand. The formulas match hea-bench's scalar functions,
which the tests check; this module evaluates them for a whole dataset at
once with array algebra.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache

import numpy as np

from pyro_hea.data.composition import CompositionError, as_composition

__all__ = [
    "DESCRIPTOR_NAMES",
    "DESCRIPTOR_UNITS",
    "DESCRIPTOR_LABELS",
    "UncoveredElementError",
    "covered_elements",
    "element_table",
    "descriptors",
    "featurize",
]

DESCRIPTOR_NAMES: tuple[str, ...] = ("k", "Vm", "Tm", "VEC", "delta", "delta_chi", "dS_mix", "dH_mix")
DESCRIPTOR_UNITS: dict[str, str] = {
    "k": "GPa", "Vm": "cm^3/mol", "Tm": "K", "VEC": "e/atom", "delta": "%",
    "delta_chi": "Pauling", "dS_mix": "J/(mol K)", "dH_mix": "kJ/mol",
}
DESCRIPTOR_LABELS: dict[str, str] = {
    "k": "bulk modulus k (GPa)", "Vm": "molar volume Vm (cm³/mol)",
    "Tm": "melting point Tm (K)", "VEC": "VEC (e/atom)", "delta": "size mismatch δ (%)",
    "delta_chi": "electronegativity mismatch Δχ", "dS_mix": "ΔS_mix (J/mol K)",
    "dH_mix": "ΔH_mix (kJ/mol)",
}

from hea_bench.constants import R as GAS_CONSTANT  # J/(mol K), hea-bench's value


class UncoveredElementError(CompositionError):
    """An alloy has an element without descriptor data in hea-bench's tables."""


@lru_cache(maxsize=1)
def _tables() -> tuple[tuple[str, ...], dict[str, np.ndarray], np.ndarray]:
    from hea_bench.descriptors.data.pair_enthalpies import pair_enthalpy
    from hea_bench.descriptors.elements import element_data

    data = element_data()["elements"]
    elements = tuple(
        el for el, row in sorted(data.items())
        if row["supports"]["mixing_enthalpy_pairs"]
        and row["bulk_modulus_gpa"] and row["molar_volume_cm3"]
    )
    columns = {
        "K": "bulk_modulus_gpa", "V": "molar_volume_cm3", "Tm": "melting_K",
        "VEC": "valence", "r": "radius_pm", "chi": "electronegativity",
    }
    props = {key: np.array([float(data[el][col]) for el in elements]) for key, col in columns.items()}
    def pair(a: str, b: str) -> float:
        try:
            return pair_enthalpy(a, b)
        except KeyError:  # a few pairs (e.g. Th-U) have no Miedema value
            return np.nan

    pairs = np.array([[pair(a, b) for b in elements] for a in elements])
    return elements, props, pairs


def covered_elements() -> tuple[str, ...]:
    """Elements with every property the descriptors need (55 in hea-bench 2.9.0).

    Examples
    --------
    >>> "Co" in covered_elements(), "B" in covered_elements()
    (True, False)
    """
    return _tables()[0]


def _missing_pairs() -> list[frozenset[str]]:
    """Covered element pairs without a Miedema mixing enthalpy (Th-U in 2.9.0)."""
    elements, _, pairs = _tables()
    return [
        frozenset((elements[i], elements[j]))
        for i, j in np.argwhere(np.isnan(pairs)) if i < j
    ]


def element_table(elements: Sequence[str]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Per-element properties and the pair-enthalpy matrix for a vocabulary.

    Raises
    ------
    UncoveredElementError
        Naming the elements that hea-bench has no data for.

    Examples
    --------
    >>> props, pairs = element_table(["Al", "Ni"])
    >>> float(pairs[0, 1])
    -22.0
    """
    covered, props, pairs = _tables()
    index = {el: i for i, el in enumerate(covered)}
    missing = [el for el in elements if el not in index]
    if missing:
        raise UncoveredElementError(
            f"no descriptor data for element(s) {missing}; hea-bench covers "
            f"{len(covered)} elements (B, C, N and P are among those it lacks)"
        )
    idx = np.array([index[el] for el in elements], dtype=int)
    return {k: v[idx] for k, v in props.items()}, pairs[np.ix_(idx, idx)]


def featurize(fractions: np.ndarray, vocabulary: Sequence[str]) -> np.ndarray:
    """The 8 descriptors of many alloys at once.

    Parameters
    ----------
    fractions : ndarray, shape (alloys, elements)
        Non-negative amounts per element of ``vocabulary``; each row is
        normalized to fractions (so at.% works too).
    vocabulary : sequence of str
        Element symbols of the columns.

    Returns
    -------
    ndarray, shape (alloys, 8)
        Columns in the order of :data:`DESCRIPTOR_NAMES`.

    Examples
    --------
    >>> x = np.array([[20.0, 20, 20, 20, 20]])
    >>> f = featurize(x, ["Co", "Cr", "Fe", "Mn", "Ni"])
    >>> round(float(f[0, 3]), 2), round(float(f[0, 6]), 2)
    (8.0, 13.38)
    """
    x = np.asarray(fractions, dtype=float)
    if x.ndim != 2 or x.shape[1] != len(vocabulary):
        raise CompositionError(
            f"fractions has shape {x.shape}, expected (alloys, {len(vocabulary)})"
        )
    if not np.all(np.isfinite(x)):
        raise CompositionError("fractions contain NaN or infinite values")
    if np.any(x < 0):
        raise CompositionError("fractions contain negative values")
    with np.errstate(over="ignore"):
        totals = x.sum(axis=1, keepdims=True)
    if not np.all(np.isfinite(totals)):
        rows = np.flatnonzero(~np.isfinite(totals[:, 0])).tolist()[:5]
        raise CompositionError(f"alloy rows {rows} have amounts whose sum overflows a float; scale them down")
    if np.any(totals <= 0):
        rows = np.flatnonzero(totals[:, 0] <= 0).tolist()[:5]
        raise CompositionError(f"alloy rows {rows} have all-zero composition")
    c = x / totals
    props, pairs = element_table(vocabulary)
    k = c @ props["K"]
    vm = c @ props["V"]
    tm = c @ props["Tm"]
    vec = c @ props["VEC"]
    r_mean = c @ props["r"]
    delta = 100.0 * np.sqrt(np.sum(c * (1.0 - props["r"][None, :] / r_mean[:, None]) ** 2, axis=1))
    chi_mean = c @ props["chi"]
    delta_chi = np.sqrt(np.clip(np.sum(c * (props["chi"][None, :] - chi_mean[:, None]) ** 2, axis=1), 0, None))
    with np.errstate(divide="ignore", invalid="ignore"):
        clnc = np.where(c > 0, c * np.log(np.where(c > 0, c, 1.0)), 0.0)
    ds_mix = -GAS_CONSTANT * clnc.sum(axis=1) + 0.0  # + 0.0 turns -0.0 into 0.0
    missing_pair = np.isnan(pairs)
    if missing_pair.any():
        present = (c > 0).astype(float)
        hit = np.einsum("ni,ij,nj->n", present, missing_pair.astype(float), present) > 0
        if hit.any():
            i, j = np.argwhere(missing_pair & (present[np.argmax(hit)][:, None] > 0)
                               & (present[np.argmax(hit)][None, :] > 0))[0]
            raise UncoveredElementError(
                f"{int(hit.sum())} alloy(s) contain an element pair without a Miedema "
                f"mixing enthalpy, e.g. {vocabulary[i]}-{vocabulary[j]}"
            )
        pairs = np.nan_to_num(pairs)
    # sum_{i<j} 4 c_i c_j H_ij = 2 c^T H c, since H is symmetric with a zero diagonal
    dh_mix = 2.0 * np.einsum("ni,ij,nj->n", c, pairs, c)
    return np.stack([k, vm, tm, vec, delta, delta_chi, ds_mix, dh_mix], axis=1)


def descriptors(alloy: str | Mapping[str, float]) -> dict[str, float]:
    """The 8 descriptors of one alloy, by name.

    Examples
    --------
    >>> d = descriptors("CoCrFeMnNi")
    >>> round(d["dS_mix"], 2), d["VEC"]
    (13.38, 8.0)
    """
    composition = as_composition(alloy)
    vocabulary = sorted(composition)
    row = featurize(np.array([[composition[el] for el in vocabulary]]), vocabulary)[0]
    return {name: float(v) for name, v in zip(DESCRIPTOR_NAMES, row)}
