"""Parsing, normalizing, canonical strings and vectors of compositions."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyro_hea.data.composition import (
    PERIODIC_TABLE,
    CompositionError,
    as_composition,
    canonical_formula,
    composition_key,
    from_vector,
    normalize,
    parse_formula,
    sort_by_atomic_number,
    to_matrix,
    to_vector,
)
from pyro_hea.errors import PyroHeaError


def approx_dict(expected, abs=1e-12):
    return pytest.approx(expected, abs=abs)


# ---------------------------------------------------------------------------
# well-formed formulas
# ---------------------------------------------------------------------------

def test_error_class_is_a_value_error():
    assert issubclass(CompositionError, PyroHeaError)
    assert issubclass(CompositionError, ValueError)


def test_equimolar_cantor_alloy():
    comp = parse_formula("CoCrFeMnNi")
    assert list(comp) == ["Co", "Cr", "Fe", "Mn", "Ni"]  # order of first appearance
    assert comp == approx_dict(dict.fromkeys(["Co", "Cr", "Fe", "Mn", "Ni"], 0.2))


def test_proportional_amounts():
    comp = parse_formula("Al0.5CoCrFeNi")
    assert comp["Al"] == pytest.approx(0.5 / 4.5)
    for el in ("Co", "Cr", "Fe", "Ni"):
        assert comp[el] == pytest.approx(1 / 4.5)


def test_two_half_amounts():
    comp = parse_formula("Mo0.5Nb0.5TaTi")
    assert comp == approx_dict({"Mo": 1 / 6, "Nb": 1 / 6, "Ta": 1 / 3, "Ti": 1 / 3})


def test_atomic_percent_string():
    comp = parse_formula("Fe17Ni17Cr17Co22Al17Mo8")
    expected = {"Fe": 17, "Ni": 17, "Cr": 17, "Co": 22, "Al": 17, "Mo": 8}
    assert comp == approx_dict({k: v / 98 for k, v in expected.items()})


def test_space_separated_borg_style():
    comp = parse_formula("Al0.25 Co1 Fe1 Ni1")
    assert comp == approx_dict({"Al": 0.25 / 3.25, "Co": 1 / 3.25, "Fe": 1 / 3.25, "Ni": 1 / 3.25})
    assert comp == approx_dict(parse_formula("AlCo4Fe4Ni4"))


def test_repeated_element_is_summed():
    comp = parse_formula("CoCrFeNiNi")
    assert comp == approx_dict({"Co": 0.2, "Cr": 0.2, "Fe": 0.2, "Ni": 0.4})
    assert parse_formula("Fe0.5NiFe0.5") == approx_dict({"Fe": 0.5, "Ni": 0.5})


def test_parenthesised_group_counts_as_one_unit():
    comp = parse_formula("(CoCrFeNi)95Al5")
    assert comp == approx_dict({"Co": 0.2375, "Cr": 0.2375, "Fe": 0.2375, "Ni": 0.2375, "Al": 0.05})
    # nested groups, and a group without an amount counts as 1
    assert parse_formula("((FeNi)3Co)Al") == approx_dict(
        {"Fe": 0.75 / 2 / 2, "Ni": 0.75 / 2 / 2, "Co": 0.25 / 2, "Al": 0.5}
    )


def test_single_element_and_scientific_amounts():
    assert parse_formula("W") == {"W": 1.0}
    assert parse_formula("Fe1e-1Ni.1") == approx_dict({"Fe": 0.5, "Ni": 0.5})
    assert parse_formula("  Fe\tNi  ") == approx_dict({"Fe": 0.5, "Ni": 0.5})


def test_fractions_sum_to_one():
    for formula in ("CoCrFeMnNi", "Al0.3CoCrFeNiTi0.1Si0.05", "Fe17Ni17Cr17Co22Al17Mo8"):
        assert math.fsum(parse_formula(formula).values()) == pytest.approx(1.0, abs=1e-12)


def test_normalize_and_as_composition():
    assert normalize({"Fe": 1, "Ni": 3}) == {"Fe": 0.25, "Ni": 0.75}
    assert normalize({"Fe": np.float32(2.0), "Ni": np.int64(2)}) == {"Fe": 0.5, "Ni": 0.5}
    assert normalize({"Fe": 1.0, "Ni": 0.0}) == {"Fe": 1.0}  # zero amounts are dropped
    assert as_composition({"Fe": 2, "Ni": 2}) == {"Fe": 0.5, "Ni": 0.5}
    assert as_composition("NiFe") == {"Ni": 0.5, "Fe": 0.5}
    with pytest.raises(CompositionError, match="formula string or a mapping"):
        as_composition(42)


def test_sort_by_atomic_number():
    assert sort_by_atomic_number(["Ni", "Al", "W", "Fe"]) == ["Al", "Fe", "Ni", "W"]
    assert len(PERIODIC_TABLE) == 118 and PERIODIC_TABLE[25] == "Fe"


# ---------------------------------------------------------------------------
# canonical strings
# ---------------------------------------------------------------------------

def test_canonical_formula():
    assert canonical_formula("Al0.5CoCrFeNi") == "Al11.1111Co22.2222Cr22.2222Fe22.2222Ni22.2222"
    assert canonical_formula("NiFe") == "Fe50Ni50"
    assert canonical_formula("CoCrFeMnNi") == "Co20Cr20Fe20Mn20Ni20"
    assert canonical_formula({"Ni": 3, "Fe": 1}) == "Fe25Ni75"
    assert canonical_formula("W") == "W100"
    # the same composition written differently has the same canonical string
    assert canonical_formula("Al0.25 Co1 Fe1 Ni1") == canonical_formula("NiFe4Co4Ni3Al")
    assert canonical_formula("FeNi", decimals=0) == "Fe50Ni50"


def test_canonical_formula_is_a_fixed_point_where_plain_rounding_is_not():
    # Plain rounding gives Al8.4746 + 5 x 16.9492 + V6.7797 = 100.0003, which
    # parses back to 16.94915 -> 16.9491, so it would not be a fixed point.
    canon = canonical_formula("Al0.5CoCrCuFeNiV0.4")
    assert canon == "Al8.4746Co16.9491Cr16.9491Cu16.9491Fe16.9491Ni16.9491V6.7797"
    assert canonical_formula(canon) == canon
    back = parse_formula(canon)
    exact = parse_formula("Al0.5CoCrCuFeNiV0.4")
    assert max(abs(back[el] - exact[el]) for el in exact) <= 1e-6


def test_composition_key_merges_equal_compositions():
    assert composition_key("Al0.5Cr0.5") == composition_key("CrAl") == "Al50Cr50"
    assert composition_key("Fe33.333Ni66.667") == composition_key("FeNi2")
    assert composition_key("FeNi") != composition_key("FeNi2")


# ---------------------------------------------------------------------------
# vectors
# ---------------------------------------------------------------------------

VOCAB = ["Al", "Co", "Cr", "Fe", "Ni", "Mn"]


def test_to_vector_in_atomic_percent():
    v = to_vector("Al0.5CoCrFeNi", VOCAB)
    assert v.shape == (6,)
    assert v.sum() == pytest.approx(100.0)
    assert v[0] == pytest.approx(100 / 9)
    assert v[5] == 0.0
    assert to_vector("FeNi3", ["Fe", "Co", "Ni"]).tolist() == [25.0, 0.0, 75.0]


def test_to_vector_rejects_element_outside_vocabulary():
    with pytest.raises(CompositionError, match=r"\['Mo'\] outside the vocabulary"):
        to_vector("FeNiMo", ["Fe", "Ni"])


def test_vector_round_trip():
    for formula in ("CoCrFeMnNi", "Al0.5CoCrFeNi", "Fe17Ni17Cr17Co22Al17Mn8", "Ni"):
        comp = parse_formula(formula)
        back = from_vector(to_vector(formula, VOCAB), VOCAB)
        assert set(back) == set(comp)
        assert back == approx_dict(comp)
    # any scale works on the way back
    assert from_vector([1.0, 0, 0, 0, 3.0, 0], VOCAB) == {"Al": 0.25, "Ni": 0.75}


def test_from_vector_min_percent_drops_traces():
    comp = from_vector([0.5, 0, 0, 49.75, 49.75, 0], VOCAB, min_percent=1.0)
    assert comp == approx_dict({"Fe": 0.5, "Ni": 0.5})


def test_to_matrix_round_trip():
    alloys = ["CoCrFeMnNi", "Al0.5CoCrFeNi", {"Fe": 1, "Ni": 1}]
    m = to_matrix(alloys, VOCAB)
    assert m.shape == (3, 6)
    np.testing.assert_allclose(m.sum(axis=1), 100.0)
    for row, alloy in zip(m, alloys):
        assert from_vector(row, VOCAB) == approx_dict(as_composition(alloy))
    assert to_matrix([], VOCAB).shape == (0, 6)


# ---------------------------------------------------------------------------
# malformed input: each raises CompositionError naming the input and problem
# ---------------------------------------------------------------------------

MALFORMED = [
    # (formula, regex for the problem)
    ("", "is empty"),
    ("   ", "is empty"),
    ("\t\n", "is empty"),
    ("Xx", "unknown element symbol 'Xx'"),
    ("Cx", "unknown element symbol 'Cx'"),
    ("Qq0.5Fe", "unknown element symbol 'Qq'"),
    ("FeNiXx2", "unknown element symbol 'Xx' at position 4"),
    ("cocrfemnni", "lower-case 'c' does not start an element symbol"),
    ("Fe0.5ni", "lower-case 'n' .*capital letter"),
    ("co", "capital letter"),
    ("Fe0", "all amounts are zero"),
    ("Fe0Ni0.0", "all amounts are zero"),
    ("(FeNi)0", "all amounts are zero"),
    ("Fe-1Ni", "negative amounts are not allowed"),
    ("Fe0.5Ni-0.5", "negative amounts are not allowed at position 7"),
    ("-FeNi", "negative amounts are not allowed at position 0"),
    ("Fe nan", "amount 'nan' is not a finite number"),
    ("Fe0.5 Ni inf", "amount 'inf' is not a finite number"),
    ("Fenan", "amount 'nan' is not a finite number"),
    ("FeInf", "amount 'Inf' is not a finite number"),
    ("Fe1e999Ni", "amount '1e999' is not a finite number"),
    ("Fe$Ni", r"unexpected character '\$' at position 2"),
    ("Fe_Ni", "unexpected character '_'"),
    ("Fe,Ni", "unexpected character ','"),
    ("Ta_Th", "unexpected character '_'"),
    ("Fe/Ni", "unexpected character '/'"),
    ("Fe+Ni", "unexpected character '[+]'"),
    ("Fe*2", r"unexpected character '\*'"),
    ("(FeNi", r"unmatched '\('"),
    ("Fe(Ni", r"unmatched '\('"),
    ("FeNi)", r"unmatched '\)' at position 4"),
    ("(FeNi))2", r"unmatched '\)'"),
    ("()Fe", "empty parentheses"),
    ("5Fe", r"an amount must follow an element symbol or '\)' at position 0"),
    ("0.5FeNi", "an amount must follow an element symbol"),
    (".5Fe", "an amount must follow an element symbol"),
    ("Fe1.2.3", "an amount must follow an element symbol"),
    ("Fe1e308Ni1e308", "amounts are too large: their sum overflows"),
    ("Fe1e308Fe1e308", "amounts are too large: their sum overflows"),
    ("(Fe1e308Ni1e308)2Co", "amounts are too large: their sum overflows"),
    ("\u0421oCrFeNi", "non-ASCII letter '\u0421' [(]CYRILLIC CAPITAL LETTER ES[)].*Latin letters A-Z"),
    ("Fe\u00b2Ni", "superscript digit '\u00b2' [(]SUPERSCRIPT TWO[)]: write amounts as plain digits"),
    ("Fe\u2212Ni", "negative amounts are not allowed"),
    ("Fe\u0663", "non-ASCII character '\u0663' [(]ARABIC-INDIC DIGIT THREE[)]"),
    ("\u00c5Fe", "non-ASCII letter"),
    ("\uff26\uff45\uff04", r"unexpected character '\$'"),
]


@pytest.mark.parametrize("formula, problem", MALFORMED, ids=[repr(f) for f, _ in MALFORMED])
def test_malformed_formula(formula, problem):
    with pytest.raises(CompositionError, match=problem) as info:
        parse_formula(formula)
    # the message names the input
    assert repr(formula) in str(info.value)
    # and the canonical string and other entry points refuse it the same way
    with pytest.raises(ValueError):
        canonical_formula(formula)


def test_at_least_thirty_malformed_inputs():
    assert len(MALFORMED) + len(NOT_A_STRING) + len(BAD_VECTORS) + len(BAD_MAPPINGS) >= 30
    assert len(MALFORMED) >= 30


NOT_A_STRING = [None, 3.5, 7, ["Fe"], b"FeNi"]


@pytest.mark.parametrize("value", NOT_A_STRING, ids=repr)
def test_non_string_formula(value):
    with pytest.raises(CompositionError, match="formula must be a string, got " + type(value).__name__):
        parse_formula(value)


BAD_VECTORS = [
    ([20.0, -1.0, 20, 20, 20, 21], r"negative amounts for \['Co'\]"),
    ([20.0, 20, float("nan"), 20, 20, 20], r"NaN or infinite amounts for \['Cr'\]"),
    ([20.0, 20, 20, float("inf"), 20, 20], r"NaN or infinite amounts for \['Fe'\]"),
    ([0.0] * 6, "all zero"),
    ([50.0, 50.0], r"shape \(2,\), expected \(6,\)"),
    ([[50.0, 50, 0, 0, 0, 0]], r"shape \(1, 6\), expected \(6,\)"),
    ([10.0] * 7, r"shape \(7,\)"),
]


@pytest.mark.parametrize("vector, problem", BAD_VECTORS)
def test_bad_composition_vector(vector, problem):
    with pytest.raises(CompositionError, match=problem):
        from_vector(vector, VOCAB)


def test_from_vector_nothing_above_min_percent():
    with pytest.raises(CompositionError, match="above 60 at.%"):
        from_vector([50.0, 50, 0, 0, 0, 0], VOCAB, min_percent=60)


BAD_MAPPINGS = [
    ({"Fe": 1.0, "Xx": 1.0}, "unknown element symbol 'Xx'"),
    ({"Fe": 1.0, "Ni": -0.5}, r"amount of Ni is negative \(-0.5\)"),
    ({"Fe": 1.0, "Ni": float("nan")}, "amount of Ni is nan, not a finite number"),
    ({"Fe": float("inf")}, "amount of Fe is inf, not a finite number"),
    ({"Fe": 0.0, "Ni": 0.0}, "all amounts are zero"),
    ({}, "all amounts are zero"),
    ({"Fe": "half"}, "amount of Fe is 'half', not a finite number"),
]


@pytest.mark.parametrize("amounts, problem", BAD_MAPPINGS)
def test_bad_mapping(amounts, problem):
    with pytest.raises(CompositionError, match=problem):
        normalize(amounts)


def test_normalize_error_names_the_input():
    with pytest.raises(CompositionError, match=re.escape("composition 'my alloy'")):
        normalize({"Fe": -1.0}, name="my alloy")
    with pytest.raises(CompositionError, match=re.escape("{'Fe': 1.0, 'Ni': -2.0}")):
        normalize({"Fe": 1.0, "Ni": -2.0})


# ---------------------------------------------------------------------------
# property: parse -> canonical -> parse is the identity
# ---------------------------------------------------------------------------

ELEMENTS = ["Al", "Co", "Cr", "Fe", "Ni", "Mn", "Ti", "V", "Nb", "Mo", "Ta", "W", "Zr", "Hf",
            "Cu", "Si", "Sn", "Re", "Ru", "Pd", "Y", "Sc", "Mg", "Li", "Zn", "Ag", "Au", "Pt"]

amounts = st.tuples(st.floats(0.01, 100.0, allow_nan=False, allow_infinity=False), st.integers(0, 3))


@st.composite
def formulas(draw):
    elements = draw(st.lists(st.sampled_from(ELEMENTS), min_size=1, max_size=8, unique=True))
    parts = []
    for el in elements:
        value, decimals = draw(amounts)
        text = f"{value:.{decimals}f}"
        if float(text) <= 0:
            text = "0.01"
        sep = draw(st.sampled_from(["", "", " "]))
        parts.append(f"{el}{text}{sep}")
    return "".join(parts)


@settings(max_examples=200, deadline=None)
@given(formulas())
def test_parse_canonical_parse_is_identity(formula):
    comp = parse_formula(formula)
    canon = canonical_formula(formula)
    back = parse_formula(canon)
    assert set(back) == set(comp)
    for el in comp:
        assert abs(back[el] - comp[el]) <= 1e-6, (formula, canon, el)
    # canonical_formula is a fixed point after one round trip
    assert canonical_formula(back) == canon
    assert canonical_formula(canon) == canon


# ---------------------------------------------------------------------------
# zero amounts, Unicode and hostile inputs (issues 12 and 13)
# ---------------------------------------------------------------------------

from pyro_hea.data.composition import formula_amounts  # noqa: E402


@pytest.mark.parametrize("formula", ["Al0CoCrFeNi", "Al0.0CoCrFeNi", "CoCrAl0FeNi", "Al0.00e3 Co Cr Fe Ni",
                                     "(Al0Ti0)CoCrFeNi", "CoCrFeNi(AlTi)0"])
def test_zero_amount_means_absent(formula):
    assert parse_formula(formula) == parse_formula("CoCrFeNi")
    assert canonical_formula(formula) == "Co25Cr25Fe25Ni25"


def test_formula_amounts_keep_the_zeros():
    assert formula_amounts("Al0CoCrFeNi") == {"Al": 0.0, "Co": 1.0, "Cr": 1.0, "Fe": 1.0, "Ni": 1.0}
    assert formula_amounts("Fe2Ni") == {"Fe": 2.0, "Ni": 1.0}
    assert formula_amounts("(FeNi)2Al0") == {"Fe": 1.0, "Ni": 1.0, "Al": 0.0}
    with pytest.raises(CompositionError, match="negative"):
        formula_amounts("Al-1Fe")


def test_full_width_and_subscript_forms_are_read_as_ascii():
    assert parse_formula("\uff26\uff45Ni") == parse_formula("FeNi")  # full-width Fe
    assert parse_formula("\uff21\uff4c\uff10\uff0e\uff15\uff23\uff4f") == parse_formula("Al0.5Co")
    assert parse_formula("Fe\u3000Ni") == parse_formula("FeNi")  # ideographic space
    assert parse_formula("Fe\u2082Ni") == parse_formula("Fe2Ni")  # subscript two
    assert parse_formula("Fe\u00a0Ni") == parse_formula("FeNi")  # no-break space


def test_cyrillic_capital_is_not_taken_for_a_latin_one():
    # U+0421 looks like C; taking it for carbon (or normalising it) would be silent garbage
    with pytest.raises(CompositionError, match="CYRILLIC CAPITAL LETTER ES") as info:
        parse_formula("\u0421oCrFeNi")
    assert "at position 0" in str(info.value)
    with pytest.raises(CompositionError, match="GREEK CAPITAL LETTER ALPHA"):
        parse_formula("\u0391lCoCrFeNi")


def test_long_input_is_shortened_in_the_message():
    huge = "Fe" + "1" * 2_000_000
    with pytest.raises(CompositionError) as info:
        parse_formula(huge)
    message = str(info.value)
    assert len(message) < 300 and "\n" not in message
    assert "2,000,002 characters" in message and "not a finite number" in message
    long_bad = "Fe" * 1_000_000 + "$"
    with pytest.raises(CompositionError) as info:
        parse_formula(long_bad)
    assert len(str(info.value)) < 300 and "unexpected character '$' at position 2000000" in str(info.value)
    with pytest.raises(CompositionError) as info:
        normalize({el: -1.0 for el in PERIODIC_TABLE})
    assert len(str(info.value)) < 300


def test_overflowing_mapping_is_a_composition_error():
    with pytest.raises(CompositionError, match="sum overflows"):
        normalize({"Fe": 1e308, "Ni": 1e308})
    with pytest.raises(CompositionError, match="sum overflows"):
        canonical_formula("Fe1e308Ni1e308")
    # huge but summable amounts are fine
    assert parse_formula("Fe1e300Ni1e300") == approx_dict({"Fe": 0.5, "Ni": 0.5})


# random strings: either a valid composition or a CompositionError, never anything else
_TOKENS = st.one_of(
    st.sampled_from(ELEMENTS + ["Xx", "B", "C", "(", ")", " ", ".", "e", "-", "0", "1", "0.5", "1e308",
                                "1e-400", "nan", "inf", "\u00b2", "\u2082", "\uff26", "\u0421", "$"]),
    st.text(max_size=3),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(_TOKENS, max_size=12).map("".join))
def test_any_string_parses_or_raises_composition_error(text):
    try:
        comp = parse_formula(text)
    except CompositionError as err:
        message = str(err)
        assert message and "\n" not in message
        return
    assert comp and all(el in PERIODIC_TABLE for el in comp)
    assert all(math.isfinite(v) and 0 < v <= 1 for v in comp.values())
    assert math.fsum(comp.values()) == pytest.approx(1.0, abs=1e-9)
    # a parsed formula has a canonical form that parses back
    assert set(parse_formula(canonical_formula(comp))) <= set(comp)


def test_overflowing_vector_is_a_composition_error():
    with pytest.raises(CompositionError, match="sum overflows"):
        from_vector([1e308, 1e308, 0, 0, 0, 0], VOCAB)
