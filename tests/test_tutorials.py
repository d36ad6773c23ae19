"""Execute every tutorial notebook with small settings (PYRO_HEA_FAST=1).

Each notebook runs in a temporary copy of tutorials/, so the committed,
full-length outputs are never overwritten.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

TUTORIALS = Path(__file__).resolve().parents[1] / "tutorials"
NOTEBOOKS = sorted(TUTORIALS.glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_tutorial_executes(path, tmp_path, monkeypatch):
    work = tmp_path / "tutorials"
    shutil.copytree(TUTORIALS, work, ignore=shutil.ignore_patterns("*.ipynb_checkpoints"))
    monkeypatch.setenv("PYRO_HEA_FAST", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(work / path.name, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(work)}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
