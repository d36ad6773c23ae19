"""Shared fixtures for the pyro-hea tests."""

from __future__ import annotations

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


@pytest.fixture(scope="session")
def pei():
    """The Pei 2020 table, loaded once per test session (about 0.1 s)."""
    return load_dataset("pei2020")


@pytest.fixture(scope="session")
def data(pei):
    """Pei 2020 and its paper-protocol split of seed 0, shared by every test that trains on it."""
    return pei, paper_split(pei, seed=0)
