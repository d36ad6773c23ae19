"""Chunked screening on Dask: the same rows and counts as the serial screen."""

from __future__ import annotations

import copy
import os
import socket
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pyro_hea import PhaseModel
from pyro_hea.cluster import local_cluster
from pyro_hea.design.designer import Designer, DesignError
from pyro_hea.design.distributed import SchedulerUnreachable, SpaceSpec, merge_top, resolve_scheduler, screen_space
from pyro_hea.design.space import DEFAULT_PALETTE, DesignSpaceError, equimolar_space, grid_space
from pyro_hea.errors import PyroHeaError

distributed = pytest.importorskip("distributed")

PALETTE = DEFAULT_PALETTE[:9]
COLUMNS = ["input_index", "formula", "p_model", "p_judge", "valid", "novel", "in_domain", "scored", "flag"]
COUNTS = ["generated", "unique", "candidates", "scored", "valid", "novel", "in_domain", "flagged",
          "judged_target", "model_target", "judge_agreement"]


@pytest.fixture(scope="module")
def designer(data):
    df, split = data
    model = PhaseModel.fit(df, split, steps=10, latent_dim=2, seed=0, progress=False)
    return Designer(model, df, split)


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, protocol="tcp",
                                       host="127.0.0.1",
                                       dashboard_address=None, silence_logs=40)
    with distributed.Client(cluster, set_as_default=False) as c:
        yield c
    cluster.close()


def same_rows(chunked, serial, top):
    got = chunked.table[COLUMNS].reset_index(drop=True)
    want = serial.table[COLUMNS].head(top).reset_index(drop=True)
    pd.testing.assert_frame_equal(got, want)
    assert np.allclose(np.nan_to_num(chunked.compositions), np.nan_to_num(serial.compositions[:top]))
    for name in ("p_model_all", "p_judge_all"):
        assert np.allclose(chunked.table.attrs[name], serial.table.attrs[name][:top], equal_nan=True)
    for name in COUNTS:
        assert chunked.summary[name] == pytest.approx(serial.summary[name], nan_ok=True), name


def test_space_spec_blocks_are_the_serial_space_in_order():
    for spec, full in [(SpaceSpec(PALETTE, 4), equimolar_space(PALETTE, 4)[0]),
                       (SpaceSpec(PALETTE[:6], 4, grid_step=10, min_percent=10, max_percent=40),
                        grid_space(PALETTE[:6], 4, 10, 10, 40)[0])]:
        assert spec.size == len(full)
        for chunk in (1, 13, len(full), 10 * len(full)):
            blocks = [spec.block(a, b)[0] for a, b in spec.ranges(chunk)]
            assert max(len(b) for b in blocks) <= chunk
            assert np.array_equal(np.concatenate(blocks), full)


def test_space_spec_counts_a_huge_space_without_building_it():
    spec = SpaceSpec(DEFAULT_PALETTE, 5, grid_step=1.0)
    assert spec.size > 10**9  # a 1 at.% grid: counted, never enumerated
    spec = SpaceSpec(DEFAULT_PALETTE, 6, grid_step=5.0)
    rows, _ = spec.block(spec.size - 3, spec.size)
    assert rows.shape == (3, len(DEFAULT_PALETTE)) and np.allclose(rows.sum(axis=1), 100)
    with pytest.raises(DesignSpaceError, match="step"):
        SpaceSpec(PALETTE, 4, grid_step=7.0)


