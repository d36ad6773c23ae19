"""Shared fixtures for the pyro-hea tests."""

from __future__ import annotations

import pytest

from pyro_hea.datasets import load_dataset


@pytest.fixture(scope="session")
def pei():
    """The Pei 2020 table, loaded once per test session (about 0.1 s)."""
    return load_dataset("pei2020")
