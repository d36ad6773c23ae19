"""Shared fixtures for the pyro-hea tests."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest
import torch

from pyro_hea.data.datasets import load_dataset
from pyro_hea.data.splits import paper_split


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    """One torch thread: the small networks run much faster than on two threads of a shared 2-core CPU."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def pytest_xdist_auto_num_workers(config):
    """``-n auto``: one worker per core, at most 4 (each holds torch and its own trained test models)."""
    return max(1, min(4, os.cpu_count() or 1))


# The slowest files, started first: with ``-n`` and ``--dist loadfile`` a file runs whole on one
# worker, so a long file handed out last would leave the other workers idle at the end.
SLOWEST_FIRST = ("test_tutorials.py", "test_data_efficiency.py", "test_cli_errors.py", "test_training.py")


def pytest_collection_modifyitems(config, items):
    """Run the slowest files first (a stable sort, so the order is the same on every worker)."""
    def rank(item):
        name = item.path.name
        return SLOWEST_FIRST.index(name) if name in SLOWEST_FIRST else len(SLOWEST_FIRST)

    items.sort(key=rank)


BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="session")
def load_benchmark():
    """A loader of the script ``benchmarks/<name>.py`` as a module (the scripts are not a package)."""

    def load(name: str):
        spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load


@pytest.fixture(scope="session")
def pei():
    """The Pei 2020 table, loaded once per test session (about 0.1 s)."""
    return load_dataset("pei2020")


@pytest.fixture(scope="session")
def data(pei):
    """Pei 2020 and its paper-protocol split of seed 0, shared by every test that trains on it."""
    return pei, paper_split(pei, seed=0)


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory):
    """A small run directory of ``pyro-hea train`` (10 steps, 2-D z), shared by the design-command tests.

    Test modules that need another run define their own ``run_dir``.
    """
    from pyro_hea.cli import main

    out = tmp_path_factory.mktemp("design") / "run"
    assert main(["train", "--dataset", "pei2020", "--out", str(out), "--epochs", "10",
                 "--latent-dim", "2", "--quiet"]) == 0
    return out