def test_in_process_chunks_equal_the_serial_screen(designer):
    serial = designer.screen(palette=PALETTE, k=4)
    for chunk, top in ((7, 15), (40, len(serial.table))):
        chunked = screen_space(designer, SpaceSpec(PALETTE, 4), top=top, chunk_size=chunk, progress=False)
        same_rows(chunked, serial, top)
        assert chunked.summary["chunks"] == -(-len(serial.table) // chunk)


def test_local_cluster_screen_equals_the_serial_one(designer, client):
    spec = SpaceSpec(PALETTE[:7], 4, grid_step=10, min_percent=10, max_percent=40)
    serial = designer.screen(palette=PALETTE[:7], k=4, grid_step=10, min_percent=10, max_percent=40)
    chunked = screen_space(designer, spec, top=25, chunk_size=90, client=client, progress=False)
    same_rows(chunked, serial, 25)
    assert chunked.summary["workers"] == 2 and chunked.summary["chunks"] == -(-spec.size // 90)


def test_screen_on_a_scheduler_address(designer, client, monkeypatch):
    serial = designer.screen(palette=PALETTE, k=5)
    address = client.scheduler.address
    chunked = screen_space(designer, SpaceSpec(PALETTE, 5), top=10, chunk_size=30, scheduler=address,
                           progress=False)
    same_rows(chunked, serial, 10)
    assert chunked.summary["scheduler"] == address
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", address)
    assert resolve_scheduler(None) == address
    assert resolve_scheduler("tcp://elsewhere:1") == "tcp://elsewhere:1"


class DyingOnceDesigner(Designer):
    """A designer whose first chunk kills its worker process (``os._exit``) instead of scoring."""

    marker = ""

    def _score_space(self, *args, **kwargs):
        try:
            os.close(os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))  # only one chunk creates it
        except FileExistsError:
            return super()._score_space(*args, **kwargs)
        os._exit(1)


@pytest.fixture(scope="module")
def process_client():
    cluster = local_cluster(2)  # worker processes, which a task can kill
    with distributed.Client(cluster, set_as_default=False) as c:
        yield c
    cluster.close()


@pytest.mark.filterwarnings("ignore:Port 8787 is already in use")  # the other cluster of this module holds it
def test_a_chunk_whose_worker_dies_is_run_again(designer, process_client, tmp_path):
    dying = copy.copy(designer)
    dying.__class__, dying.marker = DyingOnceDesigner, str(tmp_path / "died")
    serial = designer.screen(palette=PALETTE, k=5)
    chunked = screen_space(dying, SpaceSpec(PALETTE, 5), top=10, chunk_size=30, client=process_client,
                           progress=False)
    assert Path(dying.marker).exists()  # a worker died, and its chunk ran again elsewhere
    same_rows(chunked, serial, 10)
    assert chunked.summary["chunks"] == 5


def test_merge_top_equals_one_sort_of_all_rows():
    rng = np.random.default_rng(0)
    key = rng.choice([0.1, 0.5, 0.9, -1.9], size=200)  # many ties
    index = np.arange(200)

    def part(rows):
        table = pd.DataFrame({"input_index": index[rows]})
        return {"table": table, "x": index[rows, None].astype(float), "key": key[rows],
                "attrs": {"p_model_all": key[rows, None]}}

    want = np.lexsort((index, -key))[:17]
    shuffled = rng.permutation(200)
    parts = [part(shuffled[i:i + 23]) for i in range(0, 200, 23)]
    merged = None
    for p in parts:  # incremental, in any order, as results arrive
        merged = merge_top([merged, merge_top([p], 17)], 17)
    assert merged["table"]["input_index"].tolist() == want.tolist()
    assert np.array_equal(merged["attrs"]["p_model_all"][:, 0], key[want])
    assert merge_top(parts, 17)["table"]["input_index"].tolist() == want.tolist()


def test_an_unreachable_scheduler_fails_fast_naming_the_address(designer):
    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    started = time.perf_counter()
    with pytest.raises(SchedulerUnreachable, match=f"Dask scheduler at '{address}'") as err:
        screen_space(designer, SpaceSpec(PALETTE, 4), scheduler=address, timeout=2, progress=False)
    assert time.perf_counter() - started < 10
    assert isinstance(err.value, PyroHeaError) and "\n" not in str(err.value)


def test_bad_settings_are_refused(designer):
    for kwargs in ({"top": 0}, {"chunk_size": 0}, {"workers": 0}, {"retries": -1}):
        with pytest.raises(DesignError, match=next(iter(kwargs))):
            screen_space(designer, SpaceSpec(PALETTE, 4), progress=False, **kwargs)


# ------------------------------------------------------------------ the command line
# (run_dir: the small run of tests/conftest.py)
def test_cli_chunked_screen_writes_the_serial_top_rows(run_dir, tmp_path, capsys, monkeypatch):
    from pyro_hea.cli import main

    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS", raising=False)
    serial, chunked = tmp_path / "serial.csv", tmp_path / "chunked.csv"
    assert main(["design", str(run_dir), "--mode", "screen", "--k", "4", "--out", str(serial)]) == 0
    assert main(["design", str(run_dir), "--mode", "screen", "--k", "4", "--out", str(chunked),
                 "--chunk-size", "500", "--top", "20", "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "kept the best 20 of 1,365 alloys; 3 chunk(s) on in-process" in text
    want = pd.read_csv(serial, keep_default_na=False).head(20)
    pd.testing.assert_frame_equal(pd.read_csv(chunked, keep_default_na=False), want)
    assert not list(tmp_path.glob(".*.tmp"))  # written atomically: no temporary left


def test_cli_bad_scheduler_and_input_exit_2_with_one_line(run_dir, tmp_path, capsys):
    from pyro_hea.cli import main

    out = tmp_path / "out.csv"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{s.getsockname()[1]}"
    assert main(["design", str(run_dir), "--mode", "screen", "--k", "4", "--out", str(out),
                 "--scheduler", address, "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert address in err and len(err.splitlines()) == 1 and not out.exists()
    source = tmp_path / "in.csv"
    source.write_text("formula\nCoCrFeNi\n")
    assert main(["design", str(run_dir), "--mode", "screen", "--input", str(source), "--out", str(out),
                 "--workers", "2"]) == 2
    assert "--workers" in capsys.readouterr().err and not out.exists()
