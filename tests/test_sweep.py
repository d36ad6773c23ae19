"""Sweeps on Dask: the serial results, resumed from the cache, through a dying worker."""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pyro_hea.cluster import SchedulerUnreachable, local_cluster
from pyro_hea.errors import PyroHeaError
from pyro_hea.infer.sweep import SweepError, config_key, run_sweep

distributed = pytest.importorskip("distributed")

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "data_efficiency.py"
CONFIGS = [{"seed": s, "scale": 10.0 ** s} for s in range(6)]


def draw(seed: int, scale: float) -> dict:
    """A cheap configuration that seeds itself."""
    rng = np.random.default_rng(seed)
    return {"seed": seed, "value": float(rng.normal() * scale), "draws": rng.random(3).tolist()}


def dies_once(marker: str, seed: int, scale: float) -> dict:
    """:func:`draw`, but the worker process that runs it first dies instead (``os._exit``)."""
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))  # only one task ever creates it
    except FileExistsError:
        return draw(seed, scale)
    os._exit(1)


def fails_at_two(seed: int, scale: float) -> dict:
    if seed == 2:
        raise ValueError("seed 2 is bad")
    return draw(seed, scale)


def must_not_run(**config):
    raise AssertionError(f"{config} should have come from the cache")


@pytest.fixture(scope="module")
def client():
    cluster = local_cluster(2)  # what --jobs 2 starts: two single-threaded processes on 127.0.0.1
    with distributed.Client(cluster, set_as_default=False) as c:
        yield c
    cluster.close()


@pytest.fixture(scope="module")
def serial():
    return [draw(**c) for c in CONFIGS]


def test_in_process_sweep_caches_each_result_and_resumes(tmp_path, serial):
    first = run_sweep(draw, CONFIGS, tmp_path, progress=False)
    assert first.results == serial and (first.computed, first.cached, first.where) == (6, 0, "in-process")
    files = sorted(tmp_path.glob("*.json"))
    assert len(files) == 6 and not list(tmp_path.glob(".*.tmp"))  # written atomically
    assert json.loads((tmp_path / config_key(CONFIGS[3])).read_text()) == serial[3]
    again = run_sweep(must_not_run, CONFIGS, tmp_path, workers=2, progress=False)  # no cluster needed
    assert again.results == serial and (again.computed, again.cached, again.where) == (0, 6, "cache")
    (tmp_path / config_key(CONFIGS[1])).unlink()
    resumed = run_sweep(draw, CONFIGS, tmp_path, progress=False)
    assert resumed.results == serial and (resumed.computed, resumed.cached) == (1, 5)


def test_local_cluster_sweep_equals_the_serial_one(client, tmp_path, serial):
    done = run_sweep(draw, CONFIGS, tmp_path, client=client, progress=False)
    assert done.results == serial and done.computed == 6 and done.workers == 2
    assert [json.loads((tmp_path / config_key(c)).read_text()) for c in CONFIGS] == serial
    assert run_sweep(must_not_run, CONFIGS, tmp_path, client=client, progress=False).cached == 6


def test_a_dying_worker_loses_nothing(client, tmp_path, serial):
    marker = tmp_path / "died"
    configs = [{"marker": str(marker), **c} for c in CONFIGS]
    done = run_sweep(dies_once, configs, None, client=client, progress=False)
    assert marker.exists() and done.results == serial  # one task killed its worker, and was run again
    client.wait_for_workers(2, timeout=60)  # the nanny restarts the worker


def test_on_a_scheduler_address_and_from_the_environment(client, tmp_path, serial, monkeypatch):
    address = client.scheduler.address
    done = run_sweep(draw, CONFIGS[:3], tmp_path / "a", scheduler=address, progress=False)
    assert done.results == serial[:3] and done.where == address
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", address)
    assert run_sweep(draw, CONFIGS[3:], tmp_path / "b", progress=False).where == address


def test_a_failing_configuration_stops_the_sweep_naming_it(client, tmp_path):
    for where in ({}, {"client": client}):
        with pytest.raises(ValueError, match="seed 2 is bad") as err:
            run_sweep(fails_at_two, CONFIGS[:4], tmp_path, progress=False, **where)
        assert "'seed': 2" in "".join(getattr(err.value, "__notes__", []))
        assert (tmp_path / config_key(CONFIGS[0])).is_file()  # what arrived before it stays cached


def unreachable() -> str:
    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"


def test_an_unreachable_scheduler_fails_fast_naming_the_address(tmp_path):
    address = unreachable()
    started = time.perf_counter()
    with pytest.raises(SchedulerUnreachable, match=f"Dask scheduler at '{address}'") as err:
        run_sweep(draw, CONFIGS, tmp_path, scheduler=address, timeout=2, progress=False)
    assert time.perf_counter() - started < 10
    assert isinstance(err.value, PyroHeaError) and "\n" not in str(err.value)
    assert not list(tmp_path.iterdir())  # nothing ran


def test_bad_settings_are_refused(tmp_path):
    for kwargs in ({"workers": 0}, {"retries": -1}, {"workers": 2.0}):
        with pytest.raises(SweepError, match=next(iter(kwargs))):
            run_sweep(draw, CONFIGS, tmp_path, progress=False, **kwargs)
    with pytest.raises(SweepError, match="cache file"):
        run_sweep(draw, CONFIGS, tmp_path, key=lambda c: "same.json", progress=False)


# ------------------------------------------------------------------ the data-efficiency study on it
@pytest.fixture(scope="module")
def de():
    spec = importlib.util.spec_from_file_location("data_efficiency", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["data_efficiency"] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("data_efficiency", None)


def test_the_study_on_the_cluster_equals_the_serial_study_bit_for_bit(de, client, tmp_path):
    grid = (["pyro-hea", "logistic-regression"], [0.05], [0], {"steps": 3})
    serial, counts = de.run_study(*grid, tmp_path / "serial", progress=False)
    parallel, _ = de.run_study(*grid, tmp_path / "cluster", progress=False, client=client)
    assert counts == {"configurations": 2, "cached": 0, "computed": 2}
    pd.testing.assert_frame_equal(serial.drop(columns="fit_seconds"), parallel.drop(columns="fit_seconds"),
                                  check_exact=True)
    names = sorted(p.relative_to(tmp_path / "serial") for p in (tmp_path / "serial").rglob("*.json"))
    assert names == sorted(p.relative_to(tmp_path / "cluster") for p in (tmp_path / "cluster").rglob("*.json"))
    assert names[0] == de.cache_path(Path(), "logistic-regression", 0.05, 0, {"steps": 3})  # the layout as before
    resumed, counts = de.run_study(*grid, tmp_path / "cluster", progress=False, client=client)
    assert counts["computed"] == 0
    pd.testing.assert_frame_equal(resumed, parallel)


def test_the_study_refuses_an_unreachable_scheduler_in_one_line(de, tmp_path):
    address = unreachable()
    argv = ["--fractions", "0.05", "--seeds", "0", "--methods", "logistic-regression", "--scheduler", address,
            "--out-dir", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache"), "--no-progress"]
    started = time.perf_counter()
    with pytest.raises(SystemExit) as err:
        de.main(argv)
    message = str(err.value.code)
    assert address in message and "\n" not in message and time.perf_counter() - started < 15
    assert not (tmp_path / "out").exists()
