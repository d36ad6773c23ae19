"""The 8 physics descriptors against hand values and hea-bench's own functions."""

from __future__ import annotations

import math

import hea_bench
import numpy as np
import pytest
from hea_bench.descriptors.elements import element_data

from pyro_hea.data.composition import CompositionError, parse_formula, to_matrix
from pyro_hea.data.descriptors import (
    DESCRIPTOR_LABELS,
    DESCRIPTOR_NAMES,
    DESCRIPTOR_UNITS,
    UncoveredElementError,
    covered_elements,
    descriptors,
    element_table,
    featurize,
)

R = 8.314  # J/(mol K), the gas constant as hea-bench rounds it (CODATA 8.314462618)

ALLOYS = [
    "CoCrFeMnNi",
    "Al0.5CoCrFeNi",
    "Mo0.5Nb0.5TaTi",
    "Fe17Ni17Cr17Co22Al17Mo8",
    "HfNbTaTiZr",
    "Al0.3CoCrFeNiTi0.1Si0.05",
    "AuCuPdPt",
    "W",
]


def reference(formula):
    """Every descriptor from hea-bench's scalar functions and element table."""
    comp = parse_formula(formula)
    table = element_data()["elements"]
    return {
        "k": sum(c * table[el]["bulk_modulus_gpa"] for el, c in comp.items()),
        "Vm": sum(c * table[el]["molar_volume_cm3"] for el, c in comp.items()),
        "Tm": hea_bench.melting_temperature(comp),
        "VEC": hea_bench.vec(comp),
        "delta": hea_bench.delta(comp),
        "delta_chi": hea_bench.delta_chi(comp),
        "dS_mix": hea_bench.smix(comp),
        "dH_mix": hea_bench.mixing_enthalpy(comp),
    }


def test_names_units_labels():
    assert DESCRIPTOR_NAMES == ("k", "Vm", "Tm", "VEC", "delta", "delta_chi", "dS_mix", "dH_mix")
    assert set(DESCRIPTOR_UNITS) == set(DESCRIPTOR_NAMES) == set(DESCRIPTOR_LABELS)
    assert DESCRIPTOR_UNITS["dS_mix"] == "J/(mol K)" and DESCRIPTOR_UNITS["dH_mix"] == "kJ/mol"


def test_cantor_alloy_by_hand():
    d = descriptors("CoCrFeMnNi")
    assert d["dS_mix"] == pytest.approx(R * math.log(5), rel=1e-12)
    assert round(d["dS_mix"], 2) == 13.38
    assert d["dS_mix"] == pytest.approx(8.314462618 * math.log(5), abs=1e-3)
    assert d["VEC"] == pytest.approx(8.0)  # (9 + 6 + 8 + 7 + 10) / 5
    assert list(d) == list(DESCRIPTOR_NAMES)


def test_pure_element_has_no_mismatch_or_mixing():
    d = descriptors("Fe")
    assert d["delta"] == 0.0 and d["delta_chi"] == 0.0 and d["dH_mix"] == 0.0
    assert d["dS_mix"] == 0.0 and math.copysign(1.0, d["dS_mix"]) == 1.0  # no -0.0


@pytest.mark.parametrize("formula", ALLOYS)
def test_equals_hea_bench(formula):
    ours = descriptors(formula)
    ref = reference(formula)
    for name in DESCRIPTOR_NAMES:
        assert ours[name] == pytest.approx(ref[name], rel=1e-9, abs=1e-9), name


def test_featurize_matches_row_by_row():
    vocab = sorted({el for f in ALLOYS for el in parse_formula(f)})
    x = to_matrix(ALLOYS, vocab)
    feats = featurize(x, vocab)
    assert feats.shape == (len(ALLOYS), 8)
    for row, formula in zip(feats, ALLOYS):
        np.testing.assert_allclose(row, [descriptors(formula)[n] for n in DESCRIPTOR_NAMES], rtol=1e-10, atol=1e-10)
    # rows are normalized, so fractions and at.% give the same answer
    np.testing.assert_allclose(featurize(x / 100.0, vocab), feats, rtol=1e-12, atol=1e-12)
    assert featurize(np.zeros((0, len(vocab))), vocab).shape == (0, 8)


@pytest.mark.parametrize("element, vec", [("Hf", 4), ("Ta", 5), ("W", 6), ("Au", 11)])
def test_5d_vec_convention(element, vec):
    """The HEA convention, not the filled-4f count (Hf 18, Ta 19, W 20, Au 25)."""
    assert descriptors(element)["VEC"] == vec


