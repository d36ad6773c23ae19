"""Candidate pools (issue 11 section 2, the data side): unlabelled compositions from a file or a generated space."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pyro_hea.data.candidates import MAX_CANDIDATES, CandidateError, CandidatePool, split_exclusions
from pyro_hea.data.composition import PERIODIC_TABLE
from pyro_hea.design.distributed import SpaceSpec
from pyro_hea.design.space import DEFAULT_PALETTE

VOCAB = ("Al", "Cr", "Mn", "Fe", "Co", "Ni", "Cu")
EXCLUDE = {"labelled": ["CoCrFeNi"], "unlabelled": ["FeNi3"], "val": [{"Al": 1, "Ni": 1}],
           "test": ["Al0.5CoCrFeNi"]}

CSV = """formula,phase,notes
CoCrFeMnNi,FCC,good
Fe$Ni,BCC,malformed
,FCC,empty formula
Co25Cr25Fe25Ni25,,equals a labelled alloy
NiMnCu,,good
FeB,,B is outside the vocabulary

Al1Co2Cr2Fe2Ni2,,equals the test alloy Al0.5CoCrFeNi
NiFe3,,good
Fe3Ni,,duplicate of NiFe3
NiMnCu,,duplicate
Al Ni,,equals a val alloy
Fe2Ni6,,equals the unlabelled alloy FeNi3
"""


@pytest.fixture
def table(tmp_path):
    path = tmp_path / "cands.csv"
    path.write_text(CSV)
    return path


def test_from_file_keeps_good_rows_and_counts_every_dropped_one(table):
    pool = CandidatePool.from_file(table, VOCAB, exclude=EXCLUDE)
    s = pool.summary()
    assert (s["read"], s["kept"], s["empty_rows"]) == (12, 3, 1)
    assert (s["malformed"], s["outside_vocabulary"], s["duplicate"]) == (2, 1, 2)
    assert s["outside_elements"] == {"B": 1}
    assert s["in_dataset"] == {"labelled": 1, "unlabelled": 1, "val": 1, "test": 1}
    assert s["read"] == s["kept"] + s["malformed"] + s["outside_vocabulary"] + s["no_descriptor_data"] \
        + s["duplicate"] + sum(s["in_dataset"].values()) and s["dropped"] == s["read"] - s["kept"]
    # malformed rows by file line (the header is line 1; the blank line 8 counts)
    assert [(r["line"], r["reason"]) for r in s["malformed_rows"]] == [(3, "bad formula"), (4, "empty formula")]
    assert s["formula_column"] == "formula" and s["ignored_columns"] == ["phase", "notes"]
    assert any("label column 'phase' ignored" in note for note in s["notes"])
    x = pool.take(np.arange(len(pool)))
    assert x.shape == (3, len(VOCAB)) and np.allclose(x.sum(axis=1), 100)
    assert np.allclose(x[0], [0, 20, 20, 20, 20, 20, 0]) and np.allclose(x[2, [3, 5]], [75, 25])
    json.dumps(s), json.dumps(pool.to_dict())
    d = pool.to_dict()
    assert d["kind"] == "file" and d["path"] == str(table.resolve()) and len(d["sha256"]) == 64
    text = pool.summary_text()
    assert "line 3: bad formula" in text and "4 equal to a dataset alloy (labelled 1, unlabelled 1, val 1, test 1)" in text


def test_from_file_bad_inputs_are_one_line_errors(tmp_path):
    with pytest.raises(CandidateError, match="does not exist"):
        CandidatePool.from_file(tmp_path / "missing.csv", VOCAB)
    (tmp_path / "nocol.csv").write_text("alloyname,x\nFeNi,1\n")
    with pytest.raises(CandidateError, match=r"no formula column.*--unlabelled-formula-column") as err:
        CandidatePool.from_file(tmp_path / "nocol.csv", VOCAB)
    assert "\n" not in str(err.value)
    assert len(CandidatePool.from_file(tmp_path / "nocol.csv", VOCAB, formula_column="alloyname")) == 1
    (tmp_path / "bad.csv").write_text("formula\nFe$\nZrHf\nCoCrFeNi\n")
    with pytest.raises(CandidateError, match=r"no usable candidate: all 3 rows were dropped: 1 malformed, "
                                             r"1 outside vocabulary, 1 equal to an alloy of split 'test'"):
        CandidatePool.from_file(tmp_path / "bad.csv", VOCAB, exclude={"test": ["CoCrFeNi"]})
    (tmp_path / "empty.csv").write_text("formula\n")
    with pytest.raises(CandidateError, match="no data rows"):
        CandidatePool.from_file(tmp_path / "empty.csv", VOCAB)


def test_element_pairs_without_descriptor_data_are_dropped():
    pool = CandidatePool.from_compositions(["ThU", "ThFe", "FeNiThU", "FeNi"], ("Fe", "Ni", "Th", "U"))
    assert len(pool) == 2 and pool.summary()["no_descriptor_data"] == 2  # Th-U has no Miedema enthalpy


def test_exclusions_as_an_at_percent_matrix_and_from_a_split():
    import pandas as pd

    x = np.zeros((1, len(VOCAB)))
    x[0, [3, 5]] = [0.5, 0.5]  # any scale
    pool = CandidatePool.from_compositions(["Fe50Ni50", "Fe49.999Ni50.001", "Fe49Ni51"], VOCAB,
                                           exclude={"test": x})
    assert len(pool) == 1 and pool.summary()["in_dataset"] == {"test": 2}  # equal at 0.01 at.%
    df = pd.DataFrame({"composition": [{"Fe": 0.5, "Ni": 0.5}, {"Co": 1.0}]})
    ex = split_exclusions(df, pd.Series(["val", "labelled"]))
    assert ex == {"labelled": [{"Co": 1.0}], "unlabelled": [], "val": [{"Fe": 0.5, "Ni": 0.5}], "test": []}


def test_take_shapes_order_and_errors():
    pool = CandidatePool.from_compositions(["Fe", "FeNi3", "CoCrFeNi", "AlCu"], VOCAB)
    x = pool.take(np.array([2, 0, 2, 3]))
    assert x.shape == (4, len(VOCAB)) and x.dtype == np.float64 and np.allclose(x.sum(axis=1), 100)
    assert np.array_equal(x[0], x[2]) and x[1, 3] == 100 and np.allclose(x[3, [0, 6]], 50)
    assert pool.take(np.array([], dtype=int)).shape == (0, len(VOCAB))
    for bad in (np.array([4]), np.array([-1]), np.array([0.5])):
        with pytest.raises(IndexError):
            pool.take(bad)


def test_from_space_take_matches_the_space_and_leaves_dataset_alloys_out():
    spec = SpaceSpec(("Co", "Cr", "Fe", "Ni", "Mn"), 4, grid_step=5.0)
    whole, _ = spec.block(0, spec.size)
    pool = CandidatePool.from_space(spec, VOCAB)
    assert len(pool) == spec.size and pool.summary()["read"] == spec.size
    rows = np.random.default_rng(0).integers(0, spec.size, 500)
    columns = [VOCAB.index(el) for el in spec.palette]
    assert np.allclose(pool.take(rows)[:, columns], whole[rows]) and np.allclose(spec.take(rows), whole[rows])
    # the equimolar CoCrFeNi lies on the 5 at.% grid; Co30Cr20Fe25Ni25 too; FeNi (k = 2) and AlCoCrFe do not
    exclude = {"labelled": ["FeNi", "AlCoCrFe"], "val": ["Co30Cr20Fe25Ni25"], "test": ["CoCrFeNi", "Co1Cr1Fe1Ni1"]}
    pool = CandidatePool.from_space(spec, VOCAB, exclude=exclude)
    s = pool.summary()
    assert len(pool) == spec.size - 2 and s["in_dataset"] == {"labelled": 0, "val": 1, "test": 1}
    dropped = spec.index_of(np.array([[25.0, 25, 25, 25, 0], [30.0, 20, 25, 25, 0]]))
    kept = np.setdiff1d(np.arange(spec.size), dropped)
    assert np.allclose(pool.take(np.arange(len(pool)))[:, columns], whole[kept])
    assert pool.to_dict() == {"kind": "space", **spec.to_dict()} and s["space"]["size"] == spec.size
    json.dumps(s)


def test_from_space_refuses_outside_palettes_and_huge_spaces():
    with pytest.raises(CandidateError, match=r"palette element\(s\) Ti, Zr.*outside the model's vocabulary"):
        CandidatePool.from_space(SpaceSpec(("Ti", "Fe", "Ni", "Zr"), 2), VOCAB)
    with pytest.raises(CandidateError, match="pair"):
        CandidatePool.from_space(SpaceSpec(("Th", "U", "Fe"), 2), ("Fe", "Th", "U"))
    huge = SpaceSpec(DEFAULT_PALETTE, 5, grid_step=2.5)
    assert huge.size > MAX_CANDIDATES
    with pytest.raises(CandidateError, match="more than the limit of 10,000,000"):
        CandidatePool.from_space(huge, DEFAULT_PALETTE)
    with pytest.raises(CandidateError, match="needs a SpaceSpec"):
        CandidatePool.from_space({"k": 3}, VOCAB)


def test_a_million_candidates_are_stored_compactly():
    n, m, vocab = 10**6, 5, PERIODIC_TABLE[:60]
    rng = np.random.default_rng(0)
    elements = np.argsort(rng.random((n, len(vocab)), dtype=np.float32), axis=1)[:, :m].ravel()
    amounts = rng.integers(1, 20, n * m).astype(float)
    pool = CandidatePool.from_sparse(np.arange(0, n * m + 1, m), elements, amounts, vocab)
    del elements, amounts
    assert len(pool) > 0.999 * n
    assert pool.nbytes < 0.1 * n * len(vocab) * 8  # 38 MB against 480 MB dense
    idx = rng.integers(0, len(pool), 1000)
    x = pool.take(idx)
    assert x.shape == (1000, len(vocab)) and np.allclose(x.sum(axis=1), 100) and ((x > 0).sum(axis=1) == m).all()
    space = CandidatePool.from_space(SpaceSpec(DEFAULT_PALETTE, 5, grid_step=5.0, limit=10**6), DEFAULT_PALETTE)
    assert len(space) == 10**6 and space.nbytes < 10**4
    assert np.allclose(space.take(idx).sum(axis=1), 100)


# ---- the command line ---------------------------------------------------------------------------------------


def _main(capsys, *argv):
    from pyro_hea.cli import main

    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def test_cli_parses_the_candidate_options():
    from pyro_hea.cli import build_parser

    args = build_parser().parse_args(["train", "--out", "r", "--unlabelled-space", "--k", "4", "--grid-step", "5",
                                      "--palette", "Co,Cr,Fe,Ni,Mn"])
    assert args.unlabelled_space and (args.k, args.grid_step, args.palette) == (4, 5.0, "Co,Cr,Fe,Ni,Mn")
    assert args.grid_min is None and args.unlabelled is None
    args = build_parser().parse_args(["train", "--out", "r", "--unlabelled", "c.csv"])
    assert args.unlabelled == "c.csv" and not args.unlabelled_space and args.k is None
    screen = build_parser().parse_args(["design", "run", "--mode", "screen", "--out", "o.csv"])
    assert (screen.k, screen.grid_min, screen.grid_max) == (5, 5.0, 35.0)  # design keeps its defaults


@pytest.mark.parametrize("argv, message", [
    (["--unlabelled", "c.csv", "--unlabelled-space"], "give one of them"),
    (["--k", "4"], "--k set the generated space of --unlabelled-space; add it"),
    (["--unlabelled-formula-column", "x"], "names a column of the --unlabelled file"),
    (["--unlabelled-space", "--k", "0"], "--k must be an integer from 1 to 118"),
    (["--unlabelled", "{tmp}/missing.csv"], "candidate file '{tmp}/missing.csv' does not exist"),
    (["--unlabelled-space", "--palette", "Fe,Ni,Zr", "--k", "2"], "palette element(s) Zr are outside the model's vocabulary"),
    (["--unlabelled-space", "--palette", "Fe,Ni,Co", "--k", "2", "--grid-step", "1000"],
     "--grid-step must be a finite number in (0, 100]"),
])
def test_cli_candidate_errors_are_one_line(tmp_path, capsys, argv, message):
    data = tmp_path / "data.csv"
    rows = [f"Fe{a}Ni{b}Co{c},{(a + b + c) % 2}" for a in range(1, 5) for b in range(1, 5) for c in range(1, 4)]
    data.write_text("formula,single_phase\n" + "\n".join(rows) + "\n")
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    status, out, err = _main(capsys, "train", "--dataset", data, "--out", tmp_path / "run", "--quiet", *argv)
    assert status == 2 and err.count("\n") == 1 and message.replace("{tmp}", str(tmp_path)) in err, err
    assert not (tmp_path / "run").exists()


def test_cli_trains_with_a_pool_records_it_and_the_run_loads_back(tmp_path, capsys, monkeypatch):
    from pyro_hea.infer.phase_model import PhaseModel
    from pyro_hea.infer.run import load_run

    fit, seen = PhaseModel.fit.__func__, {}

    def spy(cls, df, split, *args, candidates=None, **kwargs):  # records the pool the CLI passes, then trains with it
        seen["pool"] = candidates
        return fit(cls, df, split, *args, candidates=candidates, **kwargs)

    monkeypatch.setattr(PhaseModel, "fit", classmethod(spy))
    cands = tmp_path / "cands.csv"
    cands.write_text("Alloys,Class\nCoCrFeMnNi\nFe$Ni,1\nMoNbTaW\nAlCuNiMnFe\n")  # CoCrFeMnNi, MoNbTaW are in pei2020
    out = tmp_path / "run"
    status, stdout, err = _main(capsys, "train", "--out", out, "--epochs", "2", "--unlabelled", cands)
    assert status == 0, err
    pool = seen["pool"]
    assert isinstance(pool, CandidatePool) and len(pool) == 1 and pool.summary()["malformed"] == 1
    assert stdout.index("candidates    4 read from file 'cands.csv'") < stdout.index("wrote")
    assert "line 3: bad formula" in stdout and "label column 'Class' ignored" in stdout
    config = json.loads((out / "config.json").read_text())
    assert config["unlabelled_candidates"]["summary"] == pool.summary()
    assert config["unlabelled_candidates"]["source"]["path"] == str(cands.resolve())
    assert sum(config["unlabelled_candidates"]["summary"]["in_dataset"].values()) == 2
    run = load_run(out)  # the pool is not needed to load the run
    assert run.config["unlabelled_candidates"]["summary"]["kept"] == 1


def test_training_uses_the_pool(data):
    from pyro_hea.infer.phase_model import PhaseModel

    df, split = data
    spec = SpaceSpec(("Co", "Cr", "Fe", "Ni", "Mn", "Al", "Cu"), 4, grid_step=5.0)
    from pyro_hea.data.datasets import element_vocabulary

    pool = CandidatePool.from_space(spec, element_vocabulary(df), exclude=split_exclusions(df, split))
    model = PhaseModel.fit(df, split, steps=3, progress=False, candidates=pool)
    assert model.trainer.state.step == 3