def test_covered_elements():
    covered = covered_elements()
    assert len(covered) == 55
    for el in ("Al", "Co", "Cr", "Fe", "Ni", "Mo", "Nb", "Ta", "W", "Hf", "Zr", "Ti", "V"):
        assert el in covered
    for el in ("B", "C", "N", "P", "Ba"):
        assert el not in covered


@pytest.mark.parametrize("formula, element", [("FeB", "B"), ("FeBa", "Ba"), ("CoCrFeNiC0.1", "C")])
def test_uncovered_element_is_named(formula, element):
    with pytest.raises(UncoveredElementError, match=rf"element\(s\) \['{element}'\]"):
        descriptors(formula)


def test_uncovered_element_in_featurize_and_table():
    with pytest.raises(UncoveredElementError, match=r"\['B'\]"):
        featurize(np.array([[1.0, 0.0]]), ["Fe", "B"])
    with pytest.raises(UncoveredElementError, match=r"\['N', 'P'\]"):
        element_table(["Fe", "N", "P"])
    assert issubclass(UncoveredElementError, CompositionError)


def test_missing_pair_enthalpy_is_named():
    with pytest.raises(UncoveredElementError, match="Th-U"):
        descriptors("ThU")


def test_element_table_pairs():
    props, pairs = element_table(["Al", "Ni"])
    assert float(pairs[0, 1]) == -22.0 == float(pairs[1, 0])
    assert np.all(np.diag(pairs) == 0)
    assert props["VEC"].tolist() == [3.0, 10.0]


@pytest.mark.parametrize(
    "x, problem",
    [
        (np.array([[50.0, np.nan]]), "NaN or infinite"),
        (np.array([[50.0, np.inf]]), "NaN or infinite"),
        (np.array([[50.0, -1.0]]), "negative"),
        (np.array([[50.0, 50.0], [0.0, 0.0]]), r"rows \[1\] have all-zero"),
        (np.array([50.0, 50.0]), r"shape \(2,\), expected \(alloys, 2\)"),
        (np.array([[30.0, 30.0, 40.0]]), r"shape \(1, 3\), expected \(alloys, 2\)"),
    ],
)
def test_featurize_rejects_bad_input(x, problem):
    with pytest.raises(CompositionError, match=problem):
        featurize(x, ["Fe", "Ni"])


# ---------------------------------------------------------------------------
# properties (hypothesis): finite, permutation- and scale-invariant
# ---------------------------------------------------------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from pyro_hea.data.descriptors import _missing_pairs  # noqa: E402

_COVERED = sorted(covered_elements())
_NO_PAIR = _missing_pairs()


@st.composite
def compositions(draw):
    elements = draw(st.lists(st.sampled_from(_COVERED), min_size=1, max_size=8, unique=True))
    if any(pair <= set(elements) for pair in _NO_PAIR):
        elements = elements[:1]
    amounts = draw(st.lists(st.floats(1e-3, 1e3), min_size=len(elements), max_size=len(elements)))
    return elements, np.array(amounts)


@settings(max_examples=150, deadline=None)
@given(compositions(), st.randoms(use_true_random=False), st.floats(1e-6, 1e6))
def test_descriptors_are_finite_permutation_and_scale_invariant(comp, rng, scale):
    elements, amounts = comp
    base = featurize(amounts[None, :], elements)[0]
    assert np.isfinite(base).all()
    assert base[6] >= 0.0 and base[4] >= 0.0 and base[5] >= 0.0  # dS_mix, delta, delta_chi
    order = list(range(len(elements)))
    rng.shuffle(order)
    shuffled = featurize(amounts[order][None, :], [elements[i] for i in order])[0]
    np.testing.assert_allclose(shuffled, base, rtol=1e-9, atol=1e-9)
    scaled = featurize(scale * amounts[None, :], elements)[0]
    np.testing.assert_allclose(scaled, base, rtol=1e-9, atol=1e-9)
    # the one-alloy helper agrees with the vectorized path
    one = descriptors(dict(zip(elements, amounts.tolist())))
    np.testing.assert_allclose([one[name] for name in DESCRIPTOR_NAMES], base, rtol=1e-9, atol=1e-9)


def test_featurize_overflowing_amounts_is_a_composition_error():
    with pytest.raises(CompositionError, match=r"alloy rows \[1\] have amounts whose sum overflows"):
        featurize(np.array([[1.0, 1.0], [1e308, 1e308]]), ["Fe", "Ni"])
